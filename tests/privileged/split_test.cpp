// psnic-agent --split protocol on real veths: the split programs count real TCP, UDP and ICMP
// traffic, and the exported series, summed over their protocol label, equal the kernel's own
// statistics of the host veth to the byte, with each protocol's share at least what was sent of
// it. (BPF_PROG_TEST_RUN's table of hand-built packets is in bpf_program_test.cpp; restarts with
// the other setting in pins_test.cpp.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "agent/views.h"
#include "exporter/metrics.h"
#include "kernel/attach.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

constexpr auto kSettle = std::chrono::milliseconds(300);

// Sends `count` ICMP echo requests of `data_size` bytes of data to `address` from a raw socket
// (the replies come back on their own). False on any failure.
bool send_icmp_echo(const std::string& address, int count, size_t data_size) {
  const int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return false;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  bool sent = inet_pton(AF_INET, address.c_str(), &to.sin_addr) == 1;
  for (int i = 0; sent && i < count; ++i) {
    std::string message(sizeof(icmphdr) + data_size, 'p');
    icmphdr header{};
    header.type = ICMP_ECHO;
    header.un.echo.id = htons(0x5053);
    header.un.echo.sequence = htons(static_cast<uint16_t>(i));
    std::memcpy(message.data(), &header, sizeof header);
    uint32_t sum = 0;
    for (size_t b = 0; b < message.size(); b += 2)
      sum += static_cast<uint8_t>(message[b]) << 8 |
             (b + 1 < message.size() ? static_cast<uint8_t>(message[b + 1]) : 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const uint16_t checksum = htons(static_cast<uint16_t>(~sum));
    std::memcpy(message.data() + 2, &checksum, 2);
    sent = sendto(fd, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to),
                  sizeof to) == static_cast<ssize_t>(message.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(fd);
  return sent;
}

// What one scrape exports for one host interface: family -> protocol -> value.
using Exported = std::map<std::string, std::map<std::string, double>>;

Exported scrape(const TrafficCollector& collector, const std::string& host) {
  Exported exported;
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::string protocol = "<none>", host_interface;
      for (const auto& label : metric.label) {
        if (label.name == "protocol") protocol = label.value;
        if (label.name == "host_interface") host_interface = label.value;
      }
      if (host_interface == host) exported[family.name][protocol] = metric.counter.value;
    }
  }
  return exported;
}

struct Snapshot {
  Exported exported;
  uint64_t tx_bytes = 0, tx_packets = 0, rx_bytes = 0, rx_packets = 0;
};

Snapshot snapshot(const TrafficCollector& collector, const std::string& host) {
  return {scrape(collector, host), test::link_statistic(host, "tx_bytes"),
          test::link_statistic(host, "tx_packets"), test::link_statistic(host, "rx_bytes"),
          test::link_statistic(host, "rx_packets")};
}

class SplitTrafficTest : public ::testing::TestWithParam<AttachMode> {
 protected:
  void SetUp() override { PSNIC_REQUIRE_ROOT(); }
};

TEST_P(SplitTrafficTest, SumsOverProtocolEqualTheKernelsStatisticsToTheByte) {
  test::TestVeth veth('s', /*addressed=*/true);
  const uint32_t ifindex = test::host_ifindex(veth.host);
  test::TcpSink sink(veth.ns.path(), 5001);
  TrafficProgram program = TrafficProgram::load({}, Split::protocol);
  CountedInterface counted = CountedInterface::attach(program, ifindex, veth.host, GetParam());
  auto map = std::make_shared<TrafficMap>(program.map_fd());
  ASSERT_TRUE(map->split());
  InterfaceLabels labels;
  labels.host_interface = veth.host;
  auto table = std::make_shared<LabelSnapshot>();
  table->publish(std::make_shared<const LabelTable>(LabelTable{{ifindex, labels}}));
  TrafficCollector collector([map](uint32_t i) { return map->read_counts(i); }, table, nullptr);

  std::this_thread::sleep_for(kSettle);
  const Snapshot before = snapshot(collector, veth.host);
  // Into the namespace: TCP (GSO super-packets), UDP to a closed port, ICMP echo requests; out of
  // it: ACKs, ICMP port-unreachables and echo replies.
  constexpr size_t kTcpBytes = 2 << 20, kUdpSize = 1000;
  constexpr int kUdpCount = 20, kEchoCount = 5;
  ASSERT_TRUE(test::send_tcp(veth.inside_address, 5001, kTcpBytes));
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, kUdpSize, kUdpCount));
  ASSERT_TRUE(send_icmp_echo(veth.inside_address, kEchoCount, 200));
  std::this_thread::sleep_for(kSettle);
  const Snapshot after = snapshot(collector, veth.host);

  auto delta = [&](const std::string& family, const std::string& protocol) {
    return after.exported.at(family).at(protocol) - before.exported.at(family).at(protocol);
  };
  auto sum = [&](const std::string& family) {
    double total = 0;
    for (const char* protocol : {"tcp", "udp", "icmp", "other"}) total += delta(family, protocol);
    return total;
  };
  const std::string kPrefix = "psnic_container_network_";
  for (const std::string family : {"receive_bytes_total", "transmit_bytes_total",
                                   "receive_packets_total", "transmit_packets_total"}) {
    ASSERT_EQ(after.exported.at(kPrefix + family).size(), 4u) << family << ": one per protocol";
    EXPECT_EQ(after.exported.at(kPrefix + family).count("<none>"), 0u) << family;
  }
  // Seen from the container: the host veth's tx is what it receives.
  EXPECT_EQ(sum(kPrefix + "receive_bytes_total"), after.tx_bytes - before.tx_bytes);
  EXPECT_EQ(sum(kPrefix + "receive_packets_total"), after.tx_packets - before.tx_packets);
  EXPECT_EQ(sum(kPrefix + "transmit_bytes_total"), after.rx_bytes - before.rx_bytes);
  EXPECT_EQ(sum(kPrefix + "transmit_packets_total"), after.rx_packets - before.rx_packets);

  // Each protocol's share: at least what was sent of it (frames: + IPv4 + Ethernet headers).
  EXPECT_GE(delta(kPrefix + "receive_bytes_total", "tcp"), kTcpBytes);
  EXPECT_GE(delta(kPrefix + "transmit_packets_total", "tcp"), 1) << "the sink's ACKs";
  EXPECT_EQ(delta(kPrefix + "receive_packets_total", "udp"), kUdpCount);
  EXPECT_EQ(delta(kPrefix + "receive_bytes_total", "udp"), kUdpCount * (kUdpSize + 8 + 20 + 14));
  EXPECT_EQ(delta(kPrefix + "receive_packets_total", "icmp"), kEchoCount);
  EXPECT_EQ(delta(kPrefix + "receive_bytes_total", "icmp"), kEchoCount * (200 + 8 + 20 + 14));
  // Echo replies, and port-unreachables as far as the kernel's ICMP rate limit lets them out.
  EXPECT_GE(delta(kPrefix + "transmit_packets_total", "icmp"), kEchoCount);
  EXPECT_EQ(delta(kPrefix + "transmit_packets_total", "udp"), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, SplitTrafficTest,
                         ::testing::Values(AttachMode::tcx, AttachMode::tc), [](const auto& info) {
                           return std::string(attach_mode_name(info.param));
                         });

}  // namespace
}  // namespace psnic
