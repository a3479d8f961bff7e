// User space's view of one interface's counters, summed over CPUs: the kernel reader
// (kernel/traffic_map.h) makes it, the agent keeps it for retired series, the exporter turns it
// into samples. C++ only; bpf/traffic.h is the record both sides share.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "bpf/traffic.h"

namespace psnic {

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
      const psnic_traffic& one = split.protocol[p];
      (*by_protocol)[p] = one;
      all.ingress.bytes += one.ingress.bytes;
      all.ingress.packets += one.ingress.packets;
      all.egress.bytes += one.egress.bytes;
      all.egress.packets += one.egress.packets;
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
