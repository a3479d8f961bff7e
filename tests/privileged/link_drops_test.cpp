// Errors and drops from the host veth's kernel statistics, against real drops: a veth pair into a
// psnictest namespace whose two ends disagree on the MTU. veth_xmit hands each frame to its peer
// with __dev_forward_skb, which refuses a frame longer than the receiving device's MTU (plus its
// link-layer header): the receiver counts rx_dropped, the sender's veth counts tx_dropped. So a
// big datagram from the host to a container whose eth0 has the smaller MTU is a drop on the
// container's receive side (the host veth's tx_dropped), and one from the container to a host
// veth with the smaller MTU is a drop on its transmit side (the host veth's rx_dropped). The
// rtnetlink reads and a scrape must show exactly what /sys/class/net says at the same quiet
// moment (IPv6 off on both ends: nothing else crosses the pair).
#include "agent/link_drops.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "exporter/metrics.h"
#include "exporter/server.h"
#include "resolver/netlink.h"
#include "tests/support/loopback_client.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using test::link_statistic;
using test::TestVeth;

constexpr size_t kBigDatagram = 1400;  // a 1442-byte frame: over 1280 + 14 + 4, under 1500
constexpr int kDatagrams = 25;

// Sends UDP datagrams from inside the namespace at `netns_path` (a child that enters it).
bool send_udp_from(const std::string& netns_path, const std::string& address, int count) {
  pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) {
    int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) _exit(126);
    _exit(test::send_udp(address, 9, kBigDatagram, count) ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The host veth's statistics as /sys/class/net has them.
struct SysfsDrops {
  uint64_t rx_errors, tx_errors, rx_dropped, tx_dropped;
  bool operator==(const SysfsDrops&) const = default;
};
SysfsDrops sysfs_drops(const std::string& host) {
  return {link_statistic(host, "rx_errors"), link_statistic(host, "tx_errors"),
          link_statistic(host, "rx_dropped"), link_statistic(host, "tx_dropped")};
}

// A pair with real drops both ways, made once per test.
class LinkDrops : public ::testing::Test {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    veth_ = std::make_unique<TestVeth>('d', /*addressed=*/true);
    ifindex_ = test::host_ifindex(veth_->host);
    // The neighbour is resolved first (small frames pass): every big datagram then reaches the
    // veth rather than waiting, or being dropped, in the ARP queue.
    ASSERT_TRUE(test::send_udp(veth_->inside_address, 9, 64, 1));
    ASSERT_TRUE(send_udp_from(veth_->ns.path(), veth_->host_address, 1));
    usleep(100 * 1000);

    // The container's receive side: its eth0 takes no frame over 1280 + 18 bytes.
    veth_->ns.ip("link set eth0 mtu 1280");
    ASSERT_TRUE(test::send_udp(veth_->inside_address, 9, kBigDatagram, kDatagrams));
    veth_->ns.ip("link set eth0 mtu 1500");
    // Its transmit side: now the host veth is the one that refuses them.
    test::must("ip link set " + veth_->host + " mtu 1280");
    ASSERT_TRUE(send_udp_from(veth_->ns.path(), veth_->host_address, kDatagrams));
    test::must("ip link set " + veth_->host + " mtu 1500");
    usleep(100 * 1000);
  }

  // The statistics once two reads in a row agree: the quiet moment the comparisons use.
  SysfsDrops quiet_sysfs() const {
    SysfsDrops before = sysfs_drops(veth_->host);
    for (int i = 0; i < 50; ++i) {
      usleep(20 * 1000);
      SysfsDrops now = sysfs_drops(veth_->host);
      if (now == before) return now;
      before = now;
    }
    ADD_FAILURE() << veth_->host << "'s statistics never settled";
    return before;
  }

  std::unique_ptr<TestVeth> veth_;
  uint32_t ifindex_ = 0;
};

TEST_F(LinkDrops, TheKernelDroppedFramesBothWays) {
  SysfsDrops kernel = quiet_sysfs();
  // Every big datagram was dropped by one end, and counted by the host veth.
  EXPECT_GE(kernel.tx_dropped, static_cast<uint64_t>(kDatagrams)) << veth_->host;
  EXPECT_GE(kernel.rx_dropped, static_cast<uint64_t>(kDatagrams)) << veth_->host;
  // veth has no error counters of its own.
  EXPECT_EQ(kernel.rx_errors, 0u);
  EXPECT_EQ(kernel.tx_errors, 0u);
}

TEST_F(LinkDrops, DumpAndSingleQueryEqualSysfs) {
  SysfsDrops kernel = quiet_sysfs();
  NetlinkSocket socket = NetlinkSocket::open();
  std::vector<LinkStatsReply> dump = socket.dump_link_stats();
  auto found = std::find_if(dump.begin(), dump.end(),
                            [&](const LinkStatsReply& r) { return r.ifindex == ifindex_; });
  ASSERT_NE(found, dump.end()) << "the dump left out " << veth_->host;
  std::optional<LinkStats> one = socket.get_link_stats(ifindex_);
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, found->stats);
  for (const LinkStats& stats : {found->stats, *one}) {
    EXPECT_EQ(stats.rx_dropped, kernel.rx_dropped);
    EXPECT_EQ(stats.tx_dropped, kernel.tx_dropped);
    EXPECT_EQ(stats.rx_errors, kernel.rx_errors);
    EXPECT_EQ(stats.tx_errors, kernel.tx_errors);
    EXPECT_EQ(stats.rx_packets, link_statistic(veth_->host, "rx_packets"));
    EXPECT_EQ(stats.tx_bytes, link_statistic(veth_->host, "tx_bytes"));
  }
  // Every link of the namespace is in the dump, once.
  std::vector<Link> links = socket.dump_links();
  EXPECT_EQ(dump.size(), links.size());
}

TEST_F(LinkDrops, AGoneLinkIsNoAnswerNotAFailure) {
  NetlinkSocket socket = NetlinkSocket::open();
  const uint32_t ifindex = ifindex_;
  veth_.reset();  // deletes the pair
  EXPECT_FALSE(socket.get_link_stats(ifindex));
  LinkDropsReader reader;
  EXPECT_TRUE(reader.read({ifindex}).empty());
}

TEST_F(LinkDrops, ScrapeShowsTheHostStatisticsFromTheContainersSide) {
  auto labels = std::make_shared<LabelSnapshot>();
  InterfaceLabels container;
  container.container_name = "psnictest";
  container.interface = "eth0";
  container.host_interface = veth_->host;
  labels->publish(std::make_shared<const LabelTable>(LabelTable{{ifindex_, container}}));
  auto self = std::make_shared<SelfMetrics>();
  auto reader = std::make_shared<LinkDropsReader>();
  // No program here: the traffic families come from a stand-in map entry.
  auto collector = std::make_shared<TrafficCollector>(
      [](uint32_t) { return std::optional<psnic_traffic>(psnic_traffic{}); }, labels, self, nullptr,
      [reader](const std::vector<uint32_t>& ifindexes) { return reader->read(ifindexes); });
  MetricsServer server("127.0.0.1:0", {collector, self->registry()});

  SysfsDrops kernel = quiet_sysfs();
  loopback::HttpResponse response = loopback::get(server.ports().at(0), "/metrics");
  ASSERT_EQ(response.status, 200) << response.headers;
  ASSERT_EQ(sysfs_drops(veth_->host), kernel) << "traffic crossed the pair during the scrape";
  const std::string series =
      "{container_id=\"\",container_name=\"psnictest\",pod=\"\","
      "namespace=\"\",interface=\"eth0\",host_interface=\"" +
      veth_->host + "\"} ";
  auto expect_line = [&](const std::string& family, uint64_t value) {
    const std::string line =
        "\npsnic_container_network_" + family + series + std::to_string(value) + "\n";
    EXPECT_NE(response.body.find(line), std::string::npos) << "missing:" << line << "in:\n"
                                                           << response.body;
  };
  // What the host veth could not hand to eth0 never reached the container: a receive drop.
  expect_line("receive_packets_dropped_total", kernel.tx_dropped);
  expect_line("transmit_packets_dropped_total", kernel.rx_dropped);
  expect_line("receive_errors_total", kernel.tx_errors);
  expect_line("transmit_errors_total", kernel.rx_errors);
  EXPECT_NE(response.body.find("\npsnic_errors_total{op=\"read_stats\"} 0\n"), std::string::npos)
      << response.body;
}

}  // namespace
}  // namespace psnic
