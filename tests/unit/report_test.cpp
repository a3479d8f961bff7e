#include "resolver/report.h"

#include <gtest/gtest.h>

namespace psnic {
namespace {

InterfacePair host_pair(std::string name, std::string host, uint32_t host_ifindex) {
  InterfacePair p;
  p.ifindex = 2;
  p.name = std::move(name);
  p.kind = "veth";
  p.placement = Placement::host_peer;
  p.host_name = std::move(host);
  p.host_ifindex = host_ifindex;
  return p;
}

NetnsReport container(pid_t pid) {
  NetnsReport r;
  r.pid = pid;
  r.netns_inode = 4026532257;
  r.identity.id = std::string(64, 'a');
  r.interfaces.push_back(host_pair("eth0", "veth1241974", 30));
  return r;
}

TEST(JsonString, EscapesWhatJsonRequires) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("line\nnext\ttab"), "\"line\\nnext\\ttab\"");
  EXPECT_EQ(json_string(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 passes through
}

// JSON is UTF-8: a name of other bytes (an interface a container renamed) is still valid JSON.
TEST(JsonString, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  EXPECT_EQ(json_string("e\xff\x1b[31mX"), "\"e\xEF\xBF\xBD\\u001b[31mX\"");
  EXPECT_EQ(json_string("\xc3"), "\"\xEF\xBF\xBD\"");  // cut short
}

TEST(FormatHostNames, OneNamePerLineAndPidWhenAsked) {
  NetnsReport r = container(42);
  r.interfaces.push_back(host_pair("eth1", "vethB", 31));
  InterfacePair mac;
  mac.name = "mv0";
  mac.kind = "macvlan";
  mac.placement = Placement::parent;
  r.interfaces.push_back(mac);
  EXPECT_EQ(format_host_names(r, false), "veth1241974\nvethB\n");
  EXPECT_EQ(format_host_names(r, true), "42\tveth1241974\n42\tvethB\n");
}

TEST(FormatJson, EveryKeyPresentNullWhereNotApplicable) {
  NetnsReport r = container(42);
  InterfacePair mac;
  mac.ifindex = 12;
  mac.name = "mv0";
  mac.kind = "macvlan";
  mac.placement = Placement::parent;
  mac.parent = "br0";
  r.interfaces.push_back(mac);
  std::string id(64, 'a');
  EXPECT_EQ(format_json({r}),
            "[\n"
            "{\"pid\":42,\"netns\":4026532257,\"netns_name\":null,\"interface\":\"eth0\","
            "\"ifindex\":2,\"kind\":\"veth\",\"peer\":\"host\",\"host_interface\":"
            "\"veth1241974\",\"host_ifindex\":30,\"parent\":null,\"container_id\":\"" +
                id +
                "\"},\n"
                "{\"pid\":42,\"netns\":4026532257,\"netns_name\":null,\"interface\":\"mv0\","
                "\"ifindex\":12,\"kind\":\"macvlan\",\"peer\":\"parent\",\"host_interface\":null,"
                "\"host_ifindex\":null,\"parent\":\"br0\",\"container_id\":\"" +
                id + "\"}\n]\n");
}

TEST(FormatJson, EmptyIsAnEmptyArray) { EXPECT_EQ(format_json({}), "[]\n"); }

TEST(FormatJson, NamespaceWithoutInterfacesIsOneObjectOfNulls) {
  NetnsReport r = container(42);
  r.interfaces.clear();
  EXPECT_EQ(format_json({r}),
            "[\n{\"pid\":42,\"netns\":4026532257,\"netns_name\":null,\"interface\":null,"
            "\"ifindex\":null,\"kind\":null,\"peer\":null,\"host_interface\":null,"
            "\"host_ifindex\":null,\"parent\":null,\"container_id\":\"" +
                std::string(64, 'a') + "\"}\n]\n");
}

TEST(FormatJson, NamedNamespaceWithoutProcess) {
  NetnsReport r = container(0);
  r.netns_name = "blue\"ns";
  r.identity.id.clear();
  std::string json = format_json({r});
  EXPECT_NE(json.find("\"pid\":null"), std::string::npos);
  EXPECT_NE(json.find("\"netns_name\":\"blue\\\"ns\""), std::string::npos);
  // No container identity: null, as every key that does not apply, not an empty string.
  EXPECT_NE(json.find("\"container_id\":null}"), std::string::npos) << json;
}

TEST(FormatTable, DashesForWhatIsAbsent) {
  NetnsReport a = container(42);
  NetnsReport empty;
  empty.pid = 50;
  EXPECT_EQ(format_table({a, empty}),
            "42\tveth1241974\teth0\t" + std::string(64, 'a') + "\n50\t-\t-\t-\n");
}

TEST(FormatTable, NamespaceWithoutProcessIsNamedByItsInode) {
  // Two `ip netns add` namespaces with no process and no interface: each line says which one,
  // as the kernel writes a namespace (readlink /proc/PID/ns/net, lsns).
  NetnsReport a;
  a.netns_inode = 4026532257;
  a.netns_name = "blue";
  NetnsReport b = a;
  b.netns_inode = 4026532301;
  EXPECT_EQ(format_table({a, b}), "net:[4026532257]\t-\t-\t-\nnet:[4026532301]\t-\t-\t-\n");
  b.interfaces.push_back(host_pair("eth0", "vethB", 31));
  EXPECT_EQ(format_table({b}), "net:[4026532301]\tvethB\teth0\t-\n");
}

TEST(NoPeerReason, SaysWhy) {
  NetnsReport host;
  host.host_network = true;
  EXPECT_EQ(no_peer_reason(host), "host network, no interface of its own");
  NetnsReport bare;
  EXPECT_EQ(no_peer_reason(bare), "no interfaces but loopback");
  NetnsReport mixed;
  InterfacePair mac;
  mac.name = "mv0";
  mac.kind = "macvlan";
  mac.placement = Placement::parent;
  mac.parent = "br0";
  InterfacePair away;
  away.name = "eth0";
  away.kind = "veth";
  away.placement = Placement::peer_elsewhere;
  mixed.interfaces = {mac, away};
  EXPECT_EQ(no_peer_reason(mixed),
            "no host peer: mv0 (macvlan on br0), eth0 (veth, peer in another namespace)");
}

}  // namespace
}  // namespace psnic
