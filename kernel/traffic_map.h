#pragma once

#include <cstdint>
#include <optional>

#include "bpf/traffic.h"

namespace psnic {

// Reads the traffic map (BPF_MAP_TYPE_PERCPU_HASH, key __u32 host ifindex, value psnic_traffic)
// and sums the CPUs. Does not own the fd, which must outlive it. Thread-safe.
class TrafficMap {
 public:
  // Throws Error when map_fd is not a per-CPU hash with the traffic map's key and value sizes.
  explicit TrafficMap(int map_fd);

  // nullopt when the key is absent; throws Error on any other failure.
  std::optional<psnic_traffic> read(uint32_t ifindex) const;
  // Possible CPUs: how many values one key holds.
  int cpus() const { return cpus_; }

 private:
  int fd_;
  int cpus_;
};

}  // namespace psnic
