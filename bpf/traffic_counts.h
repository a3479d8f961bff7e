// User space's view of one interface's counters, summed over CPUs: the kernel reader
// (kernel/traffic_map.h) makes it, the agent keeps it for retired series, the exporter turns it
// into samples. C++ only; bpf/traffic.h is the record both sides share.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "bpf/traffic.h"

namespace psnic {

// Adds `from`'s bytes and packets, both directions, to `to` (`reserved` is nobody's).
inline void add_traffic(psnic_traffic& to, const psnic_traffic& from) {
  to.ingress.bytes += from.ingress.bytes;
  to.ingress.packets += from.ingress.packets;
  to.egress.bytes += from.egress.bytes;
  to.egress.packets += from.egress.packets;
}

struct TrafficCounts {
  // Everything the interface carried; with the protocol split, the sum over protocols.
  psnic_traffic all{};
  // With --split protocol, the counters of each protocol, indexed by psnic_protocol; they are
  // the exported series then, and `all` is not.
  std::optional<std::array<psnic_traffic, PSNIC_PROTOCOLS>> by_protocol;

  TrafficCounts() = default;
  // Unsplit counts. Implicit: a psnic_traffic is what an unsplit interface counts.
  TrafficCounts(const psnic_traffic& traffic) : all(traffic) {}  // NOLINT(runtime/explicit)
  // Split counts; `all` is their sum.
  explicit TrafficCounts(const psnic_traffic_split& split) : by_protocol(std::in_place) {
    for (int p = 0; p < PSNIC_PROTOCOLS; ++p) {
      (*by_protocol)[p] = split.protocol[p];
      add_traffic(all, split.protocol[p]);
    }
  }
};

// The value of the "protocol" label of each psnic_protocol: "tcp", "udp", "icmp", "other".
inline std::string_view protocol_name(int protocol) {
  static constexpr std::array<std::string_view, PSNIC_PROTOCOLS> kNames = {"tcp", "udp", "icmp",
                                                                           "other"};
  return kNames.at(static_cast<size_t>(protocol));
}

}  // namespace psnic
