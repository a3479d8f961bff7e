#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "resolver/netlink.h"

namespace psnic {

// Where the other end of a namespace's interface is.
enum class Placement {
  host_peer,       // veth/netkit whose peer is a link of the caller's namespace
  peer_elsewhere,  // veth/netkit whose peer lives in a namespace that is not the caller's
  peer_local,      // veth pair with both ends in this namespace
  parent,          // macvlan/ipvlan/vlan and similar: stacked on a parent link, no peer
  standalone,      // anything else (dummy, bridge, tun, ...): no peer
};

const char* placement_name(Placement placement);

// One interface of a namespace and what it is paired with on the host.
struct InterfacePair {
  uint32_t ifindex = 0;
  std::string name;
  std::string kind;
  Placement placement = Placement::standalone;
  uint32_t host_ifindex = 0;  // set for host_peer
  std::string host_name;      // set for host_peer
  std::string parent;         // parent link name for Placement::parent, when it can be named
};

// What the match asks of the caller's namespace about one target namespace. Implementations
// cache: each question is asked at most once per link or namespace.
class HostSide {
 public:
  virtual ~HostSide() = default;
  // The caller's link with this ifindex, if any.
  virtual std::optional<Link> link(uint32_t ifindex) = 0;
  // The nsid the target namespace gives the caller's namespace, -1 if none.
  virtual int32_t own_nsid_in_target() = 0;
};

// Classifies every interface of one namespace (loopback left out), `ns_links` being a dump made
// inside it. The match rule: caller's link H is the peer of namespace link C only when
//   1. C.link_netnsid is the nsid the namespace gives the caller's namespace, so C's peer lives
//      in the caller's namespace, and H.link_netnsid is set (H's peer lives elsewhere);
//   2. H.link == C.ifindex;
//   3. C.link == H.ifindex.
// ifindexes are unique only within one namespace, so no single index is ever trusted. Rule 1 is
// asked of the namespace rather than of the host (H.link_netnsid == the nsid the host gives
// it): the two are equivalent for a veth or netkit pair, but the kernel finds an nsid by walking
// every nsid the asking namespace has assigned, and a host has one per container.
std::vector<InterfacePair> match_interfaces(const std::vector<Link>& ns_links, HostSide& host);

// A full dump of the caller's links, indexed for many namespaces' lookups.
class HostLinks {
 public:
  explicit HostLinks(std::vector<Link> links);

  std::optional<Link> find(uint32_t ifindex) const;
  const std::vector<Link>& links() const { return links_; }

 private:
  std::vector<Link> links_;
  std::unordered_map<uint32_t, size_t> by_ifindex_;
};

}  // namespace psnic
