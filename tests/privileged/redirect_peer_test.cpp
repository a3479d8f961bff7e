// Traffic that bypasses the host veth: with Cilium-style BPF host routing a program on an uplink's
// ingress moves a container's packets with bpf_redirect_peer straight into the container-side
// device, so the host veth never transmits them (issue 12, part 1). The topology is the test's
// own: an "outside" namespace behind an uplink veth pair, a container namespace behind a host
// veth, and the test's own redirect program (redirect_peer.bpf.c) on the uplink's host-side
// ingress. Every figure is checked against the container-side interface's own statistics, read
// inside its namespace.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>

#include "base/fd.h"
#include "kernel/attach.h"
#include "kernel/program.h"
#include "redirect_peer.skel.h"
#include "tests/privileged/traffic_counts.h"
#include "tests/support/support.h"
#include "traffic.h"

namespace psnic {
namespace {

using test::read_counters;
using test::TestVeth;

constexpr uint16_t kPort = 5301;
constexpr int kDatagrams = 1000;
constexpr size_t kPayload = 500;
// 500 bytes of UDP payload + 8 UDP + 20 IPv4 + 14 Ethernet.
constexpr uint64_t kFrame = kPayload + 8 + 20 + 14;

// A socket of the network namespace at `netns_path`: made by a thread that enters the namespace
// for that alone (setns is per thread), so the test itself never leaves its own.
Fd socket_in(const std::string& netns_path, int type) {
  int made = -1;
  std::thread([&] {
    Fd ns(open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.valid() && setns(ns.get(), CLONE_NEWNET) == 0) made = socket(AF_INET, type, 0);
  }).join();
  return Fd(made);
}

sockaddr_in ipv4(const std::string& address, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  return addr;
}

// The kernel's statistics of a link inside a namespace: `ip netns exec` mounts a sysfs of that
// namespace (the caller's /sys/class/net shows the namespace that mounted it).
struct InsideStatistics {
  uint64_t rx_bytes = 0, rx_packets = 0;

  static InsideStatistics read(const test::TestNetns& ns, const std::string& link) {
    std::istringstream out(test::must("ip netns exec " + ns.name() + " cat /sys/class/net/" +
                                      link + "/statistics/rx_bytes /sys/class/net/" + link +
                                      "/statistics/rx_packets"));
    InsideStatistics s;
    out >> s.rx_bytes >> s.rx_packets;
    return s;
  }
};

// The test's topology: the container (namespace, host veth, eth0), the outside (namespace, the
// uplink veth pair), routes both ways, and the test's redirect program on the uplink's host-side
// ingress as a TCX link.
class RedirectPeerTest : public ::testing::Test {
 protected:
  RedirectPeerTest() : container_('p', /*addressed=*/true), outside_('q', /*addressed=*/true) {}

  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    // outside -> container through the uplink; the container's answers back the same way (the
    // host forwards those: none are sent by these tests, the route keeps rp_filter content).
    outside_.ns.ip("route add " + container_.inside_address + "/32 via " + outside_.host_address);
    container_.ns.ip("route add " + outside_.inside_address + "/32 via " +
                     container_.host_address);
    host_veth_ifindex_ = test::host_ifindex(container_.host);
    uplink_ifindex_ = test::host_ifindex(outside_.host);

    redirect_ = redirect_peer_bpf__open();
    ASSERT_NE(redirect_, nullptr);
    redirect_->rodata->host_veth_ifindex = host_veth_ifindex_;
    std::string mac = test::chomp(
        test::must("ip netns exec " + container_.ns.name() + " cat /sys/class/net/eth0/address"));
    unsigned octets[6] = {};
    ASSERT_EQ(std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &octets[0], &octets[1], &octets[2],
                          &octets[3], &octets[4], &octets[5]),
              6)
        << mac;
    for (int i = 0; i < 6; ++i)
      const_cast<uint8_t&>(redirect_->rodata->container_mac[i]) = static_cast<uint8_t>(octets[i]);
    ASSERT_EQ(redirect_peer_bpf__load(redirect_), 0);
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    redirect_link_ = Fd(bpf_link_create(bpf_program__fd(redirect_->progs.psnictest_redirect_peer),
                                        static_cast<int>(uplink_ifindex_),
                                        static_cast<bpf_attach_type>(test::kTcxIngress), &opts));
    ASSERT_TRUE(redirect_link_.valid()) << "redirect program's tcx link: " << errno;
    redirect_id_ = test::tcx_chain(uplink_ifindex_, test::kTcxIngress).at(0);
  }
  void TearDown() override {
    redirect_link_ = Fd();
    if (redirect_) redirect_peer_bpf__destroy(redirect_);
  }

  uint64_t redirected() const {
    uint32_t zero = 0;
    uint64_t count = 0;
    bpf_map_lookup_elem(bpf_map__fd(redirect_->maps.redirected), &zero, &count);
    return count;
  }

  // Sends kDatagrams datagrams of kPayload bytes from the socket `sender` to the container's
  // receiver and returns how many the receiver got.
  int send_to_container(const Fd& sender) {
    Fd receiver = socket_in(container_.ns.path(), SOCK_DGRAM | SOCK_CLOEXEC);
    EXPECT_TRUE(receiver.valid());
    int buffer = 16 << 20;  // all of them fit, however late the reader runs
    setsockopt(receiver.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    timeval timeout{.tv_sec = 2, .tv_usec = 0};
    setsockopt(receiver.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in to = ipv4(container_.inside_address, kPort);
    EXPECT_EQ(bind(receiver.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);

    std::atomic<int> received = 0;
    std::thread reader([&] {
      char datagram[2048];
      while (received < kDatagrams && recv(receiver.get(), datagram, sizeof datagram, 0) > 0)
        ++received;
    });
    std::string payload(kPayload, 'r');
    for (int i = 0; i < kDatagrams; ++i)
      EXPECT_EQ(sendto(sender.get(), payload.data(), payload.size(), 0,
                       reinterpret_cast<const sockaddr*>(&to), sizeof to),
                static_cast<ssize_t>(kPayload));
    reader.join();
    return received;
  }
  // From the outside namespace, through the uplink and the redirect program.
  int send_from_outside() {
    return send_to_container(socket_in(outside_.ns.path(), SOCK_DGRAM | SOCK_CLOEXEC));
  }
  // From the host, through the host veth: the ordinary path.
  int send_from_host() {
    return send_to_container(Fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  }

  static void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(200)); }

  TestVeth container_;
  TestVeth outside_;
  uint32_t host_veth_ifindex_ = 0;
  uint32_t uplink_ifindex_ = 0;
  redirect_peer_bpf* redirect_ = nullptr;
  Fd redirect_link_;
  uint32_t redirect_id_ = 0;
};

// What psnic counted before it counted at the container-side device (issue 12's measurement,
// reproduced): the redirected datagrams reach the container, the container's eth0 receives
// them, the host veth never transmits them, and psnic's receive counter, fed by the host veth's
// egress, misses every one.
TEST_F(RedirectPeerTest, HostVethEgressMissesRedirectedTraffic) {
  TrafficProgram program = TrafficProgram::load();
  program.track(host_veth_ifindex_);
  Attachment attached =
      Attachment::attach(program, host_veth_ifindex_, container_.host, AttachMode::tcx);
  settle();
  const InsideStatistics inside_before = InsideStatistics::read(container_.ns, "eth0");
  const test::Counters before = test::Counters::read(program, host_veth_ifindex_, container_.host);
  const uint64_t redirected_before = redirected();

  EXPECT_EQ(send_from_outside(), kDatagrams);
  settle();

  const InsideStatistics inside_after = InsideStatistics::read(container_.ns, "eth0");
  const test::Counters after = test::Counters::read(program, host_veth_ifindex_, container_.host);
  const uint64_t rx_bytes = inside_after.rx_bytes - inside_before.rx_bytes;
  const uint64_t rx_packets = inside_after.rx_packets - inside_before.rx_packets;
  const uint64_t psnic_bytes = after.psnic.egress.bytes - before.psnic.egress.bytes;
  const uint64_t psnic_packets = after.psnic.egress.packets - before.psnic.egress.packets;
  std::printf(
      "redirect_peer, %d datagrams of %zu bytes: container eth0 rx +%llu packets / %llu bytes; "
      "host veth tx +%llu packets / %llu bytes; psnic receive +%llu packets / %llu bytes\n",
      kDatagrams, kPayload, static_cast<unsigned long long>(rx_packets),
      static_cast<unsigned long long>(rx_bytes),
      static_cast<unsigned long long>(after.tx_packets - before.tx_packets),
      static_cast<unsigned long long>(after.tx_bytes - before.tx_bytes),
      static_cast<unsigned long long>(psnic_packets), static_cast<unsigned long long>(psnic_bytes));

  // Every datagram went the redirect way and arrived, whole frames in the container's rx.
  EXPECT_GE(redirected() - redirected_before, static_cast<uint64_t>(kDatagrams));
  EXPECT_GE(rx_packets, static_cast<uint64_t>(kDatagrams));
  EXPECT_GE(rx_bytes, kDatagrams * kFrame);
  // The host veth's egress saw none of them: psnic's receive moved with the host veth's tx, not
  // with what the container received.
  EXPECT_EQ(psnic_bytes, after.tx_bytes - before.tx_bytes);
  EXPECT_LT(psnic_packets, static_cast<uint64_t>(kDatagrams));
  EXPECT_LT(psnic_bytes, rx_bytes - (kDatagrams - 1) * kFrame);
  // The test's redirect program kept its place at the head of the uplink's ingress.
  EXPECT_EQ(test::tcx_chain(uplink_ifindex_, test::kTcxIngress).at(0), redirect_id_);
  program.untrack(host_veth_ifindex_);
}

}  // namespace
}  // namespace psnic
