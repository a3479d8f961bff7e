// End to end: the psnic binary against containers of the real dockerd, run from the local
// psnic-test:latest image (busybox only; nothing is ever pulled). Every expected host interface
// is worked out without psnic, from the container's own sysfs, `ip -o link` and lsns.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/e2e_support.h"
#include "tests/support/support.h"

// In psnic::test::e2e, so that the helpers of e2e_support.h and support.h need no
// using-declarations.
namespace psnic::test::e2e {
namespace {

CommandResult psnic(const std::string& args) { return run(test::psnic_binary() + " " + args); }

std::vector<std::string> split(const std::string& s, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, separator)) parts.push_back(part);
  return parts;
}

std::vector<std::string> lines(const std::string& s) { return split(s, '\n'); }

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\n") - begin + 1);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// A user-defined bridge network, removed on destruction. Declare it before the containers
// attached to it, so that they are gone first.
class Network {
 public:
  explicit Network(char tag) : name_(unique_name(tag)) { must("docker network create " + name_); }
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;
  ~Network() { run("docker network rm " + name_); }

  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// What the container's own sysfs says about one of its interfaces.
struct Inside {
  unsigned ifindex = 0;  // in the container's namespace
  unsigned iflink = 0;   // the peer's ifindex, in the peer's namespace
};

Inside inside(const Container& c, const std::string& ifname) {
  std::istringstream in(
      c.exec("cat /sys/class/net/" + ifname + "/ifindex /sys/class/net/" + ifname + "/iflink"));
  Inside i;
  in >> i.ifindex >> i.iflink;
  EXPECT_NE(i.ifindex, 0u) << c.name() << " " << ifname;
  return i;
}

// The nsid that the host (the caller's namespace) gives the namespace of `pid`, per lsns. lsns
// scans every process and now and then exits 1 when one of them exits under it: asked again.
std::string host_nsid_of(const std::string& pid) {
  const std::string command = "lsns -n -t net -p " + pid + " -o NETNSID";
  CommandResult r;
  for (int attempt = 0; attempt < 5; ++attempt) {
    r = run(command);
    if (r.status == 0) return trim(r.out);
    usleep(20000);
  }
  ADD_FAILURE() << "command failed (" << r.status << "): " << command << "\n" << r.err;
  return "";
}

// The host end of the container's `ifname`, found without psnic and without trusting any
// ifindex alone: the host link whose ifindex is the interface's iflink must be a veth line
// "N: NAME@ifM: ... link-netnsid K" with M the interface's ifindex and K the nsid of the
// container's namespace. Returns "" (after a failure) when there is no such link.
std::string expected_host_veth(const Container& c, const std::string& ifname) {
  const Inside in = inside(c, ifname);
  const std::string nsid = host_nsid_of(c.pid());
  EXPECT_NE(nsid, "") << "the host has no nsid for the namespace of " << c.name();
  static const std::regex link_line(R"(^(\d+): ([^:@ ]+)@if(\d+): .* link-netnsid (\d+))");
  for (const std::string& line : lines(must("ip -o link show"))) {
    std::smatch m;
    if (!std::regex_search(line, m, link_line) || std::stoul(m[1]) != in.iflink) continue;
    const std::string name = m[2];
    EXPECT_EQ(std::stoul(m[3]), in.ifindex) << line;
    EXPECT_EQ(m[4].str(), nsid) << line;
    static const std::regex veth_kind(R"(\\ +veth( |$))");
    EXPECT_TRUE(std::regex_search(must("ip -o -d link show dev " + name), veth_kind)) << name;
    if (std::stoul(m[3]) != in.ifindex || m[4].str() != nsid) return "";
    return name;
  }
  ADD_FAILURE() << "no host link " << in.iflink << " with a peer for " << c.name() << " " << ifname;
  return "";
}

// Gives the container's `ifname` a small ifindex, the same for every container treated so: it
// is moved out to a scratch namespace where its ifindex is taken (so it is given that
// namespace's next free one) and back home, where that index is free. Its host peer is
// untouched.
void renumber(const Container& c, const std::string& ifname, char scratch_tag, char taken_tag) {
  const Inside before = inside(c, ifname);
  test::TestNetns scratch(scratch_tag);
  scratch.ip("link add " + unique_name(taken_tag) + " index " + std::to_string(before.ifindex) +
             " type bridge");
  c.ip("link set " + ifname + " netns " + scratch.name());
  scratch.ip("link set " + ifname + " netns " + c.pid());
  c.ip("link set " + ifname + " up");
}

// One field-split line of `psnic --all`: PID, HOST_INTERFACE, INTERFACE, CONTAINER_ID.
using Row = std::vector<std::string>;

std::vector<Row> table(const std::string& out) {
  std::vector<Row> rows;
  for (const std::string& line : lines(out)) {
    rows.push_back(split(line, '\t'));
    EXPECT_EQ(rows.back().size(), 4u) << line;
    rows.back().resize(4);
  }
  return rows;
}

int count_rows(const std::vector<Row>& rows, size_t column, const std::string& value) {
  return static_cast<int>(
      std::count_if(rows.begin(), rows.end(), [&](const Row& r) { return r[column] == value; }));
}

// `psnic --all` says nothing on stderr but, perhaps, that it skipped processes it may not look
// at (outside this test's control).
void expect_only_skip_notes(const std::string& err) {
  for (const std::string& line : lines(err)) EXPECT_EQ(line.rfind("psnic: skipped ", 0), 0u) << err;
}

// The JSON object of the interface `ifname` in psnic's `--json` output, "" when absent.
std::string json_object(const std::string& json, const std::string& ifname) {
  for (const std::string& line : lines(json))
    if (line.find("\"interface\":\"" + ifname + "\"") != std::string::npos) return line;
  return "";
}

std::string json_field(const std::string& name, const std::string& value) {
  return "\"" + name + "\":\"" + value + "\"";
}

class DockerTest : public E2eTest {};

TEST_F(DockerTest, DefaultBridgeContainerPrintsItsHostVeth) {
  Container c('a');
  ASSERT_FALSE(HasFailure());
  const std::string veth = expected_host_veth(c, "eth0");
  ASSERT_NE(veth, "");
  const Inside in = inside(c, "eth0");

  CommandResult r = psnic(c.pid());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, veth + "\n");
  EXPECT_EQ(r.err, "");

  CommandResult j = psnic("--json " + c.pid());
  EXPECT_EQ(j.status, 0);
  EXPECT_EQ(j.out, "[\n{\"pid\":" + c.pid() +
                       ",\"netns\":" + chomp(must("stat -L -c %i /proc/" + c.pid() + "/ns/net")) +
                       ",\"netns_name\":null,\"interface\":\"eth0\",\"ifindex\":" +
                       std::to_string(in.ifindex) +
                       ",\"kind\":\"veth\",\"peer\":\"host\",\"host_interface\":\"" + veth +
                       "\",\"host_ifindex\":" + std::to_string(in.iflink) +
                       ",\"parent\":null,\"container_id\":\"" + c.id() + "\"}\n]\n");
  EXPECT_EQ(j.err, "");
}

TEST_F(DockerTest, SecondNetworkGivesASecondHostVeth) {
  Network net('N');
  Container c('b');
  must("docker network connect " + net.name() + " " + c.name());
  ASSERT_FALSE(HasFailure());
  const std::string veth0 = expected_host_veth(c, "eth0");
  const std::string veth1 = expected_host_veth(c, "eth1");
  ASSERT_NE(veth0, "");
  ASSERT_NE(veth1, "");
  ASSERT_NE(veth0, veth1);

  CommandResult r = psnic(c.pid());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(sorted(lines(r.out)), sorted({veth0, veth1})) << r.out;
  EXPECT_TRUE(r.out.ends_with('\n')) << r.out;
  EXPECT_EQ(r.err, "");

  // Which host veth belongs to which interface.
  CommandResult j = psnic("--json " + c.pid());
  EXPECT_EQ(j.status, 0);
  EXPECT_NE(json_object(j.out, "eth0").find(json_field("host_interface", veth0)), std::string::npos)
      << j.out;
  EXPECT_NE(json_object(j.out, "eth1").find(json_field("host_interface", veth1)), std::string::npos)
      << j.out;
}

TEST_F(DockerTest, HostNetworkContainerExitsOneWithOneLine) {
  Container c('c', "--network host");
  ASSERT_FALSE(HasFailure());
  CommandResult r = psnic(c.pid());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "psnic: " + c.pid() + ": host network, no interface of its own\n");
}

TEST_F(DockerTest, NoneNetworkContainerExitsOneWithOneLine) {
  Container c('d', "--network none");
  ASSERT_FALSE(HasFailure());
  CommandResult r = psnic(c.pid());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
  EXPECT_EQ(r.err, "psnic: " + c.pid() + ": no interfaces but loopback\n");
}

TEST_F(DockerTest, ContainerNetworkModeSharesTheOwnersVeth) {
  Container owner('e');
  Container guest('f', "--network container:" + owner.name());
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(chomp(must("stat -L -c %i /proc/" + guest.pid() + "/ns/net")),
            chomp(must("stat -L -c %i /proc/" + owner.pid() + "/ns/net")));
  const std::string veth = expected_host_veth(owner, "eth0");
  ASSERT_NE(veth, "");

  CommandResult r = psnic(guest.pid());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, veth + "\n");
  EXPECT_EQ(r.err, "");

  // Listed once, under the lowest PID in it and the container that PID belongs to.
  const bool owner_lower = std::stol(owner.pid()) < std::stol(guest.pid());
  const Container& lowest = owner_lower ? owner : guest;
  const Container& highest = owner_lower ? guest : owner;
  CommandResult all = psnic("--all");
  EXPECT_EQ(all.status, 0) << all.err;
  expect_only_skip_notes(all.err);
  std::vector<Row> rows = table(all.out);
  EXPECT_EQ(count_rows(rows, 1, veth), 1) << all.out;
  EXPECT_EQ(count_rows(rows, 0, highest.pid()), 0) << all.out;
  EXPECT_EQ(count_rows(rows, 3, highest.id()), 0) << all.out;
  EXPECT_EQ(std::count(rows.begin(), rows.end(), Row{lowest.pid(), veth, "eth0", lowest.id()}), 1)
      << all.out;
}

TEST_F(DockerTest, AllListsEveryContainerButHostNetworkOnes) {
  Network net('M');
  Container bridged('g');
  Container two('h');
  Container none('i', "--network none");
  Container host('j', "--network host");
  must("docker network connect " + net.name() + " " + two.name());
  ASSERT_FALSE(HasFailure());
  const std::string bridged_veth = expected_host_veth(bridged, "eth0");
  const std::string two_veth0 = expected_host_veth(two, "eth0");
  const std::string two_veth1 = expected_host_veth(two, "eth1");
  ASSERT_FALSE(HasFailure());

  CommandResult all = psnic("--all");
  EXPECT_EQ(all.status, 0) << all.err;
  expect_only_skip_notes(all.err);
  std::vector<Row> rows = table(all.out);
  auto has = [&](const Row& row) { return std::count(rows.begin(), rows.end(), row); };
  EXPECT_EQ(has({bridged.pid(), bridged_veth, "eth0", bridged.id()}), 1) << all.out;
  EXPECT_EQ(has({two.pid(), two_veth0, "eth0", two.id()}), 1) << all.out;
  EXPECT_EQ(has({two.pid(), two_veth1, "eth1", two.id()}), 1) << all.out;
  EXPECT_EQ(has({none.pid(), "-", "-", none.id()}), 1) << all.out;
  EXPECT_EQ(count_rows(rows, 3, bridged.id()), 1) << all.out;
  EXPECT_EQ(count_rows(rows, 3, two.id()), 2) << all.out;
  EXPECT_EQ(count_rows(rows, 3, none.id()), 1) << all.out;
  EXPECT_EQ(count_rows(rows, 0, host.pid()), 0) << all.out;
  EXPECT_EQ(count_rows(rows, 3, host.id()), 0) << all.out;

  CommandResult json = psnic("--all --json");
  EXPECT_EQ(json.status, 0) << json.err;
  expect_only_skip_notes(json.err);
  for (const Container* c : {&bridged, &two, &none})
    EXPECT_NE(json.out.find(json_field("container_id", c->id())), std::string::npos)
        << c->name() << "\n"
        << json.out;
  EXPECT_EQ(json.out.find(host.id()), std::string::npos) << json.out;
  // `none` has no interface but loopback: one object whose interface keys are null.
  EXPECT_NE(json.out.find("\"interface\":null,\"ifindex\":null,\"kind\":null,\"peer\":null,"
                          "\"host_interface\":null,\"host_ifindex\":null,\"parent\":null,"
                          "\"container_id\":\"" +
                          none.id() + "\""),
            std::string::npos)
      << json.out;
}

TEST_F(DockerTest, CollidingEth0IfindexesGetTheirOwnHostVeths) {
  Container a('k');
  Container b('l');
  ASSERT_FALSE(HasFailure());
  // dockerd moves eth0 in from the host, keeping the host-wide unique ifindex it was created
  // with; make the two collide, as they do when the veth is created inside the namespace.
  if (inside(a, "eth0").ifindex != inside(b, "eth0").ifindex) {
    renumber(a, "eth0", 'm', 'n');
    renumber(b, "eth0", 'o', 'p');
  }
  ASSERT_FALSE(HasFailure());
  const unsigned index = inside(a, "eth0").ifindex;
  ASSERT_EQ(inside(b, "eth0").ifindex, index);
  const std::string veth_a = expected_host_veth(a, "eth0");
  const std::string veth_b = expected_host_veth(b, "eth0");
  ASSERT_NE(veth_a, "");
  ASSERT_NE(veth_b, "");
  ASSERT_NE(veth_a, veth_b);

  CommandResult r = psnic(a.pid() + " " + b.pid());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, a.pid() + "\t" + veth_a + "\n" + b.pid() + "\t" + veth_b + "\n");
  EXPECT_EQ(r.err, "");

  for (const Container* c : {&a, &b}) {
    CommandResult j = psnic("--json " + c->pid());
    EXPECT_EQ(j.status, 0);
    const std::string object = json_object(j.out, "eth0");
    EXPECT_NE(object.find("\"ifindex\":" + std::to_string(index) + ","), std::string::npos)
        << j.out;
    EXPECT_NE(object.find(json_field("host_interface", c == &a ? veth_a : veth_b)),
              std::string::npos)
        << j.out;
    EXPECT_NE(object.find(json_field("container_id", c->id())), std::string::npos) << j.out;
  }

  CommandResult all = psnic("--all");
  EXPECT_EQ(all.status, 0) << all.err;
  expect_only_skip_notes(all.err);
  std::vector<Row> rows = table(all.out);
  EXPECT_EQ(std::count(rows.begin(), rows.end(), Row{a.pid(), veth_a, "eth0", a.id()}), 1)
      << all.out;
  EXPECT_EQ(std::count(rows.begin(), rows.end(), Row{b.pid(), veth_b, "eth0", b.id()}), 1)
      << all.out;
}

}  // namespace
}  // namespace psnic::test::e2e
