// The exporter's collectables: container traffic read from the BPF map at scrape time, and
// psnic's own metrics. exporter/server.h serves them.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/views.h"
#include "bpf/traffic_counts.h"

namespace psnic {

// psnic's own metrics: psnic_build_info{version}, psnic_attached_interfaces{mode} and
// psnic_errors_total{op}. Thread-safe.
class SelfMetrics : public SelfReport {
 public:
  // Every ErrorOp's series exists from the start, at 0, so that rate() sees the first error.
  SelfMetrics();

  // Register this with MetricsServer.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Interfaces currently attached in `mode` ("tcx" or "tc"; both start at 0).
  void set_attached(std::string_view mode, double n) override;
  void count_error(ErrorOp op) override;
  void observe_attach_latency(double seconds) override;
  void observe_reconcile(double seconds) override;
  void set_pending_owners(double n) override;
  void set_received_at_peer(double n) override;
  void set_host_network_containers(double n) override;
  void set_runtime_up(std::string_view runtime, std::string_view socket, bool up) override;

  // Interfaces attached now, every mode together (the landing page's count).
  double attached_interfaces() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& attached_;
  prometheus::Family<prometheus::Counter>& errors_;
  std::map<ErrorOp, prometheus::Counter*> errors_by_op_;  // one per ErrorOp, made at construction
  prometheus::Histogram& attach_latency_;
  prometheus::Histogram& reconcile_duration_;
  prometheus::Gauge& pending_owners_;
  prometheus::Gauge& received_at_peer_;
  prometheus::Gauge& host_network_containers_;
  prometheus::Family<prometheus::Gauge>& runtime_up_;
  mutable std::mutex attached_mutex_;
  std::map<std::string, double, std::less<>> attached_by_mode_;  // what set_attached() was told
};

// The container traffic families, read when Prometheus scrapes (no polling in between):
//   psnic_container_network_{receive,transmit}_{bytes,packets}_total
// and, when a drops reader is given, the host peer's kernel statistics seen from the container:
//   psnic_container_network_{receive,transmit}_{errors,packets_dropped}_total
// labelled container_id, container_name, pod, namespace, interface, host_interface (always all
// six, empty where unknown). Receive is the host peer's egress (its tx statistics), transmit its
// ingress (its rx statistics). An interface the map has no entry for is left out; a failed read
// is left out and counted as psnic_errors_total{op="read_map"}, a failed statistics read as
// op="read_stats" (the traffic families are served all the same). Collect() never throws.
class TrafficCollector : public prometheus::Collectable {
 public:
  // The counters of one host ifindex: nullopt when absent, an exception when the read failed.
  // A TrafficMap does it: [map](uint32_t i) { return map->read_counts(i); }. Counts split by
  // protocol are exported as four series each, labelled protocol="tcp", "udp", "icmp", "other"
  // after the six labels above.
  using Reader = std::function<std::optional<TrafficCounts>(uint32_t ifindex)>;
  // The errors and drops of the host interfaces, once per scrape: `ifindexes` are those the
  // scrape exports (sorted); the table may hold more or fewer. An exception when the read failed.
  using DropsReader = std::function<HostLinkDropsTable(const std::vector<uint32_t>& ifindexes)>;

  // `self` may be nullptr (errors are then only skipped). `retired`, when given, adds the final
  // values of interfaces that are gone, before the live ones (traffic only: a link's kernel
  // statistics go with it). Without `read_drops` the errors and drops families are left out.
  TrafficCollector(Reader read, std::shared_ptr<const LabelSnapshot> labels,
                   std::shared_ptr<SelfMetrics> self,
                   std::shared_ptr<const RetiredSnapshot> retired = nullptr,
                   DropsReader read_drops = nullptr);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Reader read_;
  std::shared_ptr<const LabelSnapshot> labels_;
  std::shared_ptr<SelfMetrics> self_;
  std::shared_ptr<const RetiredSnapshot> retired_;
  DropsReader read_drops_;
};

// psnic_container_info{container_id, container_name, image, runtime, pod, namespace} 1: one
// series per container with traffic series, to join metadata onto them by container_id
// (`* on(container_id) group_left(image) psnic_container_info`) rather than to multiply them.
class OwnerInfoCollector : public prometheus::Collectable {
 public:
  explicit OwnerInfoCollector(std::shared_ptr<const OwnerSnapshot> owners);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::shared_ptr<const OwnerSnapshot> owners_;
};

}  // namespace psnic
