// The exporter: container traffic read from the BPF map at scrape time, psnic's own metrics, and
// the HTTP endpoint that serves both to Prometheus.
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
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/views.h"
#include "bpf/traffic.h"

namespace prometheus {
class Exposer;
}

namespace psnic {

// Where /metrics is served unless told otherwise. 9867 is in the 9100-9999 range Prometheus's
// "Default port allocations" list keeps for exporters, in a stretch that list marked free, and no
// exporter we found defaults to it (node_exporter 9100, cAdvisor 8080, ebpf_exporter 9435). Tools
// known to use it are desktop ones on localhost (Zed's `zed serve`, PinchTab); the agent's
// listen flag moves it.
inline constexpr std::string_view kDefaultListen = "0.0.0.0:9867";

// psnic's own metrics: psnic_build_info{version}, psnic_attached_interfaces{mode} and
// psnic_errors_total{op}. Thread-safe.
class SelfMetrics : public SelfReport {
 public:
  // Series for the ops in `error_ops` exist from the start, at 0, so that rate() sees the first
  // error. "read_map" is the collector's own.
  explicit SelfMetrics(const std::vector<std::string>& error_ops = {"read_map"});

  // Register this with MetricsServer.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Interfaces currently attached in `mode` ("tcx" or "tc"; both start at 0).
  void set_attached(std::string_view mode, double n) override;
  // One failed operation, e.g. "attach", "read_map".
  void count_error(std::string_view op) override;
  void observe_attach_latency(double seconds) override;
  void observe_reconcile(double seconds) override;
  void set_pending_owners(double n) override;
  void set_host_network_containers(double n) override;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& attached_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Histogram& attach_latency_;
  prometheus::Histogram& reconcile_duration_;
  prometheus::Gauge& pending_owners_;
  prometheus::Gauge& host_network_containers_;
};

// The container traffic families, read when Prometheus scrapes (no polling in between):
//   psnic_container_network_{receive,transmit}_{bytes,packets}_total
// labelled container_id, container_name, pod, namespace, interface, host_interface (always all
// six, empty where unknown). Receive is the host peer's egress, transmit its ingress.
// An interface the map has no entry for is left out; a failed read is left out and counted as
// psnic_errors_total{op="read_map"}. Collect() never throws.
class TrafficCollector : public prometheus::Collectable {
 public:
  // The counters of one host ifindex: nullopt when absent, an exception when the read failed.
  // A TrafficMap does it: [map](uint32_t i) { return map->read(i); }.
  using Reader = std::function<std::optional<psnic_traffic>(uint32_t ifindex)>;

  // `self` may be nullptr (errors are then only skipped). `retired`, when given, adds the final
  // values of interfaces that are gone, before the live ones.
  TrafficCollector(Reader read, std::shared_ptr<const LabelSnapshot> labels,
                   std::shared_ptr<SelfMetrics> self,
                   std::shared_ptr<const RetiredSnapshot> retired = nullptr);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Reader read_;
  std::shared_ptr<const LabelSnapshot> labels_;
  std::shared_ptr<SelfMetrics> self_;
  std::shared_ptr<const RetiredSnapshot> retired_;
};

// A listen address: "ADDR:PORT" with a numeric IPv4 address, "[IPv6]:PORT", or ":PORT" for all
// IPv4 addresses. PORT is 1-65535, or 0 for a free port the kernel picks.
struct ListenAddress {
  std::string host;  // numeric, without brackets
  uint16_t port = 0;
  bool ipv6 = false;
};
// Throws Error("listen <text>", EINVAL, <what is wrong>).
ListenAddress parse_listen(std::string_view text);

// GET /metrics over HTTP on one address, served by prometheus-cpp's Exposer (civetweb): 8 worker
// threads, so idle connections cannot starve a scrape, a 5 s request timeout, no files served.
class MetricsServer {
 public:
  // Listens before returning. Throws Error with one line, "listen 127.0.0.1:80: address already
  // in use", when the address is malformed or cannot be bound; the HTTP server's own messages are
  // never printed.
  MetricsServer(const std::string& listen,
                std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  // The bound port(s): the one asked for, or the kernel's pick for port 0.
  std::vector<int> ports() const;

 private:
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  ListenAddress bound_;                           // with the port actually bound
  std::unique_ptr<prometheus::Exposer> exposer_;  // declared last: stops serving first
};

}  // namespace psnic
