// The agent's read-only views, for the exporter and the rate table: the label table the agent
// publishes, the traffic map, and what the agent reports about itself.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpf/traffic_counts.h"

namespace psnic {

// Labels of one counted host interface, seen from the container. Empty where unknown.
struct InterfaceLabels {
  std::string container_id;
  std::string container_name;
  std::string pod;
  std::string namespace_name;  // the Kubernetes namespace, exported as label "namespace"
  std::string interface;       // the container-side name, e.g. eth0
  std::string host_interface;  // the host peer, e.g. veth1241974; unique per entry

  bool operator==(const InterfaceLabels&) const = default;
};

// Host ifindex -> labels. Published whole by the agent and never changed after publishing.
using LabelTable = std::unordered_map<uint32_t, InterfaceLabels>;

// What is known of a namespace's owner: the labels of its series, and what psnic_container_info
// carries besides (metadata that would multiply the traffic series if it were their labels).
struct OwnerFacts {
  InterfaceLabels labels;
  std::string image;    // the container's image as its runtime names it, "" when unknown
  std::string runtime;  // "docker", "podman", "containerd", "cri-o", "" when unknown
  // The runtime contradicts the container id the namespace's cgroups claimed (a process that
  // moved itself into another container's cgroup): labels.container_id is then cleared, and a
  // series exported under the claimed id is relabelled.
  bool disowned = false;
  bool operator==(const OwnerFacts&) const = default;
};
// One entry per container with series (by container_id), for psnic_container_info.
using OwnerTable = std::vector<OwnerFacts>;

// A value the agent loop replaces whole while scrape threads read it. Starts as an empty T.
template <typename T>
class Snapshot {
 public:
  Snapshot() : value_(empty()) {}
  // Replaces the value; scrapes already running keep the one they took. nullptr means empty.
  void publish(std::shared_ptr<const T> value) { value_.store(value ? std::move(value) : empty()); }
  // Never nullptr.
  std::shared_ptr<const T> current() const { return value_.load(); }

 private:
  static std::shared_ptr<const T> empty() {
    static const auto none = std::make_shared<const T>();
    return none;
  }
  std::atomic<std::shared_ptr<const T>> value_;
};

// The labels of the interfaces being counted.
using LabelSnapshot = Snapshot<LabelTable>;

// An interface that is gone, exported with the values it had (read from the map before its
// entry was dropped) until its grace period ends, so that Prometheus scrapes its last increments.
struct RetiredSeries {
  InterfaceLabels labels;
  TrafficCounts final;
};
using RetiredTable = std::vector<RetiredSeries>;
using RetiredSnapshot = Snapshot<RetiredTable>;
using OwnerSnapshot = Snapshot<OwnerTable>;

// Errors and drops of one host interface, from its kernel statistics (rtnetlink's
// IFLA_STATS_LINK_64), seen from the host side as the kernel counts them: rx is what the host
// interface received, which is what the container transmitted.
struct HostLinkDrops {
  uint64_t rx_errors = 0;
  uint64_t tx_errors = 0;
  uint64_t rx_dropped = 0;
  uint64_t tx_dropped = 0;

  bool operator==(const HostLinkDrops&) const = default;
};
// Host ifindex -> its errors and drops, read at one moment.
using HostLinkDropsTable = std::unordered_map<uint32_t, HostLinkDrops>;

// What can fail while the agent runs, each logged and counted, never fatal: one
// psnic_errors_total{op} series each, exported at 0 from the start so that rate() sees the first.
enum class ErrorOp {
  kAttach,     // attaching to, or detaching from, a host interface
  kReadMap,    // reading an interface's counters from the BPF map
  kReadStats,  // reading the host interfaces' kernel statistics (errors, drops) over rtnetlink
  kReconcile,  // a full pass over the host's links
  kIdentify,   // finding a counted interface's namespace and owner from /proc
  kDescribe,   // asking a container runtime for the owner's name
  kCollect,    // a scrape that could not be completed (out of memory)
};
inline constexpr ErrorOp kErrorOps[] = {
    ErrorOp::kAttach,   ErrorOp::kReadMap,  ErrorOp::kReadStats, ErrorOp::kReconcile,
    ErrorOp::kIdentify, ErrorOp::kDescribe, ErrorOp::kCollect};
// The op label: "attach", "read_map", ...
std::string_view op_name(ErrorOp op);

// What the agent reports about itself as it runs; the exporter's SelfMetrics turns it into
// psnic_attached_interfaces and psnic_errors_total. Thread-safe implementations.
class SelfReport {
 public:
  virtual ~SelfReport() = default;
  // Interfaces currently attached in `mode` ("tcx" or "tc").
  virtual void set_attached(std::string_view mode, double n) = 0;
  // One failed operation.
  virtual void count_error(ErrorOp op) = 0;
  // From a host peer's link notification to its counter attached.
  virtual void observe_attach_latency(double /*seconds*/) {}
  // One full reconcile pass.
  virtual void observe_reconcile(double /*seconds*/) {}
  // Counted interfaces whose owner is not identified yet.
  virtual void set_pending_owners(double /*n*/) {}
  // Counted interfaces whose receive is counted at their container-side peer's ingress.
  virtual void set_received_at_peer(double /*n*/) {}
  // Containers in the host's network namespace: no interface of their own, so no series.
  virtual void set_host_network_containers(double /*n*/) {}
  // Whether a container runtime answers on `socket` (psnic_runtime_up{runtime,socket}).
  virtual void set_runtime_up(std::string_view /*runtime*/, std::string_view /*socket*/,
                              bool /*up*/) {}
};

// When the agent's loop last turned: the loop beats it each time it comes back to wait (and at
// least once a second while idle), /healthz reads it. A loop stuck in one handler stops beating.
class LoopHeartbeat {
 public:
  using Clock = std::chrono::steady_clock;

  // The first beat is at construction: the time before the loop's first turn counts too.
  explicit LoopHeartbeat(Clock::time_point start = Clock::now()) { beat(start); }

  void beat(Clock::time_point now = Clock::now()) {
    last_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  }
  Clock::time_point last() const {
    return Clock::time_point(Clock::duration(last_.load(std::memory_order_relaxed)));
  }

 private:
  std::atomic<Clock::rep> last_;
};

}  // namespace psnic
