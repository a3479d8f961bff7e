// The resolver against real namespaces and veth pairs made by the test.
#include "resolver/resolver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "base/error.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using test::must;
using test::Sleeper;
using test::TestNetns;
using test::unique_name;

const InterfacePair* find_interface(const NetnsReport& report, const std::string& name) {
  for (const InterfacePair& i : report.interfaces)
    if (i.name == name) return &i;
  return nullptr;
}

using VethNamespace = test::TestVeth;

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override { PSNIC_REQUIRE_ROOT(); }
};

TEST_F(ResolverTest, FindsTheHostPeerOfAVeth) {
  VethNamespace v('a');
  Sleeper inside(v.ns.path());
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(inside.pid());
  EXPECT_FALSE(report.host_network);
  ASSERT_EQ(report.interfaces.size(), 1u);
  EXPECT_EQ(report.interfaces[0].name, "eth0");
  EXPECT_EQ(report.interfaces[0].kind, "veth");
  EXPECT_EQ(report.interfaces[0].placement, Placement::host_peer);
  EXPECT_EQ(report.interfaces[0].host_name, v.host);
  EXPECT_EQ(report.interfaces[0].host_ifindex, test::host_ifindex(v.host));
}

TEST_F(ResolverTest, NamespacesWhoseEth0SharesAnIfindexGetTheirOwnPeers) {
  std::vector<std::unique_ptr<VethNamespace>> namespaces;
  std::vector<std::unique_ptr<Sleeper>> sleepers;
  for (char tag : {'b', 'c', 'd', 'e'}) {
    namespaces.push_back(std::make_unique<VethNamespace>(tag));
    sleepers.push_back(std::make_unique<Sleeper>(namespaces.back()->ns.path()));
  }
  // Every namespace's eth0 has the same ifindex: the collision this test is about.
  std::set<std::string> indexes;
  for (auto& v : namespaces)
    indexes.insert(test::chomp(v->ns.ip("-o link show eth0 | cut -d: -f1")));
  ASSERT_EQ(indexes.size(), 1u);

  Resolver resolver;
  for (size_t i = 0; i < namespaces.size(); ++i) {
    NetnsReport report = resolver.resolve_pid(sleepers[i]->pid());
    ASSERT_EQ(report.interfaces.size(), 1u);
    EXPECT_EQ(report.interfaces[0].host_name, namespaces[i]->host);
  }
}

TEST_F(ResolverTest, PeerInANonHostNamespaceWhoseIfindexExistsOnTheHost) {
  TestNetns a('f');
  TestNetns b('g');
  // a's eth0 pairs with b's peer0. Make sure peer0's ifindex is also taken on the host.
  must("ip link add eth0 netns " + a.name() + " type veth peer name peer0 netns " + b.name());
  std::string peer_index = test::chomp(b.ip("-o link show peer0 | cut -d: -f1"));
  std::string host_link = test::chomp(
      must("ip -o link show | awk -F': ' '$1==" + peer_index + " {print $2}' | cut -d@ -f1"));
  std::string decoy;
  if (host_link.empty()) {
    // Nothing on the host has that index: create one that does.
    decoy = unique_name('H');
    must("ip link add " + decoy + " index " + peer_index + " type bridge");
  }
  Sleeper inside(a.path());
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(inside.pid());
  ASSERT_EQ(report.interfaces.size(), 1u);
  EXPECT_EQ(report.interfaces[0].placement, Placement::peer_elsewhere);
  EXPECT_EQ(report.interfaces[0].host_name, "");
  EXPECT_FALSE(report.has_host_peer());
  if (!decoy.empty()) must("ip link del " + decoy);
}

TEST_F(ResolverTest, MacvlanOnAHostBridgeReportsKindAndParent) {
  TestNetns ns('h');
  std::string bridge = unique_name('B');
  std::string macvlan = unique_name('M');
  must("ip link add " + bridge + " type bridge");
  must("ip link add " + macvlan + " link " + bridge + " type macvlan mode bridge");
  must("ip link set " + macvlan + " netns " + ns.name());
  Sleeper inside(ns.path());
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(inside.pid());
  must("ip link del " + bridge);
  ASSERT_EQ(report.interfaces.size(), 1u);
  EXPECT_EQ(report.interfaces[0].kind, "macvlan");
  EXPECT_EQ(report.interfaces[0].placement, Placement::parent);
  EXPECT_EQ(report.interfaces[0].parent, bridge);
  EXPECT_FALSE(report.has_host_peer());
}

TEST_F(ResolverTest, SeveralInterfacesInOneNamespace) {
  VethNamespace v('i');
  std::string second = unique_name('J');
  must("ip link add " + second + " type veth peer name eth1 netns " + v.ns.name());
  // This kernel has no dummy or vlan driver: a bridge stands alone, a macvlan sits on eth0.
  v.ns.ip("link add br0 type bridge");
  v.ns.ip("link add mv0 link eth0 type macvlan");
  Sleeper inside(v.ns.path());
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(inside.pid());
  ASSERT_EQ(report.interfaces.size(), 4u);
  EXPECT_EQ(find_interface(report, "eth0")->host_name, v.host);
  EXPECT_EQ(find_interface(report, "eth1")->host_name, second);
  EXPECT_EQ(find_interface(report, "br0")->placement, Placement::standalone);
  EXPECT_EQ(find_interface(report, "mv0")->placement, Placement::parent);
  EXPECT_EQ(find_interface(report, "mv0")->parent, "eth0");
}

TEST_F(ResolverTest, VethPairInsideTheNamespaceHasNoHostPeer) {
  TestNetns ns('j');
  ns.ip("link add in0 type veth peer name in1");
  Sleeper inside(ns.path());
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(inside.pid());
  ASSERT_EQ(report.interfaces.size(), 2u);
  EXPECT_EQ(report.interfaces[0].placement, Placement::peer_local);
  EXPECT_FALSE(report.has_host_peer());
}

TEST_F(ResolverTest, HostNetworkProcessIsReportedAsSuch) {
  Sleeper here;
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(here.pid());
  EXPECT_TRUE(report.host_network);
  EXPECT_TRUE(report.interfaces.empty());
}

TEST_F(ResolverTest, NamespaceWithOnlyLoopback) {
  TestNetns ns('k');
  Sleeper inside(ns.path());
  Resolver resolver;
  NetnsReport report = resolver.resolve_pid(inside.pid());
  EXPECT_FALSE(report.host_network);
  EXPECT_TRUE(report.interfaces.empty());
}

TEST_F(ResolverTest, ResolvePidNamesTheNamespaceWhenAsked) {
  VethNamespace v('p');
  Sleeper inside(v.ns.path());
  Resolver resolver;
  ResolveOptions options;
  options.netns_name = true;
  EXPECT_EQ(resolver.resolve_pid(inside.pid(), options).netns_name, v.ns.name());
  // Unasked, /run/netns is not read: the lookup `psnic PID` makes stays as it was.
  EXPECT_EQ(resolver.resolve_pid(inside.pid()).netns_name, "");
}

TEST_F(ResolverTest, NoSuchProcessIsAnErrorNamingThePid) {
  Sleeper gone;
  pid_t pid = gone.pid();
  gone.stop();
  Resolver resolver;
  try {
    resolver.resolve_pid(pid);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), ESRCH);
    EXPECT_EQ(e.object(), std::to_string(pid));
  }
}

TEST_F(ResolverTest, ProcessExitingDuringLookupNeverGetsAnotherAnswer) {
  VethNamespace v('l');
  Resolver resolver;
  int answered = 0, refused = 0;
  for (int round = 0; round < 300; ++round) {
    // A child that enters the namespace and exits at once, racing the lookup.
    pid_t child = fork();
    if (child == 0) {
      int fd = open(v.ns.path().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) setns(fd, CLONE_NEWNET);
      _exit(0);
    }
    try {
      NetnsReport report = resolver.resolve_pid(child);
      // Seen before it entered (host network) or after: never any other namespace's links.
      if (!report.host_network) {
        ASSERT_EQ(report.interfaces.size(), 1u);
        EXPECT_EQ(report.interfaces[0].host_name, v.host);
      }
      ++answered;
    } catch (const Error& e) {
      EXPECT_EQ(e.errnum(), ESRCH) << e.what();
      ++refused;
    }
    waitpid(child, nullptr, 0);
  }
  EXPECT_EQ(answered + refused, 300);
}

TEST_F(ResolverTest, ReapedZombieIsNoSuchProcess) {
  // A zombie has no namespaces left; once reaped its PID is gone.
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  Resolver resolver;
  EXPECT_THROW(resolver.resolve_pid(child), Error);
}

TEST_F(ResolverTest, ResolveAllFindsEachNamespaceOnceWithItsLowestPid) {
  VethNamespace v('m');
  TestNetns bare('n');
  Sleeper first(v.ns.path());
  Sleeper second(v.ns.path());
  Sleeper in_bare(bare.path());
  TestNetns named_only('o');  // no process at all
  must("ip link add " + unique_name('O') + " type veth peer name eth0 netns " + named_only.name());

  Resolver resolver;
  ResolveOptions options;
  options.identity = true;
  BatchReport batch = resolver.resolve_all(options);
  int seen_v = 0, seen_bare = 0, seen_named = 0;
  for (const NetnsReport& r : batch.namespaces) {
    if (r.netns_name == v.ns.name()) {
      ++seen_v;
      EXPECT_EQ(r.pid, std::min(first.pid(), second.pid()));
      ASSERT_EQ(r.interfaces.size(), 1u);
      EXPECT_EQ(r.interfaces[0].host_name, v.host);
    } else if (r.netns_name == bare.name()) {
      ++seen_bare;
      EXPECT_EQ(r.pid, in_bare.pid());
      EXPECT_TRUE(r.interfaces.empty());
    } else if (r.netns_name == named_only.name()) {
      ++seen_named;
      EXPECT_EQ(r.pid, 0);
      ASSERT_EQ(r.interfaces.size(), 1u);
      EXPECT_EQ(r.interfaces[0].host_name, unique_name('O'));
    }
    EXPECT_FALSE(r.host_network);
  }
  EXPECT_EQ(seen_v, 1);
  EXPECT_EQ(seen_bare, 1);
  EXPECT_EQ(seen_named, 1);
}

TEST_F(ResolverTest, ResolveAllPassesOverNetnsFilesWithoutANamespace) {
  // `ip netns add` creates the file before it mounts the namespace on it; `ip netns del`
  // unmounts before it unlinks. A batch running meanwhile must neither fail nor list it.
  std::string path = "/run/netns/" + unique_name('u');
  must("mkdir -p /run/netns && touch " + path);
  Resolver resolver;
  BatchReport batch;
  EXPECT_NO_THROW(batch = resolver.resolve_all());
  for (const NetnsReport& r : batch.namespaces) EXPECT_NE(r.netns_name, unique_name('u'));
  unlink(path.c_str());
}

}  // namespace
}  // namespace psnic
