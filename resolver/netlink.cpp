#include "resolver/netlink.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <ctime>

#include "resolver/error.h"

// libmnl 1.0.4 (Debian 12) predates MNL_SOCKET_DUMP_SIZE.
#ifndef MNL_SOCKET_DUMP_SIZE
#define MNL_SOCKET_DUMP_SIZE 32768
#endif

namespace psnic {
namespace {

// Calls `visit(attr)` for each attribute in [start, start + length). Returns false when an
// attribute's header or length does not fit, so a truncated message is rejected rather than
// half-read.
template <typename Visit>
bool for_each_attr(const void* start, size_t length, Visit visit) {
  auto* cursor = static_cast<const char*>(start);
  size_t remaining = length;
  while (remaining > 0) {
    auto* attr = reinterpret_cast<const nlattr*>(cursor);
    if (!mnl_attr_ok(attr, static_cast<int>(remaining))) return false;
    if (!visit(attr)) return false;
    size_t step = MNL_ALIGN(attr->nla_len);
    if (step >= remaining) break;
    cursor += step;
    remaining -= step;
  }
  return true;
}

bool read_u32(const nlattr* attr, uint32_t& out) {
  if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return false;
  out = mnl_attr_get_u32(attr);
  return true;
}

bool read_string(const nlattr* attr, std::string& out) {
  if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0) return false;
  out = mnl_attr_get_str(attr);
  return true;
}

// Bounds of a message's payload after a fixed header of `header_size` bytes, or false when
// the message is shorter than it says or than its header.
bool attributes_of(const nlmsghdr* nlh, size_t available, size_t header_size, const void*& start,
                   size_t& length) {
  if (available < sizeof(nlmsghdr) || nlh->nlmsg_len < sizeof(nlmsghdr) ||
      nlh->nlmsg_len > available)
    return false;
  size_t payload = nlh->nlmsg_len - MNL_NLMSG_HDRLEN;
  if (payload < header_size) return false;
  size_t offset = MNL_ALIGN(header_size);
  start = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset;
  length = payload > offset ? payload - offset : 0;
  return true;
}

}  // namespace

bool Link::is_loopback() const { return (flags & IFF_LOOPBACK) != 0; }

std::optional<Link> parse_link(const nlmsghdr* nlh, size_t available) {
  const void* attrs = nullptr;
  size_t length = 0;
  if (!attributes_of(nlh, available, sizeof(ifinfomsg), attrs, length)) return std::nullopt;
  if (nlh->nlmsg_type != RTM_NEWLINK) return std::nullopt;

  auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  Link link;
  link.ifindex = static_cast<uint32_t>(ifi->ifi_index);
  link.flags = ifi->ifi_flags;
  bool has_name = false;

  bool ok = for_each_attr(attrs, length, [&](const nlattr* attr) {
    switch (mnl_attr_get_type(attr)) {
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
        if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0) return false;
        return for_each_attr(mnl_attr_get_payload(attr), mnl_attr_get_payload_len(attr),
                             [&](const nlattr* info) {
                               if (mnl_attr_get_type(info) != IFLA_INFO_KIND) return true;
                               return read_string(info, link.kind);
                             });
      default:
        return true;
    }
  });
  if (!ok || !has_name || link.ifindex == 0) return std::nullopt;
  return link;
}

std::optional<int32_t> parse_nsid(const nlmsghdr* nlh, size_t available) {
  const void* attrs = nullptr;
  size_t length = 0;
  if (!attributes_of(nlh, available, sizeof(rtgenmsg), attrs, length)) return std::nullopt;
  if (nlh->nlmsg_type != RTM_NEWNSID) return std::nullopt;
  std::optional<int32_t> nsid;
  bool ok = for_each_attr(attrs, length, [&](const nlattr* attr) {
    if (mnl_attr_get_type(attr) != NETNSA_NSID) return true;
    uint32_t value = 0;
    if (!read_u32(attr, value)) return false;
    nsid = static_cast<int32_t>(value);
    return true;
  });
  if (!ok) return std::nullopt;
  return nsid;
}

void NetlinkSocket::Closer::operator()(mnl_socket* s) const { mnl_socket_close(s); }

NetlinkSocket::NetlinkSocket(mnl_socket* socket)
    : socket_(socket), port_id_(mnl_socket_get_portid(socket)), buffer_(MNL_SOCKET_DUMP_SIZE) {
  seq_ = static_cast<uint32_t>(time(nullptr));
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&&) noexcept = default;
NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&&) noexcept = default;
NetlinkSocket::~NetlinkSocket() = default;

NetlinkSocket NetlinkSocket::open() {
  mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (socket == nullptr) throw system_error("rtnetlink socket", errno);
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(socket);
    throw system_error("rtnetlink socket", err);
  }
  return NetlinkSocket(socket);
}

namespace {

struct Dispatch {
  const std::function<void(const nlmsghdr*, size_t)>* on_message;
};

int dispatch_message(const nlmsghdr* nlh, void* data) {
  // mnl_cb_run has checked that nlmsg_len lies within the received datagram.
  (*static_cast<Dispatch*>(data)->on_message)(nlh, nlh->nlmsg_len);
  return MNL_CB_OK;
}

}  // namespace

void NetlinkSocket::transact(nlmsghdr* nlh,
                             const std::function<void(const nlmsghdr*, size_t)>& on_message) {
  const bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0)
    throw system_error("rtnetlink request", errno);

  Dispatch dispatch{&on_message};
  for (;;) {
    ssize_t received = mnl_socket_recvfrom(socket_.get(), buffer_.data(), buffer_.size());
    if (received < 0) throw system_error("rtnetlink reply", errno);
    int ret = mnl_cb_run(buffer_.data(), static_cast<size_t>(received), nlh->nlmsg_seq, port_id_,
                         dispatch_message, &dispatch);
    if (ret == MNL_CB_ERROR) throw system_error("rtnetlink reply", errno);
    if (ret == MNL_CB_STOP || !dump) return;
  }
}

namespace {

// An RTM_GETLINK request for one ifindex, or a dump when `ifindex` is 0. Statistics are left
// out of the replies: psnic reads none, and they are most of every message's size.
nlmsghdr* put_getlink(char* request, uint32_t ifindex) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(request);
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | (ifindex == 0 ? NLM_F_DUMP : 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(ifindex);
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return nlh;
}

}  // namespace

std::optional<Link> NetlinkSocket::get_link(uint32_t ifindex) {
  char request[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = put_getlink(request, ifindex);
  std::optional<Link> link;
  try {
    transact(nlh, [&](const nlmsghdr* reply, size_t available) {
      link = parse_link(reply, available);
      if (!link) throw Error("rtnetlink link query", EBADMSG, "malformed link message");
    });
  } catch (const Error& e) {
    if (e.errnum() == ENODEV) return std::nullopt;
    throw;
  }
  return link;
}

std::vector<Link> NetlinkSocket::dump_links() {
  char request[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = put_getlink(request, 0);

  std::vector<Link> links;
  transact(nlh, [&](const nlmsghdr* reply, size_t available) {
    if (reply->nlmsg_type != RTM_NEWLINK) return;
    std::optional<Link> link = parse_link(reply, available);
    if (!link) throw Error("rtnetlink link dump", EBADMSG, "malformed link message");
    links.push_back(std::move(*link));
  });
  return links;
}

int32_t NetlinkSocket::nsid_of(int netns_fd) {
  char request[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(request);
  nlh->nlmsg_type = RTM_GETNSID;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* gen = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
  gen->rtgen_family = AF_UNSPEC;
  mnl_attr_put_u32(nlh, NETNSA_FD, static_cast<uint32_t>(netns_fd));

  std::optional<int32_t> nsid;
  bool answered = false;
  transact(nlh, [&](const nlmsghdr* reply, size_t available) {
    answered = true;
    nsid = parse_nsid(reply, available);
  });
  if (!answered || !nsid) throw Error("rtnetlink nsid query", EBADMSG, "malformed nsid reply");
  return *nsid;
}

}  // namespace psnic
