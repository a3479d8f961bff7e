// The traffic map as user space reads it: the sum over CPUs of one interface's counters.
#include "kernel/traffic_map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <vector>

#include "base/error.h"

namespace psnic {

// The layout bpf/traffic.bpf.c writes: six __u64 (two of them reserved), no padding. A per-CPU map
// stores each CPU's value rounded up to 8 bytes, so one key reads back as cpus() consecutive
// psnic_traffic.
static_assert(sizeof(psnic_counters) == 24);
static_assert(sizeof(psnic_traffic) == 48);
static_assert(sizeof(psnic_traffic) % 8 == 0);
static_assert(offsetof(psnic_traffic, ingress) == 0);
static_assert(offsetof(psnic_traffic, egress) == 24);
static_assert(offsetof(psnic_counters, bytes) == 0);
static_assert(offsetof(psnic_counters, packets) == 8);
static_assert(offsetof(psnic_counters, reserved) == 16);
// traffic_proto's value: four of them, indexed by psnic_protocol.
static_assert(sizeof(psnic_traffic_split) == PSNIC_PROTOCOLS * sizeof(psnic_traffic));
static_assert(PSNIC_PROTOCOL_TCP == 0 && PSNIC_PROTOCOL_UDP == 1 && PSNIC_PROTOCOL_ICMP == 2 &&
              PSNIC_PROTOCOL_OTHER == 3 && PSNIC_PROTOCOLS == 4);

namespace {

std::string map_object(int fd) { return "traffic map (fd " + std::to_string(fd) + ")"; }

}  // namespace

TrafficMap::TrafficMap(int map_fd) : fd_(map_fd), cpus_(libbpf_num_possible_cpus()) {
  if (cpus_ <= 0) throw system_error("possible cpus", -cpus_);
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd_, &info, &length) != 0) throw system_error(map_object(fd_), errno);
  // A larger value would make the kernel write past our buffer: check before the first read.
  split_ = info.value_size == sizeof(psnic_traffic_split);
  if (info.type != BPF_MAP_TYPE_PERCPU_HASH || info.key_size != sizeof(uint32_t) ||
      (info.value_size != sizeof(psnic_traffic) && !split_)) {
    throw Error(map_object(fd_), EINVAL,
                "not a per-cpu hash of " + std::to_string(sizeof(uint32_t)) + "-byte keys and " +
                    std::to_string(sizeof(psnic_traffic)) + "- or " +
                    std::to_string(sizeof(psnic_traffic_split)) + "-byte values (type " +
                    std::to_string(info.type) + ", key " + std::to_string(info.key_size) +
                    ", value " + std::to_string(info.value_size) + ")");
  }
}

std::optional<psnic_traffic> TrafficMap::read(uint32_t ifindex) const {
  std::optional<TrafficCounts> counts = read_counts(ifindex);
  if (!counts) return std::nullopt;
  return counts->all;
}

std::optional<TrafficCounts> TrafficMap::read_counts(uint32_t ifindex) const {
  // One buffer per scrape thread: a scrape reads every key, each read needs cpus() values.
  thread_local std::vector<psnic_traffic> values;
  const size_t per_cpu = split_ ? PSNIC_PROTOCOLS : 1;
  values.resize(static_cast<size_t>(cpus_) * per_cpu);
  if (bpf_map_lookup_elem(fd_, &ifindex, values.data()) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw system_error("traffic map key " + std::to_string(ifindex), errno);
  }
  // CPU c's value is values[c * per_cpu, (c + 1) * per_cpu): one psnic_traffic, or one per
  // protocol.
  psnic_traffic_split sum{};
  for (size_t i = 0; i < values.size(); ++i) add_traffic(sum.protocol[i % per_cpu], values[i]);
  if (!split_) return TrafficCounts(sum.protocol[0]);
  return TrafficCounts(sum);
}

}  // namespace psnic
