#include "resolver/netlink.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>

#include "base/error.h"

// The netlink framing is written here rather than taken from libmnl: Debian ships libmnl only as
// a shared library, and `psnic` is linked statically because process start-up is most of the
// cost of a lookup (bench/README.md). What the framing needs is the kernel's own uapi macros.

namespace psnic {
namespace {

// Big enough for any one datagram of a dump: the kernel sizes dump skbs to at most 32 KiB.
constexpr size_t kReceiveBufferSize = 32768;
// A dump that a concurrent change interrupted is repeated this many times before giving up.
constexpr int kDumpAttempts = 5;

// Calls `visit(attr)` for each attribute in [start, start + length). Returns false when an
// attribute's header or length does not fit, so a truncated message is rejected rather than
// half-read.
template <typename Visit>
bool for_each_attr(const void* start, size_t length, Visit visit) {
  auto* cursor = static_cast<const unsigned char*>(start);
  size_t remaining = length;
  while (remaining > 0) {
    auto* attr = reinterpret_cast<const nlattr*>(cursor);
    if (remaining < NLA_HDRLEN || attr->nla_len < NLA_HDRLEN || attr->nla_len > remaining)
      return false;
    if (!visit(attr)) return false;
    size_t step = NLA_ALIGN(attr->nla_len);
    if (step >= remaining) break;
    cursor += step;
    remaining -= step;
  }
  return true;
}

uint16_t attr_type(const nlattr* attr) { return attr->nla_type & NLA_TYPE_MASK; }
const void* attr_payload(const nlattr* attr) {
  return reinterpret_cast<const unsigned char*>(attr) + NLA_HDRLEN;
}
size_t attr_payload_length(const nlattr* attr) { return attr->nla_len - NLA_HDRLEN; }

bool read_u32(const nlattr* attr, uint32_t& out) {
  if (attr_payload_length(attr) < sizeof(uint32_t)) return false;
  std::memcpy(&out, attr_payload(attr), sizeof out);
  return true;
}

// A string attribute must carry its terminating NUL inside its payload.
bool read_string(const nlattr* attr, std::string& out) {
  size_t length = attr_payload_length(attr);
  auto* text = static_cast<const char*>(attr_payload(attr));
  if (length == 0 || text[length - 1] != '\0') return false;
  out.assign(text, strnlen(text, length));
  return true;
}

// Bounds of a message's attributes after a family header of `header_size` bytes, or false when
// the message is shorter than it says or than its header.
bool attributes_of(const nlmsghdr* nlh, size_t available, size_t header_size, const void*& start,
                   size_t& length) {
  if (available < sizeof(nlmsghdr) || nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > available)
    return false;
  size_t payload = nlh->nlmsg_len - NLMSG_HDRLEN;
  if (payload < header_size) return false;
  size_t offset = NLMSG_ALIGN(header_size);
  start = static_cast<const unsigned char*>(NLMSG_DATA(nlh)) + offset;
  length = payload > offset ? payload - offset : 0;
  return true;
}

}  // namespace

bool Link::is_loopback() const { return (flags & IFF_LOOPBACK) != 0; }

std::optional<Link> parse_link(const nlmsghdr* nlh, size_t available) {
  const void* attrs = nullptr;
  size_t length = 0;
  if (!attributes_of(nlh, available, sizeof(ifinfomsg), attrs, length)) return std::nullopt;
  if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) return std::nullopt;

  ifinfomsg ifi;
  std::memcpy(&ifi, NLMSG_DATA(nlh), sizeof ifi);
  Link link;
  link.ifindex = static_cast<uint32_t>(ifi.ifi_index);
  link.flags = ifi.ifi_flags;
  bool has_name = false;

  bool ok = for_each_attr(attrs, length, [&](const nlattr* attr) {
    switch (attr_type(attr)) {
      case IFLA_IFNAME:
        has_name = true;
        return read_string(attr, link.name);
      case IFLA_LINK:
        return read_u32(attr, link.link);
      case IFLA_LINK_NETNSID: {
        uint32_t nsid = 0;
        if (!read_u32(attr, nsid)) return false;
        link.link_netnsid = static_cast<int32_t>(nsid);
        return true;
      }
      case IFLA_LINKINFO:
        return for_each_attr(attr_payload(attr), attr_payload_length(attr),
                             [&](const nlattr* info) {
                               if (attr_type(info) != IFLA_INFO_KIND) return true;
                               return read_string(info, link.kind);
                             });
      default:
        return true;
    }
  });
  if (!ok || !has_name || link.ifindex == 0) return std::nullopt;
  return link;
}

std::optional<LinkStatsReply> parse_link_stats(const nlmsghdr* nlh, size_t available) {
  const void* attrs = nullptr;
  size_t length = 0;
  if (!attributes_of(nlh, available, sizeof(if_stats_msg), attrs, length)) return std::nullopt;
  if (nlh->nlmsg_type != RTM_NEWSTATS) return std::nullopt;

  if_stats_msg header;
  std::memcpy(&header, NLMSG_DATA(nlh), sizeof header);
  LinkStatsReply reply;
  reply.ifindex = header.ifindex;
  bool found = false;
  bool ok = for_each_attr(attrs, length, [&](const nlattr* attr) {
    // The kernel may put an IFLA_STATS_UNSPEC pad before it (nla_reserve_64bit): skipped.
    if (attr_type(attr) != IFLA_STATS_LINK_64) return true;
    // Older kernels send a shorter struct (rx_nohandler came in 4.6, rx_otherhost_dropped in
    // 5.19), newer ones may send a longer one: the first eight counters are always there.
    rtnl_link_stats64 kernel{};
    const size_t payload = attr_payload_length(attr);
    if (payload < offsetof(rtnl_link_stats64, multicast)) return false;
    std::memcpy(&kernel, attr_payload(attr), std::min(payload, sizeof kernel));
    reply.stats = {kernel.rx_packets, kernel.tx_packets, kernel.rx_bytes,   kernel.tx_bytes,
                   kernel.rx_errors,  kernel.tx_errors,  kernel.rx_dropped, kernel.tx_dropped};
    found = true;
    return true;
  });
  if (!ok || !found || reply.ifindex == 0) return std::nullopt;
  return reply;
}

std::optional<int32_t> parse_nsid(const nlmsghdr* nlh, size_t available) {
  const void* attrs = nullptr;
  size_t length = 0;
  if (!attributes_of(nlh, available, sizeof(rtgenmsg), attrs, length)) return std::nullopt;
  if (nlh->nlmsg_type != RTM_NEWNSID) return std::nullopt;
  std::optional<int32_t> nsid;
  bool ok = for_each_attr(attrs, length, [&](const nlattr* attr) {
    if (attr_type(attr) != NETNSA_NSID) return true;
    uint32_t value = 0;
    if (!read_u32(attr, value)) return false;
    nsid = static_cast<int32_t>(value);
    return true;
  });
  if (!ok) return std::nullopt;
  return nsid;
}

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags) {
  nlmsghdr* nlh = header();
  nlh->nlmsg_len = NLMSG_HDRLEN;
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
}

void* NetlinkMessage::put_bytes(size_t length) {
  nlmsghdr* nlh = header();
  size_t offset = NLMSG_ALIGN(nlh->nlmsg_len);
  size_t end = offset + NLMSG_ALIGN(length);
  // Requests are built by psnic itself from fixed parts; overflowing is a programming error.
  if (end > sizeof buffer_) throw Error("netlink request", EMSGSIZE, "request too large");
  std::memset(buffer_ + offset, 0, end - offset);
  nlh->nlmsg_len = static_cast<uint32_t>(end);
  return buffer_ + offset;
}

void NetlinkMessage::put_raw(uint16_t type, const void* data, size_t length) {
  auto* attr = static_cast<nlattr*>(put_bytes(NLA_HDRLEN + length));
  attr->nla_type = type;
  attr->nla_len = static_cast<uint16_t>(NLA_HDRLEN + length);
  if (length > 0) std::memcpy(reinterpret_cast<unsigned char*>(attr) + NLA_HDRLEN, data, length);
}

void NetlinkMessage::put_u32(uint16_t type, uint32_t value) { put_raw(type, &value, sizeof value); }

void NetlinkMessage::put_string(uint16_t type, std::string_view value) {
  std::string terminated(value);
  put_raw(type, terminated.c_str(), terminated.size() + 1);
}

size_t NetlinkMessage::begin_nest(uint16_t type) {
  size_t offset = NLMSG_ALIGN(header()->nlmsg_len);
  put_raw(type | NLA_F_NESTED, nullptr, 0);
  return offset;
}

void NetlinkMessage::end_nest(size_t offset) {
  auto* attr = reinterpret_cast<nlattr*>(buffer_ + offset);
  attr->nla_len = static_cast<uint16_t>(header()->nlmsg_len - offset);
}

NetlinkSocket::NetlinkSocket(Fd fd)
    : fd_(std::move(fd)), seq_(static_cast<uint32_t>(time(nullptr))), buffer_(kReceiveBufferSize) {}

NetlinkSocket NetlinkSocket::open() {
  // No bind: the kernel binds the socket to a free port on the first send.
  Fd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) throw system_error("rtnetlink socket", errno);
  return NetlinkSocket(std::move(fd));
}

NetlinkSocket::Outcome NetlinkSocket::transact(
    NetlinkMessage& request, const std::function<void(const nlmsghdr*, size_t)>& on_message) {
  nlmsghdr* nlh = request.header();
  const bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  nlh->nlmsg_seq = ++seq_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd_.get(), nlh, nlh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                  sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) throw system_error("rtnetlink request", errno);

  Outcome outcome;
  for (;;) {
    sockaddr_nl from{};
    socklen_t from_length = sizeof from;
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = from_length;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t received = recvmsg(fd_.get(), &msg, 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      throw system_error("rtnetlink reply", errno);
    }
    if (msg.msg_flags & MSG_TRUNC)
      throw Error("rtnetlink reply", EMSGSIZE, "reply larger than the receive buffer");
    if (from.nl_pid != 0) continue;  // only the kernel answers requests

    // Signed, as NLMSG_NEXT needs it (see parse_link_events).
    ssize_t remaining = received;
    for (auto* reply = reinterpret_cast<const nlmsghdr*>(buffer_.data());
         NLMSG_OK(reply, remaining); reply = NLMSG_NEXT(reply, remaining)) {
      if (reply->nlmsg_seq != nlh->nlmsg_seq) continue;  // a late answer to an earlier request
      if (reply->nlmsg_flags & NLM_F_DUMP_INTR) outcome.interrupted = true;
      if (reply->nlmsg_type == NLMSG_ERROR || reply->nlmsg_type == NLMSG_DONE) {
        int error = 0;
        if (reply->nlmsg_len >= NLMSG_HDRLEN + sizeof(int))
          std::memcpy(&error, NLMSG_DATA(reply), sizeof error);
        outcome.error = error < 0 ? -error : 0;
        return outcome;
      }
      on_message(reply, reply->nlmsg_len);
      if (!dump) return outcome;
    }
  }
}

namespace {

// An RTM_GETLINK request for one ifindex, or a dump when `ifindex` is 0. Statistics are left
// out of the replies: psnic reads none, and they are most of every message's size.
NetlinkMessage getlink_request(uint32_t ifindex) {
  NetlinkMessage request(RTM_GETLINK, NLM_F_REQUEST | (ifindex == 0 ? NLM_F_DUMP : 0));
  auto* ifi = request.put_header<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(ifindex);
  request.put_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return request;
}

}  // namespace

std::optional<Link> NetlinkSocket::get_link(uint32_t ifindex) {
  NetlinkMessage request = getlink_request(ifindex);
  std::optional<Link> link;
  Outcome outcome = transact(request, [&](const nlmsghdr* reply, size_t available) {
    link = parse_link(reply, available);
    if (!link) throw Error("rtnetlink link query", EBADMSG, "malformed link message");
  });
  // No such link is an answer, not a failure (and not worth an exception on this path).
  if (outcome.error == ENODEV) return std::nullopt;
  if (outcome.error != 0) throw system_error("rtnetlink link query", outcome.error);
  return link;
}

template <typename T>
std::vector<T> NetlinkSocket::dump(NetlinkMessage (*make_request)(uint32_t), uint16_t type,
                                   std::optional<T> (*parse)(const nlmsghdr*, size_t),
                                   const char* what) {
  for (int attempt = 1;; ++attempt) {
    NetlinkMessage request = make_request(0);
    std::vector<T> items;
    Outcome outcome = transact(request, [&](const nlmsghdr* reply, size_t available) {
      if (reply->nlmsg_type != type) return;
      std::optional<T> item = parse(reply, available);
      if (!item) throw Error(what, EBADMSG, "malformed message");
      items.push_back(std::move(*item));
    });
    if (outcome.error != 0) throw system_error(what, outcome.error);
    if (!outcome.interrupted) return items;
    if (attempt == kDumpAttempts) throw Error(what, EAGAIN, "links kept changing during the dump");
  }
}

std::vector<Link> NetlinkSocket::dump_links() {
  return dump<Link>(getlink_request, RTM_NEWLINK, parse_link, "rtnetlink link dump");
}

namespace {

// An RTM_GETSTATS request for one ifindex's 64-bit link counters, or a dump when `ifindex` is 0.
NetlinkMessage getstats_request(uint32_t ifindex) {
  NetlinkMessage request(RTM_GETSTATS, NLM_F_REQUEST | (ifindex == 0 ? NLM_F_DUMP : 0));
  auto* ifsm = request.put_header<if_stats_msg>();
  ifsm->family = AF_UNSPEC;
  ifsm->ifindex = ifindex;
  ifsm->filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
  return request;
}

}  // namespace

std::vector<LinkStatsReply> NetlinkSocket::dump_link_stats() {
  return dump<LinkStatsReply>(getstats_request, RTM_NEWSTATS, parse_link_stats,
                              "rtnetlink stats dump");
}

std::optional<LinkStats> NetlinkSocket::get_link_stats(uint32_t ifindex) {
  NetlinkMessage request = getstats_request(ifindex);
  std::optional<LinkStats> stats;
  Outcome outcome = transact(request, [&](const nlmsghdr* reply, size_t available) {
    std::optional<LinkStatsReply> parsed = parse_link_stats(reply, available);
    if (!parsed) throw Error("rtnetlink stats query", EBADMSG, "malformed stats message");
    stats = parsed->stats;
  });
  if (outcome.error == ENODEV) return std::nullopt;
  if (outcome.error != 0) throw system_error("rtnetlink stats query", outcome.error);
  return stats;
}

int32_t NetlinkSocket::nsid_of(int netns_fd) {
  NetlinkMessage request(RTM_GETNSID, NLM_F_REQUEST);
  request.put_header<rtgenmsg>()->rtgen_family = AF_UNSPEC;
  request.put_u32(NETNSA_FD, static_cast<uint32_t>(netns_fd));

  std::optional<int32_t> nsid;
  Outcome outcome = transact(request, [&](const nlmsghdr* reply, size_t available) {
    nsid = parse_nsid(reply, available);
  });
  if (outcome.error != 0) throw system_error("rtnetlink nsid query", outcome.error);
  if (!nsid) throw Error("rtnetlink nsid query", EBADMSG, "malformed nsid reply");
  return *nsid;
}

LinkEvents LinkEvents::open() {
  Fd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
  if (!fd.valid()) throw system_error("rtnetlink link events", errno);
  // Bursts (hundreds of containers starting at once) must not overrun the socket.
  int size = 4 << 20;
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = 1U << (RTNLGRP_LINK - 1);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) < 0)
    throw system_error("rtnetlink link events", errno);
  return LinkEvents(std::move(fd));
}

std::vector<LinkEvent> LinkEvents::drain(bool& overrun) {
  std::vector<LinkEvent> events;
  overrun = false;
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t received = recvmsg(fd_.get(), &msg, 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return events;
      if (errno == ENOBUFS) {
        overrun = true;
        continue;
      }
      throw system_error("rtnetlink link events", errno);
    }
    if (from.nl_pid != 0 || (msg.msg_flags & MSG_TRUNC)) {
      overrun = overrun || (msg.msg_flags & MSG_TRUNC);
      continue;
    }
    parse_link_events(buffer_.data(), static_cast<size_t>(received), events);
  }
}

void parse_link_events(const void* datagram, size_t length, std::vector<LinkEvent>& events) {
  // Signed: NLMSG_NEXT subtracts the last message's aligned length, which can exceed what is
  // left when the datagram ends inside its padding; unsigned, `remaining` would wrap to a huge
  // value and NLMSG_OK would walk on past the datagram (found by tests/fuzz/netlink_fuzz).
  auto remaining = static_cast<ssize_t>(length);
  for (auto* nlh = static_cast<const nlmsghdr*>(datagram); NLMSG_OK(nlh, remaining);
       nlh = NLMSG_NEXT(nlh, remaining)) {
    if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) continue;
    std::optional<Link> link = parse_link(nlh, nlh->nlmsg_len);
    if (link) events.push_back({std::move(*link), nlh->nlmsg_type == RTM_DELLINK});
  }
}

}  // namespace psnic
