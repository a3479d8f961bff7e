// The match rule on synthetic link tables, above all where ifindexes collide across namespaces.
#include "resolver/match.h"

#include <gtest/gtest.h>
#include <linux/if.h>

#include <map>

namespace psnic {
namespace {

Link make_link(uint32_t ifindex, std::string name, std::string kind, uint32_t link = 0,
               std::optional<int32_t> link_netnsid = std::nullopt) {
  Link l;
  l.ifindex = ifindex;
  l.name = std::move(name);
  l.kind = std::move(kind);
  l.link = link;
  l.link_netnsid = link_netnsid;
  return l;
}

Link loopback() {
  Link l = make_link(1, "lo", "");
  l.flags = IFF_LOOPBACK;
  return l;
}

// The caller's namespace as a table, and the nsid the target namespace gives it; counts what
// is asked.
class FakeHost : public HostSide {
 public:
  FakeHost(std::vector<Link> links, int32_t own_nsid_in_target) : own_nsid_(own_nsid_in_target) {
    for (Link& l : links) links_[l.ifindex] = std::move(l);
  }
  std::optional<Link> link(uint32_t ifindex) override {
    ++link_queries;
    auto it = links_.find(ifindex);
    if (it == links_.end()) return std::nullopt;
    return it->second;
  }
  int32_t own_nsid_in_target() override {
    ++own_nsid_queries;
    return own_nsid_;
  }
  int link_queries = 0;
  int own_nsid_queries = 0;

 private:
  std::map<uint32_t, Link> links_;
  int32_t own_nsid_;
};

// A host with its own eth0 at ifindex 2 (the index every container's eth0 also has) and two
// container veths whose peers are both "eth0, ifindex 2" in the namespaces the host calls nsid 0
// and nsid 1. The containers call the host nsid 0 (their first peer namespace).
std::vector<Link> colliding_host() {
  return {loopback(), make_link(2, "eth0", ""), make_link(7, "vethA", "veth", 2, 0),
          make_link(9, "vethB", "veth", 2, 1)};
}
constexpr int32_t kHost = 0;  // the nsid a container gives the host

TEST(Match, PairsVethWithItsHostPeer) {
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces({loopback(), make_link(2, "eth0", "veth", 7, kHost)}, host);
  ASSERT_EQ(pairs.size(), 1u);  // loopback left out
  EXPECT_EQ(pairs[0].placement, Placement::host_peer);
  EXPECT_EQ(pairs[0].name, "eth0");
  EXPECT_EQ(pairs[0].host_name, "vethA");
  EXPECT_EQ(pairs[0].host_ifindex, 7u);
  EXPECT_EQ(host.link_queries, 1);
  EXPECT_EQ(host.own_nsid_queries, 1);
}

TEST(Match, SameContainerIfindexInTwoNamespacesGivesEachItsOwnPeer) {
  FakeHost a(colliding_host(), kHost);
  FakeHost b(colliding_host(), kHost);
  auto in_a = match_interfaces({make_link(2, "eth0", "veth", 7, kHost)}, a);
  auto in_b = match_interfaces({make_link(2, "eth0", "veth", 9, kHost)}, b);
  EXPECT_EQ(in_a.at(0).host_name, "vethA");
  EXPECT_EQ(in_b.at(0).host_name, "vethB");
}

TEST(Match, RejectsHostLinkPairedWithAnotherIfindex) {
  // The namespace's eth1 (ifindex 3) claims host ifindex 7, whose peer is ifindex 2: not a pair.
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces({make_link(3, "eth1", "veth", 7, kHost)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
  EXPECT_EQ(pairs.at(0).host_name, "");
}

TEST(Match, RejectsHostLinkThatIsNoPeerAtAll) {
  // eth0 (ifindex 2) points at host ifindex 2, and the host's own eth0 has ifindex 2 as well.
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 2, kHost)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, NeverMatchesOnTheContainerIfindexAlone) {
  // eth0@if2 in the namespace, and the host has an unrelated ifindex 2: no pair.
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces({make_link(5, "eth0", "veth", 2, kHost)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, PeerInANonHostNamespaceWhoseIfindexExistsOnTheHost) {
  // eth0's peer is ifindex 7 of the namespace it calls nsid 4, not the host; the host's own 7
  // even points back at ifindex 2. Only the nsid tells them apart.
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 7, 4)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
  EXPECT_EQ(host.link_queries, 0);
}

TEST(Match, NamespaceThatGaveTheHostNoNsidHasNoHostPeer) {
  FakeHost host(colliding_host(), -1);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 7, 0)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, NegativeNsidNeverMatches) {
  FakeHost host(colliding_host(), -1);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 7, -1)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, HostLinkWithoutPeerNamespaceIsNoPeer) {
  // Host ifindex 7 points at ifindex 2 but in its own namespace (no link_netnsid).
  FakeHost host({make_link(7, "vethX", "veth", 2)}, kHost);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 7, kHost)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, VethPairInsideTheNamespace) {
  FakeHost host(colliding_host(), kHost);
  auto pairs =
      match_interfaces({make_link(3, "in0", "veth", 4), make_link(4, "in1", "veth", 3)}, host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].placement, Placement::peer_local);
  EXPECT_EQ(pairs[1].placement, Placement::peer_local);
  EXPECT_EQ(host.link_queries, 0);
}

TEST(Match, SeveralInterfacesInOneNamespace) {
  std::vector<Link> host_links = colliding_host();
  host_links.push_back(make_link(11, "vethC", "veth", 3, 0));
  FakeHost host(host_links, kHost);
  auto pairs = match_interfaces(
      {loopback(), make_link(2, "eth0", "veth", 7, kHost), make_link(3, "eth1", "veth", 11, kHost)},
      host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].host_name, "vethA");
  EXPECT_EQ(pairs[1].host_name, "vethC");
}

TEST(Match, NetkitIsMatchedLikeVeth) {
  FakeHost host({make_link(20, "nk0", "netkit", 2, 3)}, kHost);
  auto pairs = match_interfaces({make_link(2, "eth0", "netkit", 20, kHost)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::host_peer);
  EXPECT_EQ(pairs.at(0).host_name, "nk0");
}

TEST(Match, MacvlanOnAHostParentIsNamed) {
  FakeHost host({make_link(11, "br0", "bridge")}, /*own_nsid_in_target=*/5);
  auto pairs = match_interfaces({make_link(12, "mv0", "macvlan", 11, 5)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::parent);
  EXPECT_EQ(pairs.at(0).kind, "macvlan");
  EXPECT_EQ(pairs.at(0).parent, "br0");
  EXPECT_EQ(pairs.at(0).host_name, "");
}

TEST(Match, ParentInAThirdNamespaceIsNotNamedFromTheHost) {
  FakeHost host({make_link(11, "br0", "bridge")}, /*own_nsid_in_target=*/5);
  auto pairs = match_interfaces({make_link(12, "ipv0", "ipvlan", 11, 6)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::parent);
  EXPECT_EQ(pairs.at(0).parent, "");
}

TEST(Match, VlanOnALocalParentIsNamedFromTheNamespace) {
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces(
      {make_link(2, "eth0", "veth", 7, kHost), make_link(3, "eth0.10", "vlan", 2)}, host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[1].placement, Placement::parent);
  EXPECT_EQ(pairs[1].parent, "eth0");
}

TEST(Match, StandaloneDevicesHaveNoPeer) {
  FakeHost host(colliding_host(), kHost);
  auto pairs = match_interfaces({make_link(3, "dummy0", "dummy"), make_link(4, "tun0", "")}, host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].placement, Placement::standalone);
  EXPECT_EQ(pairs[1].placement, Placement::standalone);
}

TEST(Match, OnlyLoopbackGivesNothing) {
  FakeHost host(colliding_host(), kHost);
  EXPECT_TRUE(match_interfaces({loopback()}, host).empty());
}

TEST(HostLinks, FindsByIfindex) {
  HostLinks links(colliding_host());
  ASSERT_TRUE(links.find(9));
  EXPECT_EQ(links.find(9)->name, "vethB");
  EXPECT_FALSE(links.find(8));
}

}  // namespace
}  // namespace psnic
