#include <fcntl.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/event_loop.h"
#include "base/error.h"
#include "exporter/metrics.h"
#include "exporter/server.h"
#include "tests/support/loopback_client.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using std::chrono::steady_clock;

const char* const kFamilies[] = {
    "psnic_container_network_receive_bytes_total",
    "psnic_container_network_transmit_bytes_total",
    "psnic_container_network_receive_packets_total",
    "psnic_container_network_transmit_packets_total",
};

psnic_traffic traffic(uint64_t in_bytes, uint64_t in_packets, uint64_t out_bytes,
                      uint64_t out_packets) {
  psnic_traffic t{};
  t.ingress.bytes = in_bytes;
  t.ingress.packets = in_packets;
  t.egress.bytes = out_bytes;
  t.egress.packets = out_packets;
  return t;
}

// Stands in for the BPF map: present keys, absent keys, and keys whose read fails.
struct FakeMap {
  std::map<uint32_t, psnic_traffic> entries;
  std::set<uint32_t> failing;
  mutable int reads = 0;

  TrafficCollector::Reader reader() const {
    return [this](uint32_t ifindex) -> std::optional<psnic_traffic> {
      ++reads;
      if (failing.count(ifindex)) throw system_error("traffic map key", EIO);
      auto it = entries.find(ifindex);
      if (it == entries.end()) return std::nullopt;
      return it->second;
    };
  }
};

InterfaceLabels labels(std::string host_interface) {
  InterfaceLabels l;
  l.container_id = std::string(64, 'a');
  l.container_name = "web";
  l.pod = "web-7d4b9";
  l.namespace_name = "shop";
  l.interface = "eth0";
  l.host_interface = std::move(host_interface);
  return l;
}

std::shared_ptr<LabelSnapshot> snapshot_of(LabelTable table) {
  auto snapshot = std::make_shared<LabelSnapshot>();
  snapshot->publish(std::make_shared<const LabelTable>(std::move(table)));
  return snapshot;
}

const prometheus::MetricFamily* find_family(const std::vector<prometheus::MetricFamily>& families,
                                            const std::string& name) {
  for (const auto& family : families)
    if (family.name == name) return &family;
  return nullptr;
}

std::string label_value(const prometheus::ClientMetric& metric, const std::string& name) {
  for (const auto& label : metric.label)
    if (label.name == name) return label.value;
  return "<missing>";
}

// The sample of `family` whose host_interface is `host`, or nullptr.
const prometheus::ClientMetric* sample(const std::vector<prometheus::MetricFamily>& families,
                                       const std::string& family, const std::string& host) {
  const prometheus::MetricFamily* f = find_family(families, family);
  if (!f) return nullptr;
  for (const auto& metric : f->metric)
    if (label_value(metric, "host_interface") == host) return &metric;
  return nullptr;
}

// The counter value of that sample, -1 when there is none.
double counter_of(const std::vector<prometheus::MetricFamily>& families, const std::string& family,
                  const std::string& host) {
  const prometheus::ClientMetric* metric = sample(families, family, host);
  return metric ? metric->counter.value : -1;
}

std::string serialize(const std::vector<prometheus::MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

// The value of the series written exactly as `series` (name and labels) in `text`, or -1.
double value_in(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// Runs `body`, with the process's stdout and stderr sent into a pipe; returns what they got.
std::string captured_output(const std::function<void()>& body) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) throw system_error("pipe", errno);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1);
  int saved_err = dup(2);
  dup2(pipe_fds[1], 1);
  dup2(pipe_fds[1], 2);
  auto restore = [&] {
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(pipe_fds[1]);
  };
  try {
    body();
  } catch (...) {
    restore();
    close(pipe_fds[0]);
    throw;
  }
  restore();
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  close(pipe_fds[0]);
  return out;
}

// `promtool check metrics` on `text`: its exit status and everything it printed.
test::CommandResult promtool_check(const std::string& text) {
  char path[] = "/tmp/psnictest-metrics-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) throw system_error("mkstemp", errno);
  std::ofstream(path) << text;
  close(fd);
  test::CommandResult result = test::run("promtool check metrics < " + std::string(path));
  unlink(path);
  return result;
}

// ---- TrafficCollector --------------------------------------------------------------------------

TEST(ExporterCollector, FamiliesAreCountersWithHelpInAFixedOrder) {
  FakeMap map;
  map.entries[7] = traffic(1, 2, 3, 4);
  TrafficCollector collector(map.reader(), snapshot_of({{7, labels("veth7")}}), nullptr);
  auto families = collector.Collect();
  ASSERT_EQ(families.size(), 4u);
  for (size_t i = 0; i < families.size(); ++i) {
    EXPECT_EQ(families[i].name, kFamilies[i]);
    EXPECT_EQ(families[i].type, prometheus::MetricType::Counter) << families[i].name;
    EXPECT_FALSE(families[i].help.empty()) << families[i].name;
    EXPECT_EQ(families[i].metric.size(), 1u) << families[i].name;
  }
}

TEST(ExporterCollector, ReceiveIsHostEgressTransmitIsHostIngress) {
  FakeMap map;
  map.entries[7] = traffic(/*in_bytes=*/1000, /*in_packets=*/10, /*out_bytes=*/5000,
                           /*out_packets=*/50);
  TrafficCollector collector(map.reader(), snapshot_of({{7, labels("veth7")}}), nullptr);
  auto families = collector.Collect();
  auto value = [&](const char* family) { return counter_of(families, family, "veth7"); };
  EXPECT_EQ(value("psnic_container_network_receive_bytes_total"), 5000);
  EXPECT_EQ(value("psnic_container_network_receive_packets_total"), 50);
  EXPECT_EQ(value("psnic_container_network_transmit_bytes_total"), 1000);
  EXPECT_EQ(value("psnic_container_network_transmit_packets_total"), 10);
}

TEST(ExporterCollector, LargeCountersStayExactInTheExposition) {
  FakeMap map;
  const uint64_t big = (uint64_t{1} << 53) - 1;  // 9007199254740991: the largest exact double
  map.entries[7] = traffic(123456789012, 1, big, 2);
  TrafficCollector collector(map.reader(), snapshot_of({{7, InterfaceLabels{}}}), nullptr);
  std::string text = serialize(collector.Collect());
  EXPECT_NE(text.find("} 9007199254740991\n"), std::string::npos) << text;
  EXPECT_NE(text.find("} 123456789012\n"), std::string::npos) << text;
}

TEST(ExporterCollector, EverySampleHasAllSixLabelsEmptyWhereUnknown) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  map.entries[8] = traffic(1, 1, 1, 1);
  InterfaceLabels unknown;
  unknown.host_interface = "veth8";  // an owner not identified yet
  TrafficCollector collector(map.reader(), snapshot_of({{7, labels("veth7")}, {8, unknown}}),
                             nullptr);
  const std::vector<std::string> names = {"container_id", "container_name", "pod",
                                          "namespace",    "interface",      "host_interface"};
  auto families = collector.Collect();
  for (const auto& family : families) {
    ASSERT_EQ(family.metric.size(), 2u) << family.name;
    for (const auto& metric : family.metric) {
      std::vector<std::string> got;
      for (const auto& label : metric.label) got.push_back(label.name);
      EXPECT_EQ(got, names) << family.name;
    }
  }
  const prometheus::ClientMetric* known =
      sample(families, "psnic_container_network_receive_bytes_total", "veth7");
  ASSERT_NE(known, nullptr);
  EXPECT_EQ(label_value(*known, "container_id"), std::string(64, 'a'));
  EXPECT_EQ(label_value(*known, "container_name"), "web");
  EXPECT_EQ(label_value(*known, "pod"), "web-7d4b9");
  EXPECT_EQ(label_value(*known, "namespace"), "shop");
  EXPECT_EQ(label_value(*known, "interface"), "eth0");
  const prometheus::ClientMetric* anonymous =
      sample(families, "psnic_container_network_receive_bytes_total", "veth8");
  ASSERT_NE(anonymous, nullptr);
  for (const char* name : {"container_id", "container_name", "pod", "namespace", "interface"})
    EXPECT_EQ(label_value(*anonymous, name), "") << name;

  std::string text = serialize(families);
  EXPECT_NE(text.find("psnic_container_network_receive_bytes_total{container_id=\"\","
                      "container_name=\"\",pod=\"\",namespace=\"\",interface=\"\","
                      "host_interface=\"veth8\"} 1\n"),
            std::string::npos)
      << text;
}

// --split protocol: per protocol, one psnic_traffic made of `base` scaled (tcp 1x, udp 2x, ...).
TrafficCounts split_counts(uint64_t base) {
  psnic_traffic_split split{};
  for (int p = 0; p < PSNIC_PROTOCOLS; ++p)
    split.protocol[p] = traffic(base * (p + 1), p + 1, 10 * base * (p + 1), 10 * (p + 1));
  return TrafficCounts(split);
}

TEST(ExporterCollectorSplit, FourSeriesPerFamilyWithAProtocolLabelAfterTheSix) {
  std::map<uint32_t, TrafficCounts> entries = {{7, split_counts(100)}};
  TrafficCollector collector(
      [&](uint32_t ifindex) -> std::optional<TrafficCounts> { return entries.at(ifindex); },
      snapshot_of({{7, labels("veth7")}}), nullptr);
  auto families = collector.Collect();
  ASSERT_EQ(families.size(), 4u);
  const std::vector<std::string> names = {"container_id", "container_name", "pod",     "namespace",
                                          "interface",    "host_interface", "protocol"};
  for (const auto& family : families) {
    ASSERT_EQ(family.metric.size(), 4u) << family.name;
    std::vector<std::string> protocols;
    for (const auto& metric : family.metric) {
      std::vector<std::string> got;
      for (const auto& label : metric.label) got.push_back(label.name);
      EXPECT_EQ(got, names) << family.name;
      protocols.push_back(label_value(metric, "protocol"));
      EXPECT_EQ(label_value(metric, "host_interface"), "veth7");
    }
    EXPECT_EQ(protocols, (std::vector<std::string>{"tcp", "udp", "icmp", "other"})) << family.name;
  }
  // Receive is the host's egress, per protocol as unsplit.
  const std::string text = serialize(families);
  const std::string labels7 =
      "container_id=\"" + std::string(64, 'a') +
      "\",container_name=\"web\",pod=\"web-7d4b9\",namespace=\"shop\",interface=\"eth0\","
      "host_interface=\"veth7\"";
  auto value = [&](const char* family, const char* protocol) {
    return value_in(text, std::string(family) + "{" + labels7 + ",protocol=\"" + protocol + "\"}");
  };
  EXPECT_EQ(value("psnic_container_network_receive_bytes_total", "tcp"), 1000);
  EXPECT_EQ(value("psnic_container_network_transmit_bytes_total", "udp"), 200);
  EXPECT_EQ(value("psnic_container_network_receive_packets_total", "icmp"), 30);
  EXPECT_EQ(value("psnic_container_network_transmit_packets_total", "other"), 4);
  // No unsplit series beside them.
  EXPECT_EQ(value_in(text, "psnic_container_network_receive_bytes_total{" + labels7 + "}"), -1);
  test::CommandResult check = promtool_check(text);
  EXPECT_EQ(check.status, 0) << check.out << check.err << "\non:\n" << text;
}

TEST(ExporterCollectorSplit, SplitCountsSumToTheirAll) {
  const TrafficCounts counts = split_counts(100);
  ASSERT_TRUE(counts.by_protocol);
  EXPECT_EQ(counts.all.ingress.bytes, 100u + 200 + 300 + 400);
  EXPECT_EQ(counts.all.ingress.packets, 1u + 2 + 3 + 4);
  EXPECT_EQ(counts.all.egress.bytes, 1000u + 2000 + 3000 + 4000);
  EXPECT_EQ(counts.all.egress.packets, 10u + 20 + 30 + 40);
  EXPECT_FALSE(TrafficCounts(traffic(1, 1, 1, 1)).by_protocol);
  EXPECT_EQ(protocol_name(PSNIC_PROTOCOL_TCP), "tcp");
  EXPECT_EQ(protocol_name(PSNIC_PROTOCOL_UDP), "udp");
  EXPECT_EQ(protocol_name(PSNIC_PROTOCOL_ICMP), "icmp");
  EXPECT_EQ(protocol_name(PSNIC_PROTOCOL_OTHER), "other");
}

TEST(ExporterCollectorSplit, RetiredSplitSeriesKeepTheirProtocolsAndDropsStayUnsplit) {
  auto retired = std::make_shared<RetiredSnapshot>();
  retired->publish(std::make_shared<RetiredTable>(
      RetiredTable{RetiredSeries{labels("veth9"), split_counts(5)}}));
  std::map<uint32_t, TrafficCounts> entries = {{7, split_counts(100)}};
  TrafficCollector collector(
      [&](uint32_t ifindex) -> std::optional<TrafficCounts> { return entries.at(ifindex); },
      snapshot_of({{7, labels("veth7")}}), nullptr, retired,
      [](const std::vector<uint32_t>&) {
        return HostLinkDropsTable{{7, HostLinkDrops{1, 2, 3, 4}}};
      });
  auto families = collector.Collect();
  ASSERT_EQ(families.size(), 8u);
  for (size_t f = 0; f < 4; ++f) {
    ASSERT_EQ(families[f].metric.size(), 8u) << families[f].name;  // retired first, then live
    EXPECT_EQ(label_value(families[f].metric[0], "host_interface"), "veth9");
    EXPECT_EQ(label_value(families[f].metric[3], "protocol"), "other");
    EXPECT_EQ(label_value(families[f].metric[4], "host_interface"), "veth7");
  }
  EXPECT_EQ(families[0].metric[1].counter.value, 100);  // veth9 receive bytes, udp: 10 * 5 * 2
  // The kernel's errors and drops are per interface: one series each, no protocol label.
  for (size_t f = 4; f < 8; ++f) {
    ASSERT_EQ(families[f].metric.size(), 1u) << families[f].name;
    EXPECT_EQ(label_value(families[f].metric[0], "protocol"), "<missing>");
  }
}

TEST(ExporterCollector, LabelValuesAreEscapedInTheTextFormat) {
  FakeMap map;
  map.entries[7] = traffic(1, 2, 3, 4);
  InterfaceLabels odd = labels("veth7");
  odd.container_name = "say \"hi\"\\ then\nbye";
  TrafficCollector collector(map.reader(), snapshot_of({{7, odd}}), nullptr);
  std::string text = serialize(collector.Collect());
  EXPECT_NE(text.find("container_name=\"say \\\"hi\\\"\\\\ then\\nbye\""), std::string::npos)
      << text;
  // One line per sample: the newline did not split one.
  EXPECT_EQ(text.find("bye\""), text.find("\\nbye\"") + 2) << text;
  test::CommandResult check = promtool_check(text);
  EXPECT_EQ(check.status, 0) << check.out << check.err << text;
}

// A container with NET_ADMIN names its eth0 with any bytes; Prometheus rejects an exposition
// holding one label value that is not UTF-8, and with it every series of the node.
TEST(ExporterCollector, LabelBytesThatAreNotUtf8AreReplacedAndTheRestStays) {
  FakeMap map;
  map.entries[7] = traffic(1, 2, 3, 4);
  map.entries[8] = traffic(5, 6, 7, 8);
  InterfaceLabels hostile = labels("veth7");
  hostile.interface = "e\xff\x1b[31mX";
  hostile.container_name = "\xc0\xafweb";
  TrafficCollector collector(map.reader(), snapshot_of({{7, hostile}, {8, labels("veth8")}}),
                             nullptr);
  const std::string text = serialize(collector.Collect());
  EXPECT_NE(text.find("interface=\"e\xEF\xBF\xBD\x1b[31mX\""), std::string::npos) << text;
  EXPECT_NE(text.find("container_name=\"\xEF\xBF\xBD\xEF\xBF\xBDweb\""), std::string::npos) << text;
  EXPECT_EQ(text.find('\xff'), std::string::npos);
  for (const char* family : kFamilies) {
    EXPECT_NE(sample(collector.Collect(), family, "veth8"), nullptr) << family;
    EXPECT_NE(sample(collector.Collect(), family, "veth7"), nullptr) << family;
  }
  test::CommandResult check = promtool_check(text);
  EXPECT_EQ(check.status, 0) << check.out << check.err << text;
}

// ---- OwnerInfoCollector ------------------------------------------------------------------------

TEST(ExporterOwnerInfo, OneGaugeOfOnePerContainerWithItsMetadataAsLabels) {
  auto owners = std::make_shared<OwnerSnapshot>();
  OwnerInfoCollector collector(owners);
  std::vector<prometheus::MetricFamily> families = collector.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].name, "psnic_container_info");
  EXPECT_EQ(families[0].type, prometheus::MetricType::Gauge);
  EXPECT_TRUE(families[0].metric.empty());

  OwnerFacts web;
  web.labels.container_id = std::string(64, 'a');
  web.labels.container_name = "web";
  web.labels.interface = "eth0";  // not an info label: the info is the container's
  web.image = "registry.local/shop/web:1.2";
  web.runtime = "podman";
  OwnerFacts odd;
  odd.labels.container_id = std::string(64, 'b');
  odd.labels.container_name = "say \"hi\"\\\n";
  odd.labels.pod = "cart-7f9c";
  odd.labels.namespace_name = "shop";
  odd.image = "bad\xff";
  odd.runtime = "cri-o";
  owners->publish(std::make_shared<const OwnerTable>(OwnerTable{web, odd}));
  const std::string text = serialize(collector.Collect());
  EXPECT_NE(text.find("\npsnic_container_info{container_id=\"" + web.labels.container_id +
                      "\",container_name=\"web\",image=\"registry.local/shop/web:1.2\","
                      "runtime=\"podman\",pod=\"\",namespace=\"\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("container_name=\"say \\\"hi\\\"\\\\\\n\",image=\"bad\xEF\xBF\xBD\","
                      "runtime=\"cri-o\",pod=\"cart-7f9c\",namespace=\"shop\"} 1"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("eth0"), std::string::npos);
  test::CommandResult check = promtool_check(text);
  EXPECT_EQ(check.status, 0) << check.out << check.err << text;
}

TEST(ExporterCollector, InterfacesAbsentFromTheMapAreLeftOut) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  auto self = std::make_shared<SelfMetrics>();
  TrafficCollector collector(map.reader(),
                             snapshot_of({{7, labels("veth7")}, {9, labels("veth9")}}), self);
  auto families = collector.Collect();
  for (const auto& family : families) {
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    EXPECT_EQ(label_value(family.metric[0], "host_interface"), "veth7");
  }
  // Absent is not an error: the agent inserts keys when it attaches.
  std::string own = serialize(self->registry()->Collect());
  EXPECT_EQ(value_in(own, "psnic_errors_total{op=\"read_map\"}"), 0) << own;
}

TEST(ExporterCollector, FailedReadsAreLeftOutAndCounted) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  map.entries[8] = traffic(1, 1, 1, 1);
  map.failing = {8};
  auto self = std::make_shared<SelfMetrics>();
  TrafficCollector collector(map.reader(),
                             snapshot_of({{7, labels("veth7")}, {8, labels("veth8")}}), self);
  std::vector<prometheus::MetricFamily> families;
  EXPECT_NO_THROW(families = collector.Collect());
  ASSERT_EQ(families.size(), 4u);
  EXPECT_EQ(families[0].metric.size(), 1u);
  EXPECT_EQ(sample(families, kFamilies[0], "veth8"), nullptr);
  collector.Collect();
  std::string own = serialize(self->registry()->Collect());
  EXPECT_EQ(value_in(own, "psnic_errors_total{op=\"read_map\"}"), 2) << own;
}

TEST(ExporterCollector, ReadsTheMapAndTheSnapshotAtEachScrape) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  auto snapshot = snapshot_of({{7, labels("veth7")}});
  TrafficCollector collector(map.reader(), snapshot, nullptr);
  EXPECT_EQ(map.reads, 0);  // nothing is read before a scrape
  EXPECT_EQ(sample(collector.Collect(), kFamilies[0], "veth7")->counter.value, 1);
  map.entries[7] = traffic(1, 1, 99, 1);
  map.entries[8] = traffic(1, 1, 5, 1);
  EXPECT_EQ(sample(collector.Collect(), kFamilies[0], "veth7")->counter.value, 99);
  snapshot->publish(
      std::make_shared<const LabelTable>(LabelTable{{7, labels("veth7")}, {8, labels("veth8")}}));
  auto families = collector.Collect();
  EXPECT_EQ(families[0].metric.size(), 2u);
  EXPECT_EQ(sample(families, kFamilies[0], "veth8")->counter.value, 5);
}

TEST(ExporterCollector, EmptySnapshotGivesEmptyFamilies) {
  FakeMap map;
  TrafficCollector collector(map.reader(), std::make_shared<LabelSnapshot>(), nullptr);
  auto families = collector.Collect();
  ASSERT_EQ(families.size(), 4u);
  for (const auto& family : families) EXPECT_TRUE(family.metric.empty());
  EXPECT_EQ(map.reads, 0);
}

// ---- Errors and drops from the host peer's statistics ------------------------------------------

const char* const kDropFamilies[] = {
    "psnic_container_network_receive_errors_total",
    "psnic_container_network_transmit_errors_total",
    "psnic_container_network_receive_packets_dropped_total",
    "psnic_container_network_transmit_packets_dropped_total",
};

// Stands in for the kernel's statistics: a table, or a failure.
struct FakeDrops {
  HostLinkDropsTable table;
  bool failing = false;
  mutable int reads = 0;
  mutable std::vector<uint32_t> asked;

  TrafficCollector::DropsReader reader() const {
    return [this](const std::vector<uint32_t>& ifindexes) {
      ++reads;
      asked = ifindexes;
      if (failing) throw Error("rtnetlink stats dump", ENOBUFS, "no buffer space");
      return table;
    };
  }
};

TEST(ExporterCollectorDrops, FourMoreCounterFamiliesAfterTheTrafficOnes) {
  FakeMap map;
  map.entries[7] = traffic(1, 2, 3, 4);
  FakeDrops drops;
  drops.table[7] = {};
  TrafficCollector collector(map.reader(), snapshot_of({{7, labels("veth7")}}), nullptr, nullptr,
                             drops.reader());
  auto families = collector.Collect();
  ASSERT_EQ(families.size(), 8u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(families[i].name, kFamilies[i]);
  for (size_t i = 0; i < 4; ++i) {
    const auto& family = families[4 + i];
    EXPECT_EQ(family.name, kDropFamilies[i]);
    EXPECT_EQ(family.type, prometheus::MetricType::Counter) << family.name;
    EXPECT_FALSE(family.help.empty()) << family.name;
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    EXPECT_EQ(family.metric[0].label, families[0].metric[0].label) << family.name;
  }
  EXPECT_EQ(drops.reads, 1);  // one read per scrape, for every interface
  EXPECT_EQ(drops.asked, std::vector<uint32_t>{7});
  test::CommandResult check = promtool_check(serialize(families));
  EXPECT_EQ(check.status, 0) << check.out << check.err;
}

TEST(ExporterCollectorDrops, ReceiveIsHostTxTransmitIsHostRx) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  FakeDrops drops;
  drops.table[7] = {/*rx_errors=*/1, /*tx_errors=*/2, /*rx_dropped=*/30, /*tx_dropped=*/40};
  TrafficCollector collector(map.reader(), snapshot_of({{7, labels("veth7")}}), nullptr, nullptr,
                             drops.reader());
  auto families = collector.Collect();
  auto value = [&](const char* family) { return counter_of(families, family, "veth7"); };
  EXPECT_EQ(value("psnic_container_network_receive_errors_total"), 2);
  EXPECT_EQ(value("psnic_container_network_transmit_errors_total"), 1);
  EXPECT_EQ(value("psnic_container_network_receive_packets_dropped_total"), 40);
  EXPECT_EQ(value("psnic_container_network_transmit_packets_dropped_total"), 30);
}

TEST(ExporterCollectorDrops, AFailedStatisticsReadServesTheTrafficAndIsCounted) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  FakeDrops drops;
  drops.table[7] = {1, 1, 1, 1};
  drops.failing = true;
  auto self = std::make_shared<SelfMetrics>();
  TrafficCollector collector(map.reader(), snapshot_of({{7, labels("veth7")}}), self, nullptr,
                             drops.reader());
  std::vector<prometheus::MetricFamily> families;
  EXPECT_NO_THROW(families = collector.Collect());
  ASSERT_EQ(families.size(), 8u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(families[i].metric.size(), 1u) << families[i].name;
  for (size_t i = 4; i < 8; ++i) EXPECT_TRUE(families[i].metric.empty()) << families[i].name;
  std::string own = serialize(self->registry()->Collect());
  EXPECT_EQ(value_in(own, "psnic_errors_total{op=\"read_stats\"}"), 1) << own;
  EXPECT_EQ(value_in(own, "psnic_errors_total{op=\"read_map\"}"), 0) << own;
  // The next scrape asks again, and serves them once the kernel answers.
  drops.failing = false;
  families = collector.Collect();
  EXPECT_EQ(families[6].metric.size(), 1u);
}

TEST(ExporterCollectorDrops, FollowTheTrafficSeriesAndAreNeverMadeUp) {
  FakeMap map;
  map.entries[7] = traffic(1, 1, 1, 1);
  map.entries[8] = traffic(1, 1, 1, 1);  // a link the statistics read did not see
  FakeDrops drops;
  drops.table[7] = {1, 1, 1, 1};
  drops.table[9] = {1, 1, 1, 1};   // labelled, not in the map: no traffic series, no drops
  drops.table[10] = {1, 1, 1, 1};  // not counted by psnic at all
  RetiredSeries gone{labels("veth5"), traffic(1, 1, 1, 1)};
  auto retired = std::make_shared<RetiredSnapshot>();
  retired->publish(std::make_shared<const RetiredTable>(RetiredTable{gone}));
  TrafficCollector collector(
      map.reader(), snapshot_of({{7, labels("veth7")}, {8, labels("veth8")}, {9, labels("veth9")}}),
      nullptr, retired, drops.reader());
  auto families = collector.Collect();
  EXPECT_EQ(families[0].metric.size(), 3u);  // veth5 (retired), veth7, veth8
  for (size_t i = 4; i < 8; ++i) {
    ASSERT_EQ(families[i].metric.size(), 1u) << families[i].name;
    EXPECT_EQ(label_value(families[i].metric[0], "host_interface"), "veth7");
  }
}

TEST(ExporterCollectorDrops, NotReadWhenNothingIsCounted) {
  FakeMap map;
  FakeDrops drops;
  TrafficCollector collector(map.reader(), std::make_shared<LabelSnapshot>(), nullptr, nullptr,
                             drops.reader());
  auto families = collector.Collect();
  EXPECT_EQ(families.size(), 8u);
  EXPECT_EQ(drops.reads, 0);
}

// The agent republishes the retired table while scrape threads read it: each scrape must hold
// the table it took until it is done with it, and so list one whole generation. (A range-for over
// `*snapshot->current()` dropped the only reference before the loop ran: a use after free, caught
// by the sanitizer build, and mixed generations otherwise.)
TEST(ExporterCollector, ScrapesReadOneWholeRetiredTableWhileTheAgentRepublishes) {
  FakeMap map;
  auto retired = std::make_shared<RetiredSnapshot>();
  auto table_of = [](int generation) {
    auto table = std::make_shared<RetiredTable>();
    for (int i = 0; i < 64; ++i) {
      RetiredSeries series{labels("veth" + std::to_string(i)), traffic(1, 1, 1, 1)};
      series.labels.container_name = "generation" + std::to_string(generation);
      table->push_back(std::move(series));
    }
    return table;
  };
  retired->publish(table_of(0));
  TrafficCollector collector(map.reader(), std::make_shared<LabelSnapshot>(), nullptr, retired);
  std::atomic<bool> done{false};
  std::thread agent([&] {
    for (int generation = 1; !done.load(); ++generation) retired->publish(table_of(generation));
  });
  int mixed = 0;
  for (int scrape = 0; scrape < 2000; ++scrape) {
    const auto families = collector.Collect();
    const auto& samples = families[0].metric;
    ASSERT_EQ(samples.size(), 64u);
    const std::string generation = label_value(samples[0], "container_name");
    for (const auto& s : samples) mixed += label_value(s, "container_name") != generation;
  }
  done = true;
  agent.join();
  EXPECT_EQ(mixed, 0);
}

TEST(ExporterLabelSnapshot, PublishReplacesWholeAndNullMeansEmpty) {
  LabelSnapshot snapshot;
  ASSERT_NE(snapshot.current(), nullptr);
  EXPECT_TRUE(snapshot.current()->empty());
  auto first = std::make_shared<const LabelTable>(LabelTable{{7, labels("veth7")}});
  snapshot.publish(first);
  auto held = snapshot.current();
  EXPECT_EQ(held, first);
  snapshot.publish(nullptr);
  ASSERT_NE(snapshot.current(), nullptr);
  EXPECT_TRUE(snapshot.current()->empty());
  EXPECT_EQ(held->at(7).host_interface, "veth7");  // a reader keeps the table it took
}

TEST(ExporterLabelSnapshot, ReadersSeeWholeTablesWhileTheAgentPublishes) {
  LabelSnapshot snapshot;
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!stop) {
      auto table = snapshot.current();
      // Every published table has n entries, all labelled with n.
      for (const auto& [ifindex, entry] : *table)
        if (entry.pod != std::to_string(table->size())) ++torn;
    }
  });
  for (int n = 1; n <= 2000; ++n) {
    auto table = std::make_shared<LabelTable>();
    for (int i = 0; i < n % 50; ++i) (*table)[i].pod = std::to_string(n % 50);
    snapshot.publish(std::move(table));
  }
  stop = true;
  reader.join();
  EXPECT_EQ(torn, 0);
}

// ---- SelfMetrics -------------------------------------------------------------------------------

TEST(ExporterSelfMetrics, BuildInfoAttachedAndErrors) {
  SelfMetrics self;
  self.set_attached("tcx", 12);
  self.set_received_at_peer(9);
  self.count_error(ErrorOp::kAttach);
  self.count_error(ErrorOp::kAttach);
  self.count_error(ErrorOp::kDescribe);
  std::string text = serialize(self.registry()->Collect());
  EXPECT_EQ(value_in(text, "psnic_build_info{version=\"" PSNIC_VERSION_STRING "\"}"), 1) << text;
  EXPECT_EQ(value_in(text, "psnic_attached_interfaces{mode=\"tcx\"}"), 12) << text;
  EXPECT_EQ(value_in(text, "psnic_attached_interfaces{mode=\"tc\"}"), 0) << text;
  EXPECT_EQ(value_in(text, "psnic_receive_at_peer_interfaces"), 9) << text;
  EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"read_map\"}"), 0) << text;
  EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"attach\"}"), 2) << text;
  EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"describe\"}"), 1) << text;
  // Every op is exported from the start, at 0, under its name.
  for (ErrorOp op : kErrorOps) {
    if (op == ErrorOp::kAttach || op == ErrorOp::kDescribe) continue;
    EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"" + std::string(op_name(op)) + "\"}"), 0)
        << text;
  }
  EXPECT_EQ(op_name(ErrorOp::kReadMap), "read_map");
  EXPECT_EQ(op_name(ErrorOp::kReadStats), "read_stats");
  EXPECT_EQ(op_name(ErrorOp::kCollect), "collect");
  EXPECT_NE(text.find("# TYPE psnic_build_info gauge"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE psnic_attached_interfaces gauge"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE psnic_errors_total counter"), std::string::npos) << text;
  test::CommandResult check = promtool_check(text);
  EXPECT_EQ(check.status, 0) << check.out << check.err << text;
}

// ---- Listen addresses --------------------------------------------------------------------------

TEST(ExporterListen, ParsesIpv4Ipv6AndAllAddresses) {
  ListenAddress a = parse_listen("127.0.0.1:9867");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9867);
  EXPECT_FALSE(a.ipv6);
  a = parse_listen(kDefaultListen);
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 9867);
  a = parse_listen(":80");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 80);
  a = parse_listen("[::1]:65535");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 65535);
  EXPECT_TRUE(a.ipv6);
  a = parse_listen("[fe80::1:2]:1");
  EXPECT_EQ(a.host, "fe80::1:2");
  a = parse_listen("10.1.2.3:0");  // any free port
  EXPECT_EQ(a.port, 0);
}

TEST(ExporterListen, RejectsMalformedAddressesWithOneLine) {
  for (const char* text : {"999.1.1.1:80",
                           "localhost",
                           "localhost:80",
                           ":0x",
                           "1.2.3.4:70000",
                           "1.2.3.4:",
                           "",
                           ":",
                           "1.2.3:80",
                           "1.2.3.4:-1",
                           "1.2.3.4:+80",
                           "1.2.3.4: 80",
                           "::1:80",
                           "[::1]",
                           "[::1]80",
                           "[::1:80",
                           "[1.2.3.4]:80",
                           "[]:80",
                           "1.2.3.4:99999999999999999999",
                           "01.2.3.4:80"}) {
    try {
      parse_listen(text);
      ADD_FAILURE() << "accepted \"" << text << "\"";
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_EQ(message.rfind("listen " + std::string(text) + ": ", 0), 0u) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      EXPECT_EQ(e.errnum(), EINVAL);
    }
  }
}

// ---- MetricsServer -----------------------------------------------------------------------------

constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

// The clock /healthz reads, moved by the tests.
struct TestClock {
  const LoopHeartbeat::Clock::time_point start = LoopHeartbeat::Clock::now();
  std::atomic<int64_t> elapsed_ns{0};

  LoopHeartbeat::Clock::time_point now() const {
    return start + std::chrono::nanoseconds(elapsed_ns.load());
  }
  void advance(std::chrono::nanoseconds by) { elapsed_ns += by.count(); }
};

// What the server logged, from its thread.
struct TestLog {
  std::mutex mutex;
  std::vector<std::string> lines;

  std::vector<std::string> taken() {
    std::lock_guard lock(mutex);
    return lines;
  }
};

// A server on an ephemeral port over one fake interface and the self metrics, with a heartbeat
// beaten at the test clock's start and a 30 s health timeout.
struct TestServer {
  FakeMap map;
  std::shared_ptr<SelfMetrics> self = std::make_shared<SelfMetrics>();
  std::shared_ptr<TestClock> clock = std::make_shared<TestClock>();
  std::shared_ptr<LoopHeartbeat> heartbeat = std::make_shared<LoopHeartbeat>(clock->start);
  std::shared_ptr<TestLog> log = std::make_shared<TestLog>();
  std::unique_ptr<MetricsServer> server;  // last: stops before what its thread reads goes
  int port = 0;

  explicit TestServer(const std::string& listen = "127.0.0.1:0", std::string mode = "tcx") {
    map.entries[7] = traffic(1000, 10, 5000, 50);
    InterfaceLabels odd = labels("veth7");
    odd.container_name = "quote\" back\\ new\nline";
    auto collector =
        std::make_shared<TrafficCollector>(map.reader(), snapshot_of({{7, odd}}), self);
    EndpointOptions options;
    options.attach_mode = std::move(mode);
    options.self = self;
    options.heartbeat = heartbeat;
    options.health_timeout = std::chrono::seconds(30);
    options.now = [clock = clock] { return clock->now(); };
    options.log = [log = log](const std::string& line) {
      std::lock_guard lock(log->mutex);
      log->lines.push_back(line);
    };
    server = std::make_unique<MetricsServer>(
        listen, std::vector<std::shared_ptr<prometheus::Collectable>>{collector, self->registry()},
        std::move(options));
    std::vector<int> ports = server->ports();
    EXPECT_EQ(ports.size(), 1u);
    if (!ports.empty()) port = ports[0];
  }
};

loopback::HttpResponse request(int port, const std::string& method, const std::string& path,
                               const std::string& address = "127.0.0.1") {
  loopback::Request r;
  r.method = method;
  r.path = path;
  r.address = address;
  return loopback::send_request(port, r);
}

// zlib's inflate of a whole gzip member; throws on anything else, trailing bytes included.
std::string gunzip(const std::string& data) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) throw Error("gunzip", 0, "inflateInit2 failed");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[65536];
  int status;
  do {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
  } while (status == Z_OK);
  const bool whole = status == Z_STREAM_END && stream.avail_in == 0;
  inflateEnd(&stream);
  if (!whole)
    throw Error("gunzip", 0, "not one whole gzip member (status " + std::to_string(status) + ")");
  return out;
}

TEST(ExporterMetricsServer, ServesMetricsThatPassPromtool) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse response = loopback::get(t.port, "/metrics");
  EXPECT_EQ(response.status, 200) << response.headers;
  EXPECT_EQ(response.header("Content-Type"), kExpositionType) << response.headers;
  EXPECT_EQ(response.header("Content-Length"), std::to_string(response.body.size()));
  for (const char* family : kFamilies)
    EXPECT_NE(response.body.find(std::string("# TYPE ") + family + " counter"), std::string::npos)
        << family;
  EXPECT_NE(response.body.find("psnic_build_info{"), std::string::npos);
  EXPECT_NE(response.body.find("psnic_attached_interfaces{mode=\"tcx\"} 0"), std::string::npos);
  EXPECT_NE(response.body.find("psnic_errors_total{op=\"read_map\"} 0"), std::string::npos);
  EXPECT_NE(response.body.find("host_interface=\"veth7\"} 5000\n"), std::string::npos)
      << response.body;
  test::CommandResult check = promtool_check(response.body);
  EXPECT_EQ(check.status, 0) << "promtool (Debian package prometheus) said:\n"
                             << check.out << check.err << "\non:\n"
                             << response.body;
  EXPECT_EQ(check.out + check.err, "");
  // A query string changes nothing.
  EXPECT_EQ(loopback::get(t.port, "/metrics?debug=1").body, response.body);
}

TEST(ExporterMetricsServer, HeadMetricsHasTheHeadersOfGetAndNoBody) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse got = loopback::get(t.port, "/metrics");
  loopback::HttpResponse head = request(t.port, "HEAD", "/metrics");
  EXPECT_EQ(head.status, 200) << head.headers;
  EXPECT_EQ(head.body, "");
  ASSERT_GT(got.body.size(), 0u);
  EXPECT_EQ(head.header("Content-Length"), std::to_string(got.body.size())) << head.headers;
  EXPECT_EQ(head.header("Content-Type"), kExpositionType);
}

TEST(ExporterMetricsServer, GzipsTheSameExpositionWhenTheClientAcceptsIt) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse plain = loopback::get(t.port, "/metrics");
  // What Prometheus sends.
  loopback::HttpResponse zipped = loopback::get(t.port, "/metrics", 3, "Accept-Encoding: gzip\r\n");
  EXPECT_EQ(zipped.status, 200);
  EXPECT_EQ(plain.header("Content-Encoding"), "");
  EXPECT_EQ(zipped.header("Content-Encoding"), "gzip") << zipped.headers;
  EXPECT_EQ(zipped.header("Content-Type"), kExpositionType);
  EXPECT_EQ(zipped.header("Content-Length"), std::to_string(zipped.body.size()));
  EXPECT_EQ(zipped.header("Vary"), "Accept-Encoding");
  EXPECT_NE(zipped.body, plain.body);
  EXPECT_EQ(gunzip(zipped.body), plain.body);

  const std::pair<const char*, bool> cases[] = {
      {"Accept-Encoding: gzip, deflate, br\r\n", true},  // curl --compressed, browsers
      {"Accept-Encoding: br;q=1.0, GZIP ; q=0.5\r\n", true},
      {"Accept-Encoding: x-gzip\r\n", true},
      {"Accept-Encoding: gzip;q=0\r\n", false},  // "not acceptable"
      {"Accept-Encoding: gzip;q=0.000, identity\r\n", false},
      {"Accept-Encoding: identity\r\n", false},
      {"Accept-Encoding: gzipped\r\n", false},
      {"", false},
  };
  for (const auto& [header, gzipped] : cases) {
    loopback::HttpResponse response = loopback::get(t.port, "/metrics", 3, header);
    EXPECT_EQ(response.header("Content-Encoding") == "gzip", gzipped) << header;
    EXPECT_EQ(gzipped ? gunzip(response.body) : response.body, plain.body) << header;
  }
}

TEST(ExporterMetricsServer, LandingPageShowsVersionModeAndCountedInterfaces) {
  TestServer t("127.0.0.1:0", "tc");
  ASSERT_GT(t.port, 0);
  t.self->set_attached("tc", 3);
  loopback::HttpResponse page = loopback::get(t.port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<td id=\"version\">" PSNIC_VERSION_STRING "</td>"), std::string::npos)
      << page.body;
  EXPECT_NE(page.body.find("<td id=\"mode\">tc</td>"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("<td id=\"interfaces\">3</td>"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("<a href=\"metrics\">"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("<a href=\"healthz\">"), std::string::npos) << page.body;

  // Read at each request, every mode counted.
  t.self->set_attached("tc", 2);
  t.self->set_attached("tcx", 5);
  page = loopback::get(t.port, "/");
  EXPECT_NE(page.body.find("<td id=\"interfaces\">7</td>"), std::string::npos) << page.body;
  EXPECT_EQ(request(t.port, "HEAD", "/").header("Content-Length"),
            std::to_string(page.body.size()));
}

TEST(ExporterMetricsServer, LandingPageEscapesWhatItShows) {
  TestServer t("127.0.0.1:0", "<script>alert('x')</script>&\"");
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse page = loopback::get(t.port, "/");
  EXPECT_NE(page.body.find("<td id=\"mode\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
                           "&quot;</td>"),
            std::string::npos)
      << page.body;
  EXPECT_EQ(page.body.find("<script>"), std::string::npos) << page.body;
}

TEST(ExporterMetricsServer, HealthzIsOkWhileTheLoopTurnsAnd503OnceItStalls) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse health = loopback::get(t.port, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_EQ(health.header("Content-Type"), "text/plain; charset=utf-8");

  t.clock->advance(std::chrono::seconds(30));  // at the bound: still alive
  EXPECT_EQ(loopback::get(t.port, "/healthz").status, 200);

  t.clock->advance(std::chrono::milliseconds(1500));
  health = loopback::get(t.port, "/healthz");
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.body, "the agent's loop has not turned for 31.5 s (limit 30.0 s)\n");
  loopback::HttpResponse head = request(t.port, "HEAD", "/healthz");
  EXPECT_EQ(head.status, 503);
  EXPECT_EQ(head.body, "");
  // /metrics is served all the same: a stalled loop's counters are still the kernel's.
  EXPECT_EQ(loopback::get(t.port, "/metrics").status, 200);

  t.heartbeat->beat(t.clock->now());  // the loop turned again
  EXPECT_EQ(loopback::get(t.port, "/healthz").status, 200);
}

TEST(ExporterHealth, AnIdleLoopKeepsBeating) {
  // An hour-old heartbeat, and a loop with nothing to do until its timer fires.
  LoopHeartbeat heartbeat(LoopHeartbeat::Clock::now() - std::chrono::hours(1));
  EventLoop loop(&heartbeat);
  const auto start = LoopHeartbeat::Clock::now();
  // Half a second after the idle turn, so that the turn comes first on a busy machine.
  loop.arm(EventLoop::kIdleTurn + std::chrono::milliseconds(500), /*repeat=*/false);
  EXPECT_EQ(loop.wait(), std::vector<uint64_t>{EventLoop::kTimer});
  // It beat on entry, and again when the idle turn ended without events.
  EXPECT_GE(heartbeat.last(), start + EventLoop::kIdleTurn);
  EXPECT_LE(heartbeat.last(), LoopHeartbeat::Clock::now());
}

// SIGHUP is a reload, not a stop: the loop hands it over as kReload and the stop signal stays
// unnamed. Sent to this thread only, where it is blocked (the main blocks it in every thread).
TEST(EventLoop, HangupIsAReload) {
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  sigset_t before;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &hangup, &before), 0);
  {
    EventLoop loop;
    ASSERT_EQ(pthread_kill(pthread_self(), SIGHUP), 0);
    EXPECT_EQ(loop.wait(), std::vector<uint64_t>{EventLoop::kReload});
    EXPECT_EQ(loop.stop_signal(), "");
  }
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

TEST(ExporterMetricsServer, UnknownPathsAre404AndOtherMethods405) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  for (const char* path : {"/metrics/", "/metricsx", "//metrics", "/healthz/x", "/etc/passwd",
                           "/../../etc/passwd", "/index.html", "/favicon.ico"}) {
    loopback::HttpResponse response = loopback::get(t.port, path);
    EXPECT_EQ(response.status, 404) << path;
    EXPECT_EQ(request(t.port, "POST", path).status, 404) << path;
  }
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    for (const char* path : {"/metrics", "/", "/healthz"}) {
      loopback::HttpResponse response = request(t.port, method, path);
      EXPECT_EQ(response.status, 405) << method << " " << path;
      EXPECT_EQ(response.header("Allow"), "GET, HEAD") << method << " " << path;
    }
  }
}

TEST(ExporterMetricsServer, ServesIpv6Loopback) {
  TestServer t("[::1]:0");
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse response = request(t.port, "GET", "/metrics", "::1");
  EXPECT_EQ(response.status, 200);
  EXPECT_NE(response.body.find("host_interface=\"veth7\"} 5000\n"), std::string::npos);
  EXPECT_EQ(request(t.port, "GET", "/healthz", "::1").body, "ok\n");
}

TEST(ExporterMetricsServer, DualStackServesIpv4AndIpv6Clients) {
  TestServer t("[::]:0");
  ASSERT_GT(t.port, 0);
  EXPECT_EQ(request(t.port, "GET", "/metrics", "127.0.0.1").status, 200);
  EXPECT_EQ(request(t.port, "GET", "/metrics", "::1").status, 200);
}

TEST(ExporterMetricsServer, TwoHundredHeldConnectionsDoNotStarveAScrape) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  // 50 from each of four client addresses: one address may hold at most kConnectionsPerClient.
  static_assert(50 <= kConnectionsPerClient);
  loopback::HeldConnections held;
  for (int client = 2; client <= 5; ++client)
    for (int i = 0; i < 50; ++i) held.hold(t.port, "127.0.0." + std::to_string(client));
  ASSERT_EQ(held.fds.size(), 200u);

  loopback::HttpResponse response;
  ASSERT_NO_THROW(response = loopback::get(t.port, "/metrics", /*timeout_seconds=*/3));
  EXPECT_EQ(response.status, 200);
  EXPECT_NE(response.body.find("host_interface=\"veth7\"} 5000\n"), std::string::npos);
  // ...while the server holds every one of them: none was dropped to make room.
  EXPECT_EQ(held.open(), 200u);
}

TEST(ExporterMetricsServer, OneClientHoldsAtMostItsShareAndOthersAreServed) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  loopback::HeldConnections held;
  std::string printed = captured_output([&] {
    for (unsigned i = 0; i < kConnectionsPerClient; ++i) held.hold(t.port, "127.0.0.2");
    loopback::HeldConnections over;
    int fd = over.hold(t.port, "127.0.0.2");
    // Closed as soon as accepted: end of stream, or a reset for the unread request bytes.
    char byte;
    ssize_t n = recv(fd, &byte, 1, 0);
    EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n << " " << strerror(errno);

    EXPECT_EQ(loopback::get(t.port, "/metrics").status, 200);
  });
  EXPECT_EQ(held.open(), kConnectionsPerClient);
  // libmicrohttpd said so, through the log hook only.
  EXPECT_EQ(printed, "");
  std::vector<std::string> lines = t.log->taken();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "http: server reached connection limit. Closing inbound connection");
}

// What a client that sends `bytes` (as much of them as the server takes) sees within 3 s: the
// status of each response it reads, and whether the server closed the connection.
struct RawExchange {
  std::vector<int> statuses;
  bool closed = false;
  std::string raw;  // what was read, for the failure message
};
RawExchange raw_exchange(int port, const std::string& bytes) {
  RawExchange seen;
  int fd = loopback::connect_to(port, 3);
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // refused the rest: closed, or not reading (timed out)
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[65536];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
      seen.closed = true;
      break;
    }
    if (n < 0) break;  // 3 s without a byte: held open
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  seen.raw = raw.substr(0, 2000);
  for (size_t at = raw.find("HTTP/1."); at != std::string::npos; at = raw.find("HTTP/1.", at + 1))
    if (at + 12 <= raw.size()) seen.statuses.push_back(std::atoi(raw.c_str() + at + 9));
  return seen;
}

// Malformed and oversized requests are answered with an error or closed, never served, and
// never smuggle a second request; the server serves on after each.
TEST(ExporterMetricsServer, MalformedAndOversizedRequestsAreRefusedAndServingGoesOn) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  std::string random(64 * 1024, '\0');
  uint32_t state = 2463534242u;
  for (char& c : random) {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;  // xorshift32
    c = static_cast<char>(state);
  }
  const std::string huge_header =
      "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
  const std::string huge_url =
      "GET /" + std::string(100 * 1024, 'u') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  // Both lengths, and a request hidden in what one of them calls the body.
  const std::string smuggled =
      "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string large_body =
      "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(64 << 20) +
      "\r\n\r\n" + std::string(4 << 20, 'b');
  const std::string bad_length = "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n";
  const std::string not_http = "GET /metrics SPDY/3\r\n\r\n";
  const std::pair<const char*, const std::string*> cases[] = {
      {"64 KiB of random bytes", &random}, {"a 1 MiB header", &huge_header},
      {"a 100 KiB URL", &huge_url},        {"Content-Length and chunked", &smuggled},
      {"a 64 MiB body", &large_body},      {"a negative Content-Length", &bad_length},
      {"not HTTP/1.x", &not_http},
  };
  for (const auto& [what, bytes] : cases) {
    SCOPED_TRACE(what);
    RawExchange seen = raw_exchange(t.port, *bytes);
    // Refused: an error status, or the connection closed. Never a 2xx: nothing after the refused
    // request was taken for a request of its own. (libmicrohttpd 0.9.75 writes the status line
    // and headers of its 400 for a bad Content-Length twice; an error either way.)
    EXPECT_TRUE(seen.closed || !seen.statuses.empty());
    for (int status : seen.statuses) EXPECT_GE(status, 400) << seen.raw;
    loopback::HttpResponse response = loopback::get(t.port, "/metrics");
    EXPECT_EQ(response.status, 200);
    EXPECT_NE(response.body.find("host_interface=\"veth7\"} 5000\n"), std::string::npos);
  }
}

TEST(ExporterMetricsServer, PortInUseIsOneSilentLine) {
  for (const std::string host : {"127.0.0.1", "[::1]"}) {
    TestServer t(host + ":0");
    ASSERT_GT(t.port, 0);
    const std::string listen = host + ":" + std::to_string(t.port);
    std::string message;
    int errnum = 0;
    std::string printed = captured_output([&] {
      try {
        MetricsServer second(listen, {});
        ADD_FAILURE() << "a second server bound " << listen;
      } catch (const Error& e) {
        message = e.what();
        errnum = e.errnum();
      }
    });
    EXPECT_EQ(message, "listen " + listen + ": address already in use");
    EXPECT_EQ(errnum, EADDRINUSE);
    EXPECT_EQ(printed, "");
    // The first one still serves.
    EXPECT_EQ(request(t.port, "GET", "/metrics", host == "[::1]" ? "::1" : host).status, 200);
  }
}

TEST(ExporterMetricsServer, BadAddressesAreOneSilentLine) {
  for (const char* listen : {"999.1.1.1:80", "localhost", ":0x", "1.2.3.4:70000", "[::1:0",
                             "192.0.2.1:0" /* well formed, but not this host's */,
                             "[2001:db8::1]:0" /* the same in IPv6 */}) {
    std::string message;
    std::string printed = captured_output([&] {
      try {
        MetricsServer server(listen, {});
        ADD_FAILURE() << "listening on " << listen;
      } catch (const Error& e) {
        message = e.what();
      }
    });
    EXPECT_EQ(message.rfind("listen " + std::string(listen) + ": ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(printed, "") << listen;
  }
}

TEST(ExporterMetricsServer, NotLocalAddressNamesTheCause) {
  try {
    MetricsServer server("192.0.2.1:0", {});
    ADD_FAILURE() << "listening on 192.0.2.1";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "listen 192.0.2.1:0: cannot assign requested address");
  }
}

}  // namespace
}  // namespace psnic
