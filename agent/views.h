// The agent's read-only views, for the exporter and the rate table: the label table the agent
// publishes, the traffic map, and what the agent reports about itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bpf/traffic.h"

namespace psnic {

// Labels of one counted host interface, seen from the container. Empty where unknown.
struct InterfaceLabels {
  std::string container_id;
  std::string container_name;
  std::string pod;
  std::string namespace_name;  // the Kubernetes namespace, exported as label "namespace"
  std::string interface;       // the container-side name, e.g. eth0
  std::string host_interface;  // the host peer, e.g. veth1241974; unique per entry
};

// Host ifindex -> labels. Published whole by the agent and never changed after publishing.
using LabelTable = std::unordered_map<uint32_t, InterfaceLabels>;

// The label table scrape threads read while the agent loop replaces it. Starts empty.
class LabelSnapshot {
 public:
  LabelSnapshot();
  // Replaces the table; scrapes already running keep the one they took. nullptr means empty.
  void publish(std::shared_ptr<const LabelTable> table);
  // Never nullptr.
  std::shared_ptr<const LabelTable> current() const;

 private:
  std::atomic<std::shared_ptr<const LabelTable>> table_;
};

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

// What the agent reports about itself as it runs; the exporter's SelfMetrics turns it into
// psnic_attached_interfaces and psnic_errors_total. Thread-safe implementations.
class SelfReport {
 public:
  virtual ~SelfReport() = default;
  // Interfaces currently attached in `mode` ("tcx" or "tc").
  virtual void set_attached(std::string_view mode, double n) = 0;
  // One failed operation, e.g. "attach", "read_map".
  virtual void count_error(std::string_view op) = 0;
};

}  // namespace psnic
