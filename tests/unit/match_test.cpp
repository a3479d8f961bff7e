// The match rule on synthetic link tables, above all where ifindexes collide across namespaces.
#include <gtest/gtest.h>
#include <linux/if.h>

#include <map>

#include "resolver/match.h"

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

// The caller's namespace as a table, with the two nsids it would report; counts what is asked.
class FakeHost : public HostSide {
 public:
  FakeHost(std::vector<Link> links, int32_t target_nsid, int32_t own_nsid_in_target = -1)
      : target_nsid_(target_nsid), own_nsid_(own_nsid_in_target) {
    for (Link& l : links) links_[l.ifindex] = std::move(l);
  }
  std::optional<Link> link(uint32_t ifindex) override {
    ++link_queries;
    auto it = links_.find(ifindex);
    if (it == links_.end()) return std::nullopt;
    return it->second;
  }
  int32_t target_nsid() override { return target_nsid_; }
  int32_t own_nsid_in_target() override {
    ++own_nsid_queries;
    return own_nsid_;
  }
  int link_queries = 0;
  int own_nsid_queries = 0;

 private:
  std::map<uint32_t, Link> links_;
  int32_t target_nsid_;
  int32_t own_nsid_;
};

// A host with its own eth0 at ifindex 2 (the index every container's eth0 also has) and two
// container veths whose peers are both "eth0, ifindex 2" in namespaces nsid 0 and nsid 1.
std::vector<Link> colliding_host() {
  return {loopback(), make_link(2, "eth0", ""), make_link(7, "vethA", "veth", 2, 0),
          make_link(9, "vethB", "veth", 2, 1)};
}

TEST(Match, PairsVethWithItsHostPeer) {
  FakeHost host(colliding_host(), 0);
  auto pairs = match_interfaces({loopback(), make_link(2, "eth0", "veth", 7, 0)}, host);
  ASSERT_EQ(pairs.size(), 1u);  // loopback left out
  EXPECT_EQ(pairs[0].placement, Placement::host_peer);
  EXPECT_EQ(pairs[0].name, "eth0");
  EXPECT_EQ(pairs[0].host_name, "vethA");
  EXPECT_EQ(pairs[0].host_ifindex, 7u);
  EXPECT_EQ(host.own_nsid_queries, 0);  // only parents need it
}

TEST(Match, SameContainerIfindexInTwoNamespacesGivesEachItsOwnPeer) {
  FakeHost a(colliding_host(), 0);
  FakeHost b(colliding_host(), 1);
  auto in_a = match_interfaces({make_link(2, "eth0", "veth", 7, 0)}, a);
  auto in_b = match_interfaces({make_link(2, "eth0", "veth", 9, 0)}, b);
  EXPECT_EQ(in_a.at(0).host_name, "vethA");
  EXPECT_EQ(in_b.at(0).host_name, "vethB");
}

TEST(Match, RejectsHostLinkWhosePeerIsInAnotherNamespace) {
  // Namespace nsid 1 claims host ifindex 7, but 7's peer lives in nsid 0: not a pair.
  FakeHost b(colliding_host(), 1);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 7, 0)}, b);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
  EXPECT_EQ(pairs.at(0).host_name, "");
}

TEST(Match, NeverMatchesOnTheContainerIfindexAlone) {
  // eth0@if2 in the namespace, and the host has an unrelated ifindex 2: no pair.
  FakeHost host(colliding_host(), 0);
  auto pairs = match_interfaces({make_link(5, "eth0", "veth", 2, 0)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, RejectsHostVethPointingAtAnotherIfindexOfTheNamespace) {
  // Host veth 7 pairs with ifindex 2 of nsid 0; namespace link 3 also points at 7 (stale data).
  FakeHost host(colliding_host(), 0);
  auto pairs = match_interfaces({make_link(3, "eth1", "veth", 7, 0)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, PeerInANonHostNamespaceWhoseIfindexExistsOnTheHost) {
  // eth0's peer is ifindex 9 in a third namespace; the host's own 9 is a veth into nsid 1.
  FakeHost host(colliding_host(), 0);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 9, 4)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, UnassignedNsidNeverMatches) {
  std::vector<Link> host_links = {make_link(7, "vethA", "veth", 2, -1)};
  FakeHost host(host_links, -1);
  auto pairs = match_interfaces({make_link(2, "eth0", "veth", 7, 0)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::peer_elsewhere);
}

TEST(Match, VethPairInsideTheNamespace) {
  FakeHost host(colliding_host(), 0);
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
  FakeHost host(host_links, 0);
  auto pairs = match_interfaces(
      {loopback(), make_link(2, "eth0", "veth", 7, 0), make_link(3, "eth1", "veth", 11, 0)}, host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].host_name, "vethA");
  EXPECT_EQ(pairs[1].host_name, "vethC");
}

TEST(Match, NetkitIsMatchedLikeVeth) {
  FakeHost host({make_link(20, "nk0", "netkit", 2, 3)}, 3);
  auto pairs = match_interfaces({make_link(2, "eth0", "netkit", 20, 0)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::host_peer);
  EXPECT_EQ(pairs.at(0).host_name, "nk0");
}

TEST(Match, MacvlanOnAHostParentIsNamed) {
  FakeHost host({make_link(11, "br0", "bridge")}, 0, /*own_nsid_in_target=*/5);
  auto pairs = match_interfaces({make_link(12, "mv0", "macvlan", 11, 5)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::parent);
  EXPECT_EQ(pairs.at(0).kind, "macvlan");
  EXPECT_EQ(pairs.at(0).parent, "br0");
  EXPECT_EQ(pairs.at(0).host_name, "");
}

TEST(Match, ParentInAThirdNamespaceIsNotNamedFromTheHost) {
  FakeHost host({make_link(11, "br0", "bridge")}, 0, /*own_nsid_in_target=*/5);
  auto pairs = match_interfaces({make_link(12, "ipv0", "ipvlan", 11, 6)}, host);
  EXPECT_EQ(pairs.at(0).placement, Placement::parent);
  EXPECT_EQ(pairs.at(0).parent, "");
}

TEST(Match, VlanOnALocalParentIsNamedFromTheNamespace) {
  FakeHost host(colliding_host(), 0);
  auto pairs = match_interfaces(
      {make_link(2, "eth0", "veth", 7, 0), make_link(3, "eth0.10", "vlan", 2)}, host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[1].placement, Placement::parent);
  EXPECT_EQ(pairs[1].parent, "eth0");
}

TEST(Match, StandaloneDevicesHaveNoPeer) {
  FakeHost host(colliding_host(), 0);
  auto pairs = match_interfaces({make_link(3, "dummy0", "dummy"), make_link(4, "tun0", "")}, host);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].placement, Placement::standalone);
  EXPECT_EQ(pairs[1].placement, Placement::standalone);
}

TEST(Match, OnlyLoopbackGivesNothing) {
  FakeHost host(colliding_host(), 0);
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
