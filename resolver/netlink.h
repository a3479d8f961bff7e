#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "resolver/namespace.h"

namespace psnic {

// One interface as an RTM_NEWLINK message describes it, in the namespace that was dumped.
struct Link {
  uint32_t ifindex = 0;
  std::string name;
  std::string kind;    // IFLA_INFO_KIND ("veth", "netkit", "macvlan", ...); empty when absent
  uint32_t flags = 0;  // IFF_* from ifinfomsg
  uint32_t link = 0;   // IFLA_LINK: peer (veth, netkit) or parent ifindex; 0 if absent
  std::optional<int32_t> link_netnsid;  // IFLA_LINK_NETNSID: where `link` lives, when not here

  bool is_loopback() const;
};

// Parses one RTM_NEWLINK (or RTM_DELLINK, the same layout) message that lies within `available`
// bytes. Returns nullopt for any other message type and for a truncated or malformed message or
// attribute; it never reads outside [nlh, nlh + available).
std::optional<Link> parse_link(const nlmsghdr* nlh, size_t available);

// What a link's kernel statistics count (struct rtnl_link_stats64's first eight fields, the ones
// every kernel since 2.6.35 sends), seen from that link: rx is what it received.
struct LinkStats {
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
  uint64_t rx_errors = 0;
  uint64_t tx_errors = 0;
  uint64_t rx_dropped = 0;
  uint64_t tx_dropped = 0;

  bool operator==(const LinkStats&) const = default;
};

// One RTM_NEWSTATS message: the link's ifindex and its IFLA_STATS_LINK_64.
struct LinkStatsReply {
  uint32_t ifindex = 0;
  LinkStats stats;
};

// Parses one RTM_NEWSTATS message (the answer to RTM_GETSTATS with IFLA_STATS_LINK_64 in its
// filter mask) that lies within `available` bytes. Returns nullopt for any other message type,
// a truncated or malformed message or attribute, a zero ifindex, and a message without
// IFLA_STATS_LINK_64 or with one shorter than the eight counters; it never reads outside
// [nlh, nlh + available).
std::optional<LinkStatsReply> parse_link_stats(const nlmsghdr* nlh, size_t available);

// Parses an RTM_NEWNSID reply: the NETNSA_NSID value (NETNSA_NSID_NOT_ASSIGNED is -1).
std::optional<int32_t> parse_nsid(const nlmsghdr* nlh, size_t available);

// Builds one netlink message in a fixed buffer: header, family header, attributes.
class NetlinkMessage {
 public:
  NetlinkMessage(uint16_t type, uint16_t flags);

  // Appends a zeroed family header (ifinfomsg, rtgenmsg, ...) and returns it for filling in.
  template <typename Header>
  Header* put_header() {
    return static_cast<Header*>(put_bytes(sizeof(Header)));
  }
  void put_u32(uint16_t type, uint32_t value);
  void put_string(uint16_t type, std::string_view value);  // NUL-terminated
  void put_raw(uint16_t type, const void* data, size_t length);
  // Opens a nested attribute; close it with end_nest(offset).
  size_t begin_nest(uint16_t type);
  void end_nest(size_t offset);

  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_); }
  size_t size() const { return reinterpret_cast<const nlmsghdr*>(buffer_)->nlmsg_len; }

 private:
  void* put_bytes(size_t length);

  alignas(nlmsghdr) unsigned char buffer_[512] = {};
};

// An rtnetlink socket. It talks to the network namespace the calling thread was in when it was
// opened, for its whole life, whatever the thread does afterwards.
class NetlinkSocket {
 public:
  // Throws Error on failure.
  static NetlinkSocket open();

  // Every link of the socket's namespace. Like any link query, the dump has the kernel assign
  // nsids to the namespaces its links point into (as `ip link` does), which is what makes
  // nsid_of() answer for them afterwards.
  std::vector<Link> dump_links();

  // One link of the socket's namespace, or nullopt when no link has that ifindex.
  std::optional<Link> get_link(uint32_t ifindex);

  // The statistics of every link of the socket's namespace, by ifindex: one RTM_GETSTATS dump.
  // Unlike a link dump it asks no nsid of anyone (rtnl_stats_dump fills no IFLA_LINK_NETNSID),
  // so it costs the same per link whatever the number of namespaces.
  std::vector<LinkStatsReply> dump_link_stats();

  // One link's statistics, or nullopt when no link has that ifindex.
  std::optional<LinkStats> get_link_stats(uint32_t ifindex);

  // The nsid the socket's namespace has given the namespace behind `netns_fd`, or -1
  // (NETNSA_NSID_NOT_ASSIGNED) when it has none. Assigns nothing.
  int32_t nsid_of(int netns_fd);

 private:
  explicit NetlinkSocket(Fd fd);

  struct Outcome {
    int error = 0;             // the kernel's errno from NLMSG_ERROR or NLMSG_DONE, 0 if none
    bool interrupted = false;  // NLM_F_DUMP_INTR: a concurrent change; the dump may be partial
  };

  // Sends `request` and feeds each reply message to `on_message` until the reply ends. Throws
  // Error only when the socket itself fails.
  Outcome transact(NetlinkMessage& request,
                   const std::function<void(const nlmsghdr*, size_t)>& on_message);
  // A whole dump: the request `make_request(0)` builds, each reply message of `type` parsed,
  // repeated when a concurrent change interrupted it. Throws Error naming `what`.
  template <typename T>
  std::vector<T> dump(NetlinkMessage (*make_request)(uint32_t), uint16_t type,
                      std::optional<T> (*parse)(const nlmsghdr*, size_t), const char* what);

  Fd fd_;
  uint32_t seq_ = 0;
  std::vector<unsigned char> buffer_;
};

// A link notification: RTM_NEWLINK (added or changed) or RTM_DELLINK.
struct LinkEvent {
  Link link;
  bool deleted = false;
};

// Appends the link notifications of one received datagram (messages back to back, each
// NLMSG_ALIGNed) to `events`; other messages and malformed links are skipped. Pure: what
// LinkEvents::drain() does with each datagram.
void parse_link_events(const void* datagram, size_t length, std::vector<LinkEvent>& events);

// The caller's namespace's link notifications (RTNLGRP_LINK), read without blocking.
class LinkEvents {
 public:
  // Throws Error.
  static LinkEvents open();

  // For poll/epoll: readable when notifications wait.
  int fd() const { return fd_.get(); }

  // Every notification waiting now. Sets `overrun` when the kernel dropped some because the
  // socket's buffer was full (ENOBUFS): the caller must then resynchronise with a full dump.
  std::vector<LinkEvent> drain(bool& overrun);

 private:
  explicit LinkEvents(Fd fd) : fd_(std::move(fd)), buffer_(32768) {}

  Fd fd_;
  std::vector<unsigned char> buffer_;
};

}  // namespace psnic
