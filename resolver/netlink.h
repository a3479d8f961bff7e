#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct mnl_socket;

namespace psnic {

// One interface as an RTM_NEWLINK message describes it, in the namespace that was dumped.
struct Link {
  uint32_t ifindex = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND ("veth", "netkit", "macvlan", ...); empty when absent
  uint32_t flags = 0;                  // IFF_* from ifinfomsg
  uint32_t link = 0;                   // IFLA_LINK: peer (veth, netkit) or parent ifindex; 0 if absent
  std::optional<int32_t> link_netnsid;  // IFLA_LINK_NETNSID: where `link` lives, when not here

  bool is_loopback() const;
};

// Parses one RTM_NEWLINK message that lies within `available` bytes. Returns nullopt for any
// other message type and for a truncated or malformed message or attribute; it never reads
// outside [nlh, nlh + available).
std::optional<Link> parse_link(const nlmsghdr* nlh, size_t available);

// Parses an RTM_NEWNSID reply: the NETNSA_NSID value (NETNSA_NSID_NOT_ASSIGNED is -1).
std::optional<int32_t> parse_nsid(const nlmsghdr* nlh, size_t available);

// An rtnetlink socket. It talks to the network namespace the calling thread was in when it was
// opened, for its whole life, whatever the thread does afterwards.
class NetlinkSocket {
 public:
  // Throws Error on failure.
  static NetlinkSocket open();

  NetlinkSocket(NetlinkSocket&&) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&&) noexcept;
  ~NetlinkSocket();

  // Every link of the socket's namespace. Like any link query, the dump has the kernel assign
  // nsids to the namespaces its links point into (as `ip link` does), which is what makes
  // nsid_of() answer for them afterwards.
  std::vector<Link> dump_links();

  // One link of the socket's namespace, or nullopt when no link has that ifindex.
  std::optional<Link> get_link(uint32_t ifindex);

  // The nsid the socket's namespace has given the namespace behind `netns_fd`, or -1
  // (NETNSA_NSID_NOT_ASSIGNED) when it has none. Assigns nothing.
  int32_t nsid_of(int netns_fd);

 private:
  struct Closer {
    void operator()(mnl_socket* s) const;
  };
  explicit NetlinkSocket(mnl_socket* socket);

  // Sends `nlh` and feeds each reply message to `on_message` until the kernel ends the reply.
  // Throws Error with the kernel's errno on NLMSG_ERROR.
  void transact(nlmsghdr* nlh, const std::function<void(const nlmsghdr*, size_t)>& on_message);

  std::unique_ptr<mnl_socket, Closer> socket_;
  uint32_t port_id_ = 0;
  uint32_t seq_ = 0;
  std::vector<char> buffer_;
};

}  // namespace psnic
