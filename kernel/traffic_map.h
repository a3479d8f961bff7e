#pragma once

#include <cstdint>
#include <optional>

#include "bpf/traffic.h"
#include "bpf/traffic_counts.h"

namespace psnic {

// Reads the traffic map (BPF_MAP_TYPE_PERCPU_HASH, key __u32 host ifindex, value psnic_traffic)
// or the traffic_proto map (value psnic_traffic_split), and sums the CPUs. Does not own the fd,
// which must outlive it. Thread-safe.
class TrafficMap {
 public:
  // Throws Error when map_fd is not a per-CPU hash with either map's key and value sizes.
  explicit TrafficMap(int map_fd);

  // Whether it is the traffic_proto map.
  bool split() const { return split_; }
  // nullopt when the key is absent; throws Error on any other failure. read() gives all the
  // interface's traffic (summed over protocols when split), read_counts() the protocols too.
  std::optional<psnic_traffic> read(uint32_t ifindex) const;
  std::optional<TrafficCounts> read_counts(uint32_t ifindex) const;
  // Possible CPUs: how many values one key holds.
  int cpus() const { return cpus_; }

 private:
  int fd_;
  int cpus_;
  bool split_ = false;
};

}  // namespace psnic
