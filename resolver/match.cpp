#include "resolver/match.h"

#include <string_view>

namespace psnic {
namespace {

bool has_peer(std::string_view kind) { return kind == "veth" || kind == "netkit"; }

bool is_stacked(std::string_view kind) {
  return kind == "macvlan" || kind == "macvtap" || kind == "ipvlan" || kind == "ipvtap" ||
         kind == "vlan";
}

}  // namespace

const char* placement_name(Placement placement) {
  switch (placement) {
    case Placement::host_peer:
      return "host";
    case Placement::peer_elsewhere:
      return "other-namespace";
    case Placement::peer_local:
      return "same-namespace";
    case Placement::parent:
      return "parent";
    case Placement::standalone:
      return "none";
  }
  return "none";
}

std::vector<InterfacePair> match_interfaces(const std::vector<Link>& ns_links, HostSide& host) {
  auto local_name = [&](uint32_t ifindex) -> std::string {
    for (const Link& link : ns_links)
      if (link.ifindex == ifindex) return link.name;
    return {};
  };

  std::vector<InterfacePair> pairs;
  pairs.reserve(ns_links.size());
  for (const Link& c : ns_links) {
    if (c.is_loopback()) continue;
    InterfacePair pair;
    pair.ifindex = c.ifindex;
    pair.name = c.name;
    pair.kind = c.kind;

    if (has_peer(c.kind)) {
      if (!c.link_netnsid) {
        pair.placement = Placement::peer_local;
      } else {
        pair.placement = Placement::peer_elsewhere;
        const bool peer_in_host =
            *c.link_netnsid >= 0 && c.link != 0 && *c.link_netnsid == host.own_nsid_in_target();
        std::optional<Link> h = peer_in_host ? host.link(c.link) : std::nullopt;
        if (h && h->link_netnsid && *h->link_netnsid >= 0 && h->link == c.ifindex &&
            c.link == h->ifindex) {
          pair.placement = Placement::host_peer;
          pair.host_ifindex = h->ifindex;
          pair.host_name = h->name;
        }
      }
    } else if (is_stacked(c.kind) || (c.link != 0 && c.link != c.ifindex)) {
      pair.placement = Placement::parent;
      if (!c.link_netnsid) {
        pair.parent = local_name(c.link);
      } else if (*c.link_netnsid >= 0 && *c.link_netnsid == host.own_nsid_in_target()) {
        if (std::optional<Link> parent = host.link(c.link)) pair.parent = parent->name;
      }
    }
    pairs.push_back(std::move(pair));
  }
  return pairs;
}

HostLinks::HostLinks(std::vector<Link> links) : links_(std::move(links)) {
  by_ifindex_.reserve(links_.size());
  for (size_t i = 0; i < links_.size(); ++i) by_ifindex_.emplace(links_[i].ifindex, i);
}

std::optional<Link> HostLinks::find(uint32_t ifindex) const {
  auto it = by_ifindex_.find(ifindex);
  if (it == by_ifindex_.end()) return std::nullopt;
  return links_[it->second];
}

}  // namespace psnic
