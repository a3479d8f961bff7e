#include <fcntl.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "exporter/loopback_client.h"
#include "exporter/metrics.h"
#include "resolver/error.h"
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
  t.ingress.segments = in_packets;
  t.egress.bytes = out_bytes;
  t.egress.packets = out_packets;
  t.egress.segments = out_packets;
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
  auto value = [&](const char* family) {
    const prometheus::ClientMetric* metric = sample(families, family, "veth7");
    return metric ? metric->counter.value : -1;
  };
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
  SelfMetrics self({"read_map", "attach"});
  self.set_attached("tcx", 12);
  self.count_error("attach");
  self.count_error("attach");
  self.count_error("owner");
  std::string text = serialize(self.registry()->Collect());
  EXPECT_EQ(value_in(text, "psnic_build_info{version=\"" PSNIC_VERSION_STRING "\"}"), 1) << text;
  EXPECT_EQ(value_in(text, "psnic_attached_interfaces{mode=\"tcx\"}"), 12) << text;
  EXPECT_EQ(value_in(text, "psnic_attached_interfaces{mode=\"tc\"}"), 0) << text;
  EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"read_map\"}"), 0) << text;
  EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"attach\"}"), 2) << text;
  EXPECT_EQ(value_in(text, "psnic_errors_total{op=\"owner\"}"), 1) << text;
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

// A server on an ephemeral loopback port over one fake interface and the self metrics.
struct TestServer {
  FakeMap map;
  std::shared_ptr<SelfMetrics> self = std::make_shared<SelfMetrics>();
  std::unique_ptr<MetricsServer> server;
  int port = 0;

  TestServer() {
    map.entries[7] = traffic(1000, 10, 5000, 50);
    InterfaceLabels odd = labels("veth7");
    odd.container_name = "quote\" back\\ new\nline";
    auto collector =
        std::make_shared<TrafficCollector>(map.reader(), snapshot_of({{7, odd}}), self);
    server = std::make_unique<MetricsServer>(
        "127.0.0.1:0",
        std::vector<std::shared_ptr<prometheus::Collectable>>{collector, self->registry()});
    std::vector<int> ports = server->ports();
    EXPECT_EQ(ports.size(), 1u);
    if (!ports.empty()) port = ports[0];
  }
};

TEST(ExporterMetricsServer, ServesMetricsThatPassPromtool) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  loopback::HttpResponse response = loopback::get(t.port, "/metrics");
  EXPECT_EQ(response.status, 200) << response.headers;
  EXPECT_NE(response.headers.find("Content-Type: text/plain"), std::string::npos)
      << response.headers;
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
}

TEST(ExporterMetricsServer, ServesNothingElse) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  for (const char* path : {"/", "/etc/passwd", "/../../etc/passwd", "/index.html"})
    EXPECT_EQ(loopback::get(t.port, path).status, 404) << path;
}

TEST(ExporterMetricsServer, IdleClientsDoNotBlockAScrape) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  // Two clients connect and never send a request: each holds a worker until the 5 s request
  // timeout.
  int idle1 = loopback::connect_to(t.port, 10);
  int idle2 = loopback::connect_to(t.port, 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto start = steady_clock::now();
  loopback::HttpResponse response;
  EXPECT_NO_THROW(response = loopback::get(t.port, "/metrics", /*timeout_seconds=*/3));
  EXPECT_EQ(response.status, 200);
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(3));
  close(idle1);
  close(idle2);
}

TEST(ExporterMetricsServer, PortInUseIsOneSilentLine) {
  TestServer t;
  ASSERT_GT(t.port, 0);
  const std::string listen = "127.0.0.1:" + std::to_string(t.port);
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
  EXPECT_EQ(loopback::get(t.port, "/metrics").status, 200);
}

TEST(ExporterMetricsServer, BadAddressesAreOneSilentLine) {
  for (const char* listen : {"999.1.1.1:80", "localhost", ":0x", "1.2.3.4:70000",
                             "192.0.2.1:0" /* well formed, but not this host's */}) {
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

TEST(ExporterMetricsServer, Ipv6ServesOrSaysWhyNot) {
  // Debian 12's civetweb is built without IPv6; another build serves it.
  std::string printed = captured_output([&] {
    try {
      MetricsServer server("[::1]:0", {});
      ASSERT_EQ(server.ports().size(), 1u);
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_EQ(message.rfind("listen [::1]:0: ", 0), 0u) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  });
  EXPECT_EQ(printed, "");
}

}  // namespace
}  // namespace psnic
