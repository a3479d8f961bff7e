// parse_link / parse_nsid on hand-built rtnetlink messages, well-formed and broken. Each message
// is copied into a heap block of exactly its size, so under ASan any read past it fails the test.
#include <gtest/gtest.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/error.h"
#include "resolver/netlink.h"

namespace psnic {
namespace {

// Builds one RTM_NEWLINK message with the same builder psnic's requests use.
class LinkMessage {
 public:
  explicit LinkMessage(int ifindex, uint16_t type = RTM_NEWLINK) : message_(type, 0) {
    auto* ifi = message_.put_header<ifinfomsg>();
    ifi->ifi_index = ifindex;
    ifi->ifi_flags = IFF_UP;
  }
  LinkMessage& name(const char* n) {
    message_.put_string(IFLA_IFNAME, n);
    return *this;
  }
  LinkMessage& u32(uint16_t type, uint32_t v) {
    message_.put_u32(type, v);
    return *this;
  }
  LinkMessage& kind(const char* k) {
    size_t nest = message_.begin_nest(IFLA_LINKINFO);
    message_.put_string(IFLA_INFO_KIND, k);
    message_.end_nest(nest);
    return *this;
  }
  LinkMessage& raw(uint16_t type, const void* data, size_t len) {
    message_.put_raw(type, data, len);
    return *this;
  }
  nlmsghdr* nlh() { return message_.header(); }
  // An exact-size heap copy of the first `size` bytes of the message.
  std::unique_ptr<char[]> copy(size_t size) {
    auto block = std::make_unique<char[]>(size);
    std::memcpy(block.get(), message_.header(), size);
    return block;
  }

 private:
  NetlinkMessage message_;
};

// Parses an exact-size copy of the message as it claims to be.
std::optional<Link> parse(LinkMessage& m) {
  size_t length = m.nlh()->nlmsg_len;
  auto block = m.copy(length);
  return parse_link(reinterpret_cast<const nlmsghdr*>(block.get()), length);
}

TEST(ParseLink, ReadsAVethWithItsPeer) {
  LinkMessage m(7);
  m.name("veth1a2b").kind("veth").u32(IFLA_LINK, 2).u32(IFLA_LINK_NETNSID, 3).u32(IFLA_MTU, 1500);
  std::optional<Link> link = parse(m);
  ASSERT_TRUE(link);
  EXPECT_EQ(link->ifindex, 7u);
  EXPECT_EQ(link->name, "veth1a2b");
  EXPECT_EQ(link->kind, "veth");
  EXPECT_EQ(link->link, 2u);
  ASSERT_TRUE(link->link_netnsid);
  EXPECT_EQ(*link->link_netnsid, 3);
  EXPECT_FALSE(link->is_loopback());
}

TEST(ParseLink, LeavesAbsentAttributesEmpty) {
  LinkMessage m(1);
  m.name("lo");
  std::optional<Link> link = parse(m);
  ASSERT_TRUE(link);
  EXPECT_EQ(link->kind, "");
  EXPECT_EQ(link->link, 0u);
  EXPECT_FALSE(link->link_netnsid);
}

TEST(ParseLink, ReadsNegativeNsid) {
  LinkMessage m(4);
  m.name("eth0").u32(IFLA_LINK_NETNSID, static_cast<uint32_t>(-1));
  ASSERT_TRUE(parse(m));
  EXPECT_EQ(*parse(m)->link_netnsid, -1);
}

TEST(ParseLink, RejectsOtherMessageTypes) {
  LinkMessage m(4, RTM_NEWADDR);
  m.name("eth0");
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsMessageWithoutName) {
  LinkMessage m(4);
  m.u32(IFLA_LINK, 2);
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsZeroIfindex) {
  LinkMessage m(0);
  m.name("eth0");
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsMessageLongerThanTheBuffer) {
  LinkMessage m(4);
  m.name("eth0").u32(IFLA_LINK, 9);
  size_t full = m.nlh()->nlmsg_len;
  for (size_t cut = 0; cut < full; ++cut) {
    auto block = m.copy(full);  // full copy, but claim fewer bytes are available
    EXPECT_FALSE(parse_link(reinterpret_cast<const nlmsghdr*>(block.get()), cut)) << cut;
  }
}

TEST(ParseLink, RejectsMessageShorterThanItsHeader) {
  LinkMessage m(4);
  m.nlh()->nlmsg_len = NLMSG_HDRLEN + sizeof(ifinfomsg) - 1;
  auto block = m.copy(m.nlh()->nlmsg_len);
  EXPECT_FALSE(parse_link(reinterpret_cast<const nlmsghdr*>(block.get()), m.nlh()->nlmsg_len));
}

TEST(ParseLink, RejectsAttributeRunningPastTheMessage) {
  LinkMessage m(4);
  m.name("eth0").u32(IFLA_LINK, 9);
  // Shrink the message so the last attribute's declared length overruns it.
  m.nlh()->nlmsg_len -= 2;
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsAttributeWithImpossibleLength) {
  LinkMessage m(4);
  m.name("eth0");
  auto* attr = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(m.nlh()) + m.nlh()->nlmsg_len);
  m.u32(IFLA_LINK, 9);
  attr->nla_len = 2;  // shorter than the attribute header itself
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsShortU32) {
  LinkMessage m(4);
  uint16_t half = 9;
  m.name("eth0").raw(IFLA_LINK, &half, sizeof half);
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsNameWithoutTerminator) {
  LinkMessage m(4);
  const char name[4] = {'e', 't', 'h', '0'};
  m.raw(IFLA_IFNAME, name, sizeof name);
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, RejectsMalformedNestedLinkInfo) {
  LinkMessage m(4);
  m.name("eth0");
  // IFLA_LINKINFO whose payload is a kind attribute claiming more bytes than the nest holds.
  struct {
    nlattr attr;
    char kind[4];
  } inner{{static_cast<uint16_t>(sizeof(nlattr) + 40), IFLA_INFO_KIND}, {'v', 'e', 't', 'h'}};
  m.raw(IFLA_LINKINFO, &inner, sizeof inner);
  EXPECT_FALSE(parse(m));
}

TEST(ParseLink, IgnoresUnknownAttributes) {
  LinkMessage m(4);
  const char blob[5] = {1, 2, 3, 4, 5};
  m.name("eth0").raw(0x7ff0, blob, sizeof blob).u32(IFLA_LINK, 3);
  std::optional<Link> link = parse(m);
  ASSERT_TRUE(link);
  EXPECT_EQ(link->link, 3u);
}

NetlinkMessage nsid_message() {
  NetlinkMessage m(RTM_NEWNSID, 0);
  m.put_header<rtgenmsg>()->rtgen_family = AF_UNSPEC;
  return m;
}

TEST(ParseNsid, ReadsAssignedAndUnassigned) {
  for (int32_t value : {0, 5, -1}) {
    NetlinkMessage m = nsid_message();
    m.put_u32(NETNSA_NSID, static_cast<uint32_t>(value));
    std::optional<int32_t> nsid = parse_nsid(m.header(), m.size());
    ASSERT_TRUE(nsid);
    EXPECT_EQ(*nsid, value);
  }
}

TEST(ParseNsid, RejectsTruncatedAndMissing) {
  NetlinkMessage m = nsid_message();
  EXPECT_FALSE(parse_nsid(m.header(), m.size()));  // no NETNSA_NSID at all
  m.put_u32(NETNSA_NSID, 1);
  EXPECT_FALSE(parse_nsid(m.header(), m.size() - 1));
  m.header()->nlmsg_len -= 2;
  EXPECT_FALSE(parse_nsid(m.header(), m.size()));
}

TEST(ParseNsid, RejectsOtherMessageTypes) {
  NetlinkMessage m(RTM_NEWLINK, 0);
  m.put_header<rtgenmsg>();
  m.put_u32(NETNSA_NSID, 1);
  EXPECT_FALSE(parse_nsid(m.header(), m.size()));
}

TEST(ParseLinkEvents, ReadsEveryLinkMessageOfADatagram) {
  LinkMessage added(7), removed(8, RTM_DELLINK);
  added.name("veth1a2b");
  removed.name("veth3c4d");
  NetlinkMessage nsid(RTM_NEWNSID, 0);
  nsid.put_header<rtgenmsg>();
  std::vector<char> datagram;
  for (nlmsghdr* nlh : {added.nlh(), nsid.header(), removed.nlh()})
    datagram.insert(datagram.end(), reinterpret_cast<char*>(nlh),
                    reinterpret_cast<char*>(nlh) + nlh->nlmsg_len);
  std::vector<LinkEvent> events;
  parse_link_events(datagram.data(), datagram.size(), events);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].link.name, "veth1a2b");
  EXPECT_FALSE(events[0].deleted);
  EXPECT_EQ(events[1].link.name, "veth3c4d");
  EXPECT_TRUE(events[1].deleted);
}

// Found by tests/fuzz/netlink_fuzz (corpus/netlink/regress-datagram-ends-in-padding): a datagram
// that ends inside its last message's alignment padding made NLMSG_NEXT wrap the unsigned count
// of bytes left, and the walk read on past the datagram, here into a message that is not in it.
TEST(ParseLinkEvents, StopsWhereTheDatagramEndsInsideTheLastPadding) {
  LinkMessage inside(7), beyond(8);
  inside.name("veth1a2b");  // IFLA_IFNAME of 13 bytes, padded to 16
  beyond.name("intruder");
  const size_t padded = inside.nlh()->nlmsg_len;
  inside.nlh()->nlmsg_len = static_cast<uint32_t>(padded - 3);  // without the padding
  std::vector<char> buffer(reinterpret_cast<char*>(inside.nlh()),
                           reinterpret_cast<char*>(inside.nlh()) + padded);
  buffer.insert(buffer.end(), reinterpret_cast<char*>(beyond.nlh()),
                reinterpret_cast<char*>(beyond.nlh()) + beyond.nlh()->nlmsg_len);
  std::vector<LinkEvent> events;
  parse_link_events(buffer.data(), padded - 3, events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].link.name, "veth1a2b");
}

// An RTM_NEWSTATS message as the kernel answers RTM_GETSTATS with IFLA_STATS_LINK_64: the
// counters numbered so that a field read from the wrong offset shows.
NetlinkMessage stats_message(uint32_t ifindex, size_t stats_length = sizeof(rtnl_link_stats64),
                             bool pad_first = false) {
  NetlinkMessage m(RTM_NEWSTATS, 0);
  auto* ifsm = m.put_header<if_stats_msg>();
  ifsm->ifindex = ifindex;
  ifsm->filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
  // nla_reserve_64bit puts an IFLA_STATS_UNSPEC pad first where the payload would be unaligned.
  if (pad_first) m.put_raw(IFLA_STATS_UNSPEC, nullptr, 0);
  std::vector<uint64_t> fields(sizeof(rtnl_link_stats64) / 8);
  for (size_t i = 0; i < fields.size(); ++i) fields[i] = 1000 * (i + 1);
  m.put_raw(IFLA_STATS_LINK_64, fields.data(), stats_length);
  return m;
}

// Parses an exact-size heap copy of the first `length` bytes of the message.
std::optional<LinkStatsReply> parse_stats(NetlinkMessage& m, size_t length) {
  auto block = std::make_unique<char[]>(length);
  std::memcpy(block.get(), m.header(), length);
  return parse_link_stats(reinterpret_cast<const nlmsghdr*>(block.get()), length);
}
std::optional<LinkStatsReply> parse_stats(NetlinkMessage& m) { return parse_stats(m, m.size()); }

const LinkStats kNumberedStats{1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000};

TEST(ParseLinkStats, ReadsTheEightCountersOfIflaStatsLink64) {
  NetlinkMessage m = stats_message(42);
  std::optional<LinkStatsReply> reply = parse_stats(m);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->ifindex, 42u);
  EXPECT_EQ(reply->stats, kNumberedStats);
  EXPECT_EQ(reply->stats.rx_dropped, 7000u);
  EXPECT_EQ(reply->stats.tx_dropped, 8000u);
}

TEST(ParseLinkStats, SkipsAPadAttributeAndUnknownOnes) {
  NetlinkMessage m = stats_message(42, sizeof(rtnl_link_stats64), /*pad_first=*/true);
  m.put_u32(IFLA_STATS_AF_SPEC + 10, 7);
  std::optional<LinkStatsReply> reply = parse_stats(m);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->stats, kNumberedStats);
}

TEST(ParseLinkStats, TakesAnOlderKernelsShorterStructAndANewerOnesLonger) {
  // 2.6.35's struct had 23 counters; 4.6 added rx_nohandler.
  for (size_t length : {size_t{23 * 8}, size_t{24 * 8}, sizeof(rtnl_link_stats64)}) {
    NetlinkMessage m = stats_message(3, length);
    std::optional<LinkStatsReply> reply = parse_stats(m);
    ASSERT_TRUE(reply) << length;
    EXPECT_EQ(reply->stats, kNumberedStats) << length;
  }
  NetlinkMessage m(RTM_NEWSTATS, 0);
  m.put_header<if_stats_msg>()->ifindex = 3;
  std::vector<uint64_t> longer(sizeof(rtnl_link_stats64) / 8 + 4, 9);
  m.put_raw(IFLA_STATS_LINK_64, longer.data(), longer.size() * 8);
  std::optional<LinkStatsReply> reply = parse_stats(m);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->stats.tx_dropped, 9u);
}

TEST(ParseLinkStats, RejectsCountersCutShort) {
  // Fewer bytes than the eight counters: the attribute says so itself...
  NetlinkMessage short_attr = stats_message(3, 8 * 8 - 1);
  EXPECT_FALSE(parse_stats(short_attr));
  // ...or the message ends inside it.
  NetlinkMessage m = stats_message(3);
  for (size_t cut : {size_t{1}, size_t{8}, size_t{100}, m.size() - 1}) {
    EXPECT_FALSE(parse_stats(m, m.size() - cut)) << cut;
    NetlinkMessage lying = stats_message(3);
    lying.header()->nlmsg_len = static_cast<uint32_t>(lying.size() - cut);
    EXPECT_FALSE(parse_stats(lying, lying.header()->nlmsg_len)) << cut;
  }
}

TEST(ParseLinkStats, RejectsShorterThanItsHeader) {
  NetlinkMessage m = stats_message(3);
  m.header()->nlmsg_len = NLMSG_HDRLEN + sizeof(if_stats_msg) - 1;
  EXPECT_FALSE(parse_stats(m, m.header()->nlmsg_len));
  EXPECT_FALSE(parse_stats(m, sizeof(nlmsghdr) - 1));
}

TEST(ParseLinkStats, RejectsMissingCountersZeroIfindexAndOtherTypes) {
  NetlinkMessage none(RTM_NEWSTATS, 0);
  none.put_header<if_stats_msg>()->ifindex = 3;
  EXPECT_FALSE(parse_stats(none));
  NetlinkMessage zero = stats_message(0);
  EXPECT_FALSE(parse_stats(zero));
  NetlinkMessage other = stats_message(3);
  other.header()->nlmsg_type = RTM_NEWLINK;
  EXPECT_FALSE(parse_stats(other));
}

TEST(ParseLinkStats, RejectsAnAttributeLongerThanTheMessage) {
  NetlinkMessage m = stats_message(3);
  auto* attr = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(m.header()) + NLMSG_HDRLEN +
                                         NLMSG_ALIGN(sizeof(if_stats_msg)));
  attr->nla_len = static_cast<uint16_t>(attr->nla_len + 8);
  EXPECT_FALSE(parse_stats(m));
}

TEST(NetlinkMessage, RefusesToOverflowItsBuffer) {
  NetlinkMessage m(RTM_GETLINK, 0);
  std::string big(600, 'x');
  EXPECT_THROW(m.put_string(IFLA_IFNAME, big), Error);
}

}  // namespace
}  // namespace psnic
