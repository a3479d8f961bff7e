// rtnetlink as the kernel sends it: one datagram of messages back to back (a link dump's reply,
// a burst of link notifications), walked message by message and attribute by attribute
// (parse_link_events, parse_link, parse_nsid, parse_link_stats). The bounds checks must hold
// whatever the lengths say; a link that parses must come out the same when psnic's own message
// builder writes it back.
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.h"
#include "resolver/netlink.h"

namespace {

using psnic::Link;

bool same(const Link& a, const Link& b) {
  return a.ifindex == b.ifindex && a.name == b.name && a.kind == b.kind && a.flags == b.flags &&
         a.link == b.link && a.link_netnsid == b.link_netnsid;
}

void check_link(const Link& link) {
  PSNIC_FUZZ_CHECK(link.ifindex != 0);
  // Strings end at their NUL: none is left inside.
  PSNIC_FUZZ_CHECK(link.name.find('\0') == std::string::npos);
  PSNIC_FUZZ_CHECK(link.kind.find('\0') == std::string::npos);
}

// parse(build(link)) == link, with the builder psnic's requests use.
void check_round_trip(const Link& link) {
  // The builder's buffer is 512 bytes: psnic never builds names longer than IFNAMSIZ.
  if (link.name.size() + link.kind.size() > 256) return;
  psnic::NetlinkMessage message(RTM_NEWLINK, 0);
  auto* ifi = message.put_header<ifinfomsg>();
  ifi->ifi_index = static_cast<int>(link.ifindex);
  ifi->ifi_flags = link.flags;
  message.put_string(IFLA_IFNAME, link.name);
  if (link.link != 0) message.put_u32(IFLA_LINK, link.link);
  if (link.link_netnsid)
    message.put_u32(IFLA_LINK_NETNSID, static_cast<uint32_t>(*link.link_netnsid));
  if (!link.kind.empty()) {
    const size_t nest = message.begin_nest(IFLA_LINKINFO);
    message.put_string(IFLA_INFO_KIND, link.kind);
    message.end_nest(nest);
  }
  const std::optional<Link> again = psnic::parse_link(message.header(), message.size());
  PSNIC_FUZZ_CHECK(again && same(*again, link));
}

// parse(build(stats)) == stats: the eight counters where the kernel puts them.
void check_stats_round_trip(const psnic::LinkStatsReply& reply) {
  PSNIC_FUZZ_CHECK(reply.ifindex != 0);
  psnic::NetlinkMessage message(RTM_NEWSTATS, 0);
  message.put_header<if_stats_msg>()->ifindex = reply.ifindex;
  rtnl_link_stats64 kernel{};
  const psnic::LinkStats& s = reply.stats;
  kernel.rx_packets = s.rx_packets;
  kernel.tx_packets = s.tx_packets;
  kernel.rx_bytes = s.rx_bytes;
  kernel.tx_bytes = s.tx_bytes;
  kernel.rx_errors = s.rx_errors;
  kernel.tx_errors = s.tx_errors;
  kernel.rx_dropped = s.rx_dropped;
  kernel.tx_dropped = s.tx_dropped;
  message.put_raw(IFLA_STATS_LINK_64, &kernel, sizeof kernel);
  const std::optional<psnic::LinkStatsReply> again =
      psnic::parse_link_stats(message.header(), message.size());
  PSNIC_FUZZ_CHECK(again && again->ifindex == reply.ifindex && again->stats == reply.stats);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The kernel's datagrams land in psnic's aligned receive buffer: copy the input into one too.
  std::vector<nlmsghdr> buffer(size / sizeof(nlmsghdr) + 1);
  std::memcpy(buffer.data(), data, size);
  const auto* first = buffer.data();

  std::vector<psnic::LinkEvent> events;
  psnic::parse_link_events(first, size, events);
  for (const psnic::LinkEvent& event : events) check_link(event.link);

  if (const std::optional<Link> link = psnic::parse_link(first, size)) {
    check_link(*link);
    check_round_trip(*link);
  }
  (void)psnic::parse_nsid(first, size);
  if (const std::optional<psnic::LinkStatsReply> stats = psnic::parse_link_stats(first, size))
    check_stats_round_trip(*stats);
  // A stats dump's datagram, walked as the dump loop walks it.
  auto remaining = static_cast<ssize_t>(size);
  for (auto* nlh = first; NLMSG_OK(nlh, remaining); nlh = NLMSG_NEXT(nlh, remaining))
    if (const std::optional<psnic::LinkStatsReply> stats =
            psnic::parse_link_stats(nlh, nlh->nlmsg_len))
      check_stats_round_trip(*stats);
  return 0;
}
