#include "exporter/metrics.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "base/text.h"

namespace psnic {

namespace {

prometheus::MetricFamily family_of(std::string name, std::string help,
                                   prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}
prometheus::MetricFamily counter_family(std::string name, std::string help) {
  return family_of(std::move(name), std::move(help), prometheus::MetricType::Counter);
}
prometheus::MetricFamily gauge_family(std::string name, std::string help) {
  return family_of(std::move(name), std::move(help), prometheus::MetricType::Gauge);
}

// Label values in UTF-8, as Prometheus requires: one interface name of other bytes (a container
// with NET_ADMIN may choose any) would make it reject the whole node's exposition. The text
// serializer escapes '\\', '"' and newlines itself.
std::vector<prometheus::ClientMetric::Label> label_pairs(const InterfaceLabels& labels) {
  return {
      {"container_id", valid_utf8(labels.container_id)},
      {"container_name", valid_utf8(labels.container_name)},
      {"pod", valid_utf8(labels.pod)},
      {"namespace", valid_utf8(labels.namespace_name)},
      {"interface", valid_utf8(labels.interface)},
      {"host_interface", valid_utf8(labels.host_interface)},
  };
}

void add_sample(prometheus::MetricFamily& family,
                const std::vector<prometheus::ClientMetric::Label>& labels, uint64_t value) {
  prometheus::ClientMetric& metric = family.metric.emplace_back();
  metric.label = labels;
  // Exact up to 2^53 (8 PiB); the text format carries doubles anyway.
  metric.counter.value = static_cast<double>(value);
}

}  // namespace

SelfMetrics::SelfMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      attached_(prometheus::BuildGauge()
                    .Name("psnic_attached_interfaces")
                    .Help("Host interfaces the traffic programs are attached to, by attach mode")
                    .Register(*registry_)),
      errors_(prometheus::BuildCounter()
                  .Name("psnic_errors_total")
                  .Help("Failed operations, by operation; each was logged and psnic went on")
                  .Register(*registry_)),
      attach_latency_(
          prometheus::BuildHistogram()
              .Name("psnic_attach_latency_seconds")
              .Help("From a host peer's link notification to its counter attached")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                               0.05, 0.1, 0.25, 0.5, 1})),
      reconcile_duration_(
          prometheus::BuildHistogram()
              .Name("psnic_reconcile_duration_seconds")
              .Help("Duration of a full reconcile of attachments with the host's links")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                               1, 5})),
      pending_owners_(prometheus::BuildGauge()
                          .Name("psnic_pending_owners")
                          .Help("Counted interfaces whose owner is not identified yet")
                          .Register(*registry_)
                          .Add({})),
      received_at_peer_(prometheus::BuildGauge()
                            .Name("psnic_receive_at_peer_interfaces")
                            .Help("Counted interfaces whose receive is counted at the "
                                  "container-side peer's ingress, bpf_redirect_peer traffic "
                                  "included; the others' at the host interface's egress")
                            .Register(*registry_)
                            .Add({})),
      host_network_containers_(
          prometheus::BuildGauge()
              .Name("psnic_host_network_containers")
              .Help("Containers in the host's network namespace, which have no series of their "
                    "own")
              .Register(*registry_)
              .Add({})),
      runtime_up_(prometheus::BuildGauge()
                      .Name("psnic_runtime_up")
                      .Help("Whether a container runtime answers on its socket (1) or not (0), "
                            "by runtime and socket")
                      .Register(*registry_)) {
  prometheus::BuildGauge()
      .Name("psnic_build_info")
      .Help("psnic's version, as a label on a constant 1")
      .Register(*registry_)
      .Add({{"version", PSNIC_VERSION}})
      .Set(1);
  attached_.Add({{"mode", "tcx"}});
  attached_.Add({{"mode", "tc"}});
  for (ErrorOp op : kErrorOps) errors_by_op_[op] = &errors_.Add({{"op", std::string(op_name(op))}});
}

void SelfMetrics::set_attached(std::string_view mode, double n) {
  attached_.Add({{"mode", std::string(mode)}}).Set(n);
  std::lock_guard lock(attached_mutex_);
  attached_by_mode_.insert_or_assign(std::string(mode), n);
}

double SelfMetrics::attached_interfaces() const {
  std::lock_guard lock(attached_mutex_);
  double total = 0;
  for (const auto& [mode, n] : attached_by_mode_) total += n;
  return total;
}

void SelfMetrics::count_error(ErrorOp op) { errors_by_op_.at(op)->Increment(); }

void SelfMetrics::observe_attach_latency(double seconds) { attach_latency_.Observe(seconds); }
void SelfMetrics::observe_reconcile(double seconds) { reconcile_duration_.Observe(seconds); }
void SelfMetrics::set_pending_owners(double n) { pending_owners_.Set(n); }
void SelfMetrics::set_received_at_peer(double n) { received_at_peer_.Set(n); }
void SelfMetrics::set_host_network_containers(double n) { host_network_containers_.Set(n); }
void SelfMetrics::set_runtime_up(std::string_view runtime, std::string_view socket, bool up) {
  runtime_up_.Add({{"runtime", std::string(runtime)}, {"socket", std::string(socket)}})
      .Set(up ? 1 : 0);
}

TrafficCollector::TrafficCollector(Reader read, std::shared_ptr<const LabelSnapshot> labels,
                                   std::shared_ptr<SelfMetrics> self,
                                   std::shared_ptr<const RetiredSnapshot> retired,
                                   DropsReader read_drops)
    : read_(std::move(read)),
      labels_(std::move(labels)),
      self_(std::move(self)),
      retired_(std::move(retired)),
      read_drops_(std::move(read_drops)) {}

std::vector<prometheus::MetricFamily> TrafficCollector::Collect() const {
  // Order is the exposition order; receive before transmit, as cAdvisor has them.
  enum {
    kReceiveBytes,
    kTransmitBytes,
    kReceivePackets,
    kTransmitPackets,
    kReceiveErrors,
    kTransmitErrors,
    kReceiveDropped,
    kTransmitDropped
  };
  std::vector<prometheus::MetricFamily> families;
  try {
    families.push_back(counter_family(
        "psnic_container_network_receive_bytes_total",
        "Bytes the container received on the interface (frame length, counted at the host "
        "peer's egress)"));
    families.push_back(counter_family(
        "psnic_container_network_transmit_bytes_total",
        "Bytes the container transmitted on the interface (frame length, counted at the host "
        "peer's ingress)"));
    families.push_back(counter_family(
        "psnic_container_network_receive_packets_total",
        "Packets the container received on the interface (counted at the host peer's egress)"));
    families.push_back(counter_family(
        "psnic_container_network_transmit_packets_total",
        "Packets the container transmitted on the interface (counted at the host peer's "
        "ingress)"));
    if (read_drops_) {
      families.push_back(
          counter_family("psnic_container_network_receive_errors_total",
                         "Errors on the way to the container: the host peer's tx_errors"));
      families.push_back(
          counter_family("psnic_container_network_transmit_errors_total",
                         "Errors on the way from the container: the host peer's rx_errors"));
      families.push_back(counter_family(
          "psnic_container_network_receive_packets_dropped_total",
          "Packets sent to the container that it never got: the host peer's tx_dropped"));
      families.push_back(counter_family(
          "psnic_container_network_transmit_packets_dropped_total",
          "Packets the container sent that the host never took in: the host peer's rx_dropped"));
    }

    // The host peer's egress is what the container receives, its ingress what it sends.
    auto add_one = [&](const std::vector<prometheus::ClientMetric::Label>& labels,
                       const psnic_traffic& traffic) {
      add_sample(families[kReceiveBytes], labels, traffic.egress.bytes);
      add_sample(families[kTransmitBytes], labels, traffic.ingress.bytes);
      add_sample(families[kReceivePackets], labels, traffic.egress.packets);
      add_sample(families[kTransmitPackets], labels, traffic.ingress.packets);
    };
    // Split counts are four series per family, one per protocol; unsplit ones one.
    auto add = [&](const std::vector<prometheus::ClientMetric::Label>& labels,
                   const TrafficCounts& counts) {
      if (!counts.by_protocol) return add_one(labels, counts.all);
      std::vector<prometheus::ClientMetric::Label> with_protocol = labels;
      with_protocol.push_back({"protocol", ""});
      for (int p = 0; p < PSNIC_PROTOCOLS; ++p) {
        with_protocol.back().value = std::string(protocol_name(p));
        add_one(with_protocol, (*counts.by_protocol)[p]);
      }
    };
    // Held for the whole loop: a range-for over `*retired_->current()` would drop the only
    // reference before the body runs once the agent publishes a new table.
    if (const std::shared_ptr<const RetiredTable> retired =
            retired_ ? retired_->current() : nullptr)
      for (const RetiredSeries& series : *retired) add(label_pairs(series.labels), series.final);

    const std::shared_ptr<const LabelTable> table = labels_ ? labels_->current() : nullptr;
    if (!table || !read_) return families;

    // Sorted by ifindex, so that two scrapes list the series in the same order.
    std::vector<uint32_t> ifindexes;
    ifindexes.reserve(table->size());
    for (const auto& entry : *table) ifindexes.push_back(entry.first);
    std::sort(ifindexes.begin(), ifindexes.end());
    for (auto& family : families) family.metric.reserve(ifindexes.size());

    // One read of the kernel's statistics for the whole scrape, before the map reads: the
    // errors and drops are then never newer than the traffic beside them.
    HostLinkDropsTable drops;
    if (read_drops_ && !ifindexes.empty()) {
      try {
        drops = read_drops_(ifindexes);
      } catch (const std::exception&) {
        if (self_) self_->count_error(ErrorOp::kReadStats);
      }
    }

    for (uint32_t ifindex : ifindexes) {
      std::optional<TrafficCounts> traffic;
      try {
        traffic = read_(ifindex);
      } catch (const std::exception&) {
        if (self_) self_->count_error(ErrorOp::kReadMap);
        continue;
      }
      if (!traffic) continue;  // not attached yet, or already gone
      const auto labels = label_pairs(table->at(ifindex));
      add(labels, *traffic);
      // A link the statistics read did not see (gone meanwhile, or the read failed) has no
      // errors and drops in this scrape rather than made-up zeros.
      auto found = drops.find(ifindex);
      if (found == drops.end()) continue;
      // Seen from the container: what the host peer transmitted is what the container receives.
      const HostLinkDrops& host = found->second;
      add_sample(families[kReceiveErrors], labels, host.tx_errors);
      add_sample(families[kTransmitErrors], labels, host.rx_errors);
      add_sample(families[kReceiveDropped], labels, host.tx_dropped);
      add_sample(families[kTransmitDropped], labels, host.rx_dropped);
    }
  } catch (...) {
    // Out of memory, most likely: a scrape with what was gathered beats a dead agent.
    try {
      if (self_) self_->count_error(ErrorOp::kCollect);
    } catch (...) {
    }
  }
  return families;
}

OwnerInfoCollector::OwnerInfoCollector(std::shared_ptr<const OwnerSnapshot> owners)
    : owners_(std::move(owners)) {}

std::vector<prometheus::MetricFamily> OwnerInfoCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  try {
    prometheus::MetricFamily& family = families.emplace_back(gauge_family(
        "psnic_container_info",
        "What a container with series is: its name, image and runtime, as labels on a constant 1 "
        "to join by container_id"));
    const std::shared_ptr<const OwnerTable> owners = owners_ ? owners_->current() : nullptr;
    if (!owners) return families;
    family.metric.reserve(owners->size());
    for (const OwnerFacts& owner : *owners) {
      prometheus::ClientMetric& metric = family.metric.emplace_back();
      metric.label = {
          {"container_id", valid_utf8(owner.labels.container_id)},
          {"container_name", valid_utf8(owner.labels.container_name)},
          {"image", valid_utf8(owner.image)},
          {"runtime", valid_utf8(owner.runtime)},
          {"pod", valid_utf8(owner.labels.pod)},
          {"namespace", valid_utf8(owner.labels.namespace_name)},
      };
      metric.gauge.value = 1;
    }
  } catch (...) {
    families.clear();  // out of memory: the traffic goes on being served without it
  }
  return families;
}

}  // namespace psnic
