#pragma once

// psnic's counter of one host interface beside the kernel's own statistics of it, for the tests
// that check the two move together.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "agent/views.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"
#include "tests/support/support.h"
#include "traffic.h"

namespace psnic::test {

inline psnic_traffic read_counters(const TrafficProgram& program, uint32_t ifindex) {
  std::optional<psnic_traffic> counters = TrafficMap(program.map_fd()).read(ifindex);
  if (!counters) ADD_FAILURE() << "no counter for ifindex " << ifindex;
  return counters.value_or(psnic_traffic{});
}

// psnic's counters and the kernel's statistics of one host veth, read at one quiet moment.
struct Counters {
  psnic_traffic psnic{};
  uint64_t tx_bytes = 0, tx_packets = 0, rx_bytes = 0, rx_packets = 0;

  static Counters read(const TrafficProgram& program, uint32_t ifindex, const std::string& host) {
    Counters c;
    c.psnic = read_counters(program, ifindex);
    c.tx_bytes = test::link_statistic(host, "tx_bytes");
    c.tx_packets = test::link_statistic(host, "tx_packets");
    c.rx_bytes = test::link_statistic(host, "rx_bytes");
    c.rx_packets = test::link_statistic(host, "rx_packets");
    return c;
  }
};

// psnic's deltas equal the kernel's: host egress is the host veth's transmit (the container's
// receive), ingress its receive.
inline void expect_same_deltas(const Counters& before, const Counters& after) {
  EXPECT_EQ(after.psnic.egress.bytes - before.psnic.egress.bytes, after.tx_bytes - before.tx_bytes);
  EXPECT_EQ(after.psnic.egress.packets - before.psnic.egress.packets,
            after.tx_packets - before.tx_packets);
  EXPECT_EQ(after.psnic.ingress.bytes - before.psnic.ingress.bytes,
            after.rx_bytes - before.rx_bytes);
  EXPECT_EQ(after.psnic.ingress.packets - before.psnic.ingress.packets,
            after.rx_packets - before.rx_packets);
}

}  // namespace psnic::test
