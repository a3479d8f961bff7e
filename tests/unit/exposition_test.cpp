// write_exposition against prometheus-cpp's TextSerializer, which /metrics used before: the same
// text for what psnic exports (container families, its own counters, gauges and histograms),
// and the text format's own rules where the two part (escaped newlines, NaN), checked by
// promtool.
#include "exporter/exposition.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "exporter/metrics.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

prometheus::MetricFamily family(std::string name, prometheus::MetricType type,
                                std::string help = "what it counts") {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

prometheus::ClientMetric counter(double value, prometheus::ClientMetric::Label label = {"a", "b"}) {
  prometheus::ClientMetric m;
  m.label = {std::move(label), {"host_interface", "veth1"}};
  m.counter.value = value;
  return m;
}

// psnic's own metrics and a scrape of 1000 containers' traffic, errors and drops, as the
// endpoint gathers them.
std::vector<prometheus::MetricFamily> what_psnic_exports() {
  SelfMetrics self;
  self.set_attached("tcx", 1000);
  self.count_error(ErrorOp::kReadStats);
  for (double seconds : {0.0004, 0.003, 0.02, 0.7, 3.0}) self.observe_attach_latency(seconds);
  self.observe_reconcile(0.0123);
  auto labels = std::make_shared<LabelSnapshot>();
  auto table = std::make_shared<LabelTable>();
  HostLinkDropsTable drops;
  for (uint32_t i = 1; i <= 1000; ++i) {
    InterfaceLabels& l = (*table)[i];
    l.container_id = std::string(64, static_cast<char>('a' + i % 6));
    l.container_name = "k8s_app-" + std::to_string(i);
    l.pod = "pod \"quoted\" \\ back";
    l.namespace_name = "shop";
    l.interface = "eth0";
    l.host_interface = "veth" + std::to_string(i);
    drops[i] = {i, 2 * i, 3 * i, uint64_t{1} << 40};
  }
  labels->publish(table);
  TrafficCollector collector(
      [](uint32_t ifindex) {
        psnic_traffic t{};
        t.ingress = {uint64_t{ifindex} * 1500 + (uint64_t{1} << 50), ifindex, 0};
        t.egress = {uint64_t{ifindex} * 9000, 6 * uint64_t{ifindex}, 0};
        return std::optional<psnic_traffic>(t);
      },
      labels, nullptr, nullptr, [&](const std::vector<uint32_t>&) { return drops; });
  std::vector<prometheus::MetricFamily> families = collector.Collect();
  for (auto& f : self.registry()->Collect()) families.push_back(std::move(f));
  return families;
}

TEST(Exposition, WritesWhatPrometheusCppWroteForWhatPsnicExports) {
  const std::vector<prometheus::MetricFamily> families = what_psnic_exports();
  const std::string ours = write_exposition(families);
  EXPECT_EQ(ours, prometheus::TextSerializer().Serialize(families));
  // 2^50 + 1500, past a double's 15 significant digits, written exactly.
  EXPECT_NE(ours.find("} " + std::to_string((uint64_t{1} << 50) + 1500) + "\n"), std::string::npos);
  EXPECT_NE(ours.find("psnic_attach_latency_seconds_bucket{le=\"0.0025\"} 1\n"), std::string::npos);
  EXPECT_NE(ours.find("psnic_attach_latency_seconds_bucket{le=\"+Inf\"} 5\n"), std::string::npos);
}

TEST(Exposition, ValuesOfEveryKind) {
  auto f = family("psnictest_values", prometheus::MetricType::Gauge);
  for (double v :
       {0.0, -0.0, 1.0, -3.0, 0.1, 1.0 / 3, 2.5e-9, 1e21, 0x1p63, 9007199254740993.0,
        std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    prometheus::ClientMetric m;
    m.gauge.value = v;
    f.metric.push_back(m);
  }
  EXPECT_EQ(write_exposition({f}),
            "# HELP psnictest_values what it counts\n"
            "# TYPE psnictest_values gauge\n"
            "psnictest_values 0\n"
            "psnictest_values 0\n"
            "psnictest_values 1\n"
            "psnictest_values -3\n"
            "psnictest_values 0.1\n"
            "psnictest_values 0.3333333333333333\n"
            "psnictest_values 2.5e-09\n"
            "psnictest_values 1e+21\n"
            "psnictest_values 9223372036854775808\n"
            "psnictest_values 9007199254740992\n"
            "psnictest_values +Inf\n"
            "psnictest_values -Inf\n");
  prometheus::ClientMetric nan;
  nan.gauge.value = std::nan("");
  f.metric = {nan};
  EXPECT_NE(write_exposition({f}).find("\npsnictest_values NaN\n"), std::string::npos);
}

TEST(Exposition, EscapesLabelValuesAndHelpAsTheFormatSays) {
  auto f = family("psnictest_escapes_total", prometheus::MetricType::Counter, "a \\ help\nline");
  f.metric.push_back(counter(7, {"a", "quote \" back \\ new\nline"}));
  const std::string text = write_exposition({f});
  EXPECT_EQ(text,
            "# HELP psnictest_escapes_total a \\\\ help\\nline\n"
            "# TYPE psnictest_escapes_total counter\n"
            "psnictest_escapes_total{a=\"quote \\\" back \\\\ "
            "new\\nline\",host_interface=\"veth1\"} 7\n");
  char path[] = "/tmp/psnictest-exposition-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::ofstream(path) << text;
  close(fd);
  test::CommandResult check = test::run("promtool check metrics < " + std::string(path));
  unlink(path);
  EXPECT_EQ(check.status, 0) << check.out << check.err << text;
}

TEST(Exposition, NoLabelsNoBracesAndTimestampsAndSummaries) {
  auto f = family("psnictest_plain", prometheus::MetricType::Untyped, "");
  prometheus::ClientMetric m;
  m.untyped.value = 4;
  m.timestamp_ms = 1700000000123;
  f.metric.push_back(m);
  auto s = family("psnictest_summary", prometheus::MetricType::Summary);
  prometheus::ClientMetric q;
  q.summary.sample_count = 3;
  q.summary.sample_sum = 1.5;
  q.summary.quantile = {{0.5, 0.25}, {0.99, 1.0}};
  s.metric.push_back(q);
  const std::vector<prometheus::MetricFamily> families{f, s};
  EXPECT_EQ(write_exposition(families), prometheus::TextSerializer().Serialize(families));
  EXPECT_EQ(write_exposition(families),
            "# TYPE psnictest_plain untyped\n"
            "psnictest_plain 4 1700000000123\n"
            "# HELP psnictest_summary what it counts\n"
            "# TYPE psnictest_summary summary\n"
            "psnictest_summary_count 3\n"
            "psnictest_summary_sum 1.5\n"
            "psnictest_summary{quantile=\"0.5\"} 0.25\n"
            "psnictest_summary{quantile=\"0.99\"} 1\n");
}

TEST(Exposition, NothingToWrite) { EXPECT_EQ(write_exposition({}), ""); }

}  // namespace
}  // namespace psnic
