// The exporter against a real per-CPU hash map made here (no program attached): TrafficMap sums
// every CPU's value exactly, tells an absent key from a failure, refuses a map of another shape,
// and a scrape of /metrics over loopback shows exactly the sums.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "exporter/metrics.h"
#include "exporter/server.h"
#include "kernel/traffic_map.h"
#include "tests/support/loopback_client.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

// An owned map fd.
class TestMap {
 public:
  TestMap(bpf_map_type type, uint32_t value_size) {
    fd_ = bpf_map_create(type, "psnictest_map", sizeof(uint32_t), value_size, 64, nullptr);
    if (fd_ < 0) throw system_error("bpf_map_create psnictest_map", -fd_);
  }
  TestMap(const TestMap&) = delete;
  TestMap& operator=(const TestMap&) = delete;
  ~TestMap() { close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// Distinct values on every CPU, none a multiple of another, so that a missed or doubled CPU, or a
// field read from the wrong place, changes the sum.
std::vector<psnic_traffic> per_cpu_values(uint32_t ifindex, int cpus) {
  std::vector<psnic_traffic> values(static_cast<size_t>(cpus));
  for (int cpu = 0; cpu < cpus; ++cpu) {
    uint64_t base = uint64_t{ifindex} * 1000000 + static_cast<uint64_t>(cpu) * 1000;
    values[cpu].ingress = {base + 1, base + 2, base + 3};
    values[cpu].egress = {base + 4, base + 5, base + 6};
  }
  // Past 2^32 on one CPU: no 32-bit truncation anywhere.
  values.back().egress.bytes += uint64_t{5} << 32;
  return values;
}

psnic_traffic sum_of(const std::vector<psnic_traffic>& values) {
  psnic_traffic sum{};
  for (const auto& v : values) {
    sum.ingress.bytes += v.ingress.bytes;
    sum.ingress.packets += v.ingress.packets;
    sum.egress.bytes += v.egress.bytes;
    sum.egress.packets += v.egress.packets;
  }
  return sum;
}

void put(int fd, uint32_t ifindex, const std::vector<psnic_traffic>& values) {
  ASSERT_EQ(bpf_map_update_elem(fd, &ifindex, values.data(), BPF_ANY), 0) << strerror(errno);
}

class ExporterMap : public ::testing::Test {
 protected:
  void SetUp() override { PSNIC_REQUIRE_ROOT(); }
};

TEST_F(ExporterMap, ReadSumsEveryCpuExactly) {
  TestMap map(BPF_MAP_TYPE_PERCPU_HASH, sizeof(psnic_traffic));
  TrafficMap traffic(map.fd());
  ASSERT_EQ(traffic.cpus(), libbpf_num_possible_cpus());
  for (uint32_t ifindex : {3u, 41u, 4000000000u}) {
    auto values = per_cpu_values(ifindex % 1000, traffic.cpus());
    put(map.fd(), ifindex, values);
    std::optional<psnic_traffic> got = traffic.read(ifindex);
    ASSERT_TRUE(got.has_value()) << ifindex;
    psnic_traffic want = sum_of(values);
    EXPECT_EQ(got->ingress.bytes, want.ingress.bytes) << ifindex;
    EXPECT_EQ(got->ingress.packets, want.ingress.packets) << ifindex;
    EXPECT_EQ(got->egress.bytes, want.egress.bytes) << ifindex;
    EXPECT_EQ(got->egress.packets, want.egress.packets) << ifindex;
    // What an older psnic left in the reserved field is no count of anyone's.
    EXPECT_EQ(got->ingress.reserved, 0u) << ifindex;
    EXPECT_EQ(got->egress.reserved, 0u) << ifindex;
  }
}

TEST_F(ExporterMap, AbsentKeyIsNullopt) {
  TestMap map(BPF_MAP_TYPE_PERCPU_HASH, sizeof(psnic_traffic));
  TrafficMap traffic(map.fd());
  EXPECT_FALSE(traffic.read(12345).has_value());
  put(map.fd(), 12345, per_cpu_values(1, traffic.cpus()));
  EXPECT_TRUE(traffic.read(12345).has_value());
  uint32_t key = 12345;
  ASSERT_EQ(bpf_map_delete_elem(map.fd(), &key), 0);
  EXPECT_FALSE(traffic.read(12345).has_value());
}

TEST_F(ExporterMap, RefusesAMapOfAnotherShape) {
  // Reading a bigger per-CPU value into psnic_traffic would overrun the buffer.
  TestMap bigger(BPF_MAP_TYPE_PERCPU_HASH, sizeof(psnic_traffic) + 8);
  EXPECT_THROW(TrafficMap{bigger.fd()}, Error);
  TestMap shared(BPF_MAP_TYPE_HASH, sizeof(psnic_traffic));
  EXPECT_THROW(TrafficMap{shared.fd()}, Error);
  try {
    TrafficMap not_a_map(0);  // stdin
    ADD_FAILURE() << "fd 0 taken for a map";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST_F(ExporterMap, ReadFailureOtherThanAbsentThrows) {
  TestMap map(BPF_MAP_TYPE_PERCPU_HASH, sizeof(psnic_traffic));
  int copy = dup(map.fd());
  ASSERT_GE(copy, 0);
  TrafficMap traffic(copy);
  close(copy);  // the fd is gone: EBADF, not "absent"
  try {
    traffic.read(1);
    ADD_FAILURE() << "read from a closed fd";
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), EBADF) << e.what();
  }
}

TEST_F(ExporterMap, ScrapeShowsExactlyTheMapSums) {
  TestMap map(BPF_MAP_TYPE_PERCPU_HASH, sizeof(psnic_traffic));
  auto traffic = std::make_shared<TrafficMap>(map.fd());
  auto values7 = per_cpu_values(7, traffic->cpus());
  auto values8 = per_cpu_values(8, traffic->cpus());
  put(map.fd(), 7, values7);
  put(map.fd(), 8, values8);

  InterfaceLabels web;
  web.container_id = std::string(64, 'c');
  web.container_name = "web";
  web.interface = "eth0";
  web.host_interface = "veth7";
  InterfaceLabels unknown;
  unknown.host_interface = "veth8";
  InterfaceLabels gone;
  gone.host_interface = "veth9";  // in the snapshot, not in the map: left out
  auto labels = std::make_shared<LabelSnapshot>();
  labels->publish(
      std::make_shared<const LabelTable>(LabelTable{{7, web}, {8, unknown}, {9, gone}}));
  auto self = std::make_shared<SelfMetrics>();
  auto collector = std::make_shared<TrafficCollector>(
      [traffic](uint32_t ifindex) { return traffic->read(ifindex); }, labels, self);
  MetricsServer server("127.0.0.1:0", {collector, self->registry()});
  ASSERT_EQ(server.ports().size(), 1u);

  loopback::HttpResponse response = loopback::get(server.ports()[0], "/metrics");
  ASSERT_EQ(response.status, 200) << response.headers;
  const std::string& body = response.body;

  const std::string web_labels = "{container_id=\"" + std::string(64, 'c') +
                                 "\",container_name=\"web\",pod=\"\",namespace=\"\","
                                 "interface=\"eth0\",host_interface=\"veth7\"}";
  const std::string unknown_labels =
      "{container_id=\"\",container_name=\"\",pod=\"\",namespace=\"\",interface=\"\","
      "host_interface=\"veth8\"}";
  auto expect_line = [&](const std::string& family, const std::string& series_labels,
                         uint64_t value) {
    std::string line =
        "\npsnic_container_network_" + family + series_labels + " " + std::to_string(value) + "\n";
    EXPECT_NE(body.find(line), std::string::npos) << "missing:" << line << "in:\n" << body;
  };
  for (const auto& [series_labels, values] :
       {std::pair{web_labels, values7}, std::pair{unknown_labels, values8}}) {
    psnic_traffic sum = sum_of(values);
    // Seen from the container: the host peer's egress is what it receives.
    expect_line("receive_bytes_total", series_labels, sum.egress.bytes);
    expect_line("receive_packets_total", series_labels, sum.egress.packets);
    expect_line("transmit_bytes_total", series_labels, sum.ingress.bytes);
    expect_line("transmit_packets_total", series_labels, sum.ingress.packets);
  }
  EXPECT_EQ(body.find("veth9"), std::string::npos) << body;
  EXPECT_NE(body.find("\npsnic_errors_total{op=\"read_map\"} 0\n"), std::string::npos) << body;

  // The next scrape reads the map again.
  values7[0].egress.bytes += 1500;
  put(map.fd(), 7, values7);
  response = loopback::get(server.ports()[0], "/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_NE(response.body.find("\npsnic_container_network_receive_bytes_total" + web_labels + " " +
                               std::to_string(sum_of(values7).egress.bytes) + "\n"),
            std::string::npos)
      << response.body;
}

}  // namespace
}  // namespace psnic
