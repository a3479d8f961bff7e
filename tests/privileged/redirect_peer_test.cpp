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

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "foreign.skel.h"
#include "kernel/attach.h"
#include "kernel/peer.h"
#include "kernel/pins.h"
#include "kernel/program.h"
#include "redirect_peer.skel.h"
#include "tests/e2e/e2e_support.h"
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

// The program ids on a TCX hook of a device inside a namespace, head first (the ifindex is
// resolved in the caller's namespace: asked from a thread inside).
std::vector<uint32_t> chain_in(const std::string& netns_path, uint32_t ifindex, int hook) {
  std::vector<uint32_t> chain;
  std::thread([&] {
    Fd ns(open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.valid() && setns(ns.get(), CLONE_NEWNET) == 0) chain = test::tcx_chain(ifindex, hook);
  }).join();
  return chain;
}

uint32_t prog_id(int prog_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  bpf_obj_get_info_by_fd(prog_fd, &info, &length);
  return info.id;
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
    std::istringstream out(test::must("ip netns exec " + ns.name() + " cat /sys/class/net/" + link +
                                      "/statistics/rx_bytes /sys/class/net/" + link +
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
    container_.ns.ip("route add " + outside_.inside_address + "/32 via " + container_.host_address);
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

  uint32_t container_ifindex() const {
    return static_cast<uint32_t>(std::stoul(
        test::must("ip netns exec " + container_.ns.name() + " cat /sys/class/net/eth0/ifindex")));
  }
  std::vector<uint32_t> container_ingress_chain() const {
    return chain_in(container_.ns.path(), container_ifindex(), test::kTcxIngress);
  }
  PeerLink attach_peer(const TrafficProgram& program, const PinDir* pins = nullptr) {
    Fd ns(open(container_.ns.path().c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(ns.valid());
    return PeerLink::attach(program, host_veth_ifindex_, container_.host,
                            PeerLink::Device{ns.get(), container_ifindex()}, pins);
  }

  // What one send moved, from the outside (the redirect path) or from the host (the ordinary
  // path): the container-side eth0's rx statistics, the host veth's, psnic's counters, and how
  // many frames the test's program redirected. Printed, for the record.
  struct Delivery {
    int received = 0;
    uint64_t rx_bytes = 0, rx_packets = 0;  // container-side eth0, read in its namespace
    test::Counters before, after;           // psnic's and the host veth's
    uint64_t redirected = 0;
    uint64_t psnic_receive_bytes() const {
      return after.psnic.egress.bytes - before.psnic.egress.bytes;
    }
    uint64_t psnic_receive_packets() const {
      return after.psnic.egress.packets - before.psnic.egress.packets;
    }
  };
  Delivery deliver(const TrafficProgram& program, bool redirected_path) {
    Delivery d;
    settle();
    const InsideStatistics inside_before = InsideStatistics::read(container_.ns, "eth0");
    d.before = test::Counters::read(program, host_veth_ifindex_, container_.host);
    const uint64_t redirected_before = redirected();
    d.received = redirected_path ? send_from_outside() : send_from_host();
    settle();
    const InsideStatistics inside_after = InsideStatistics::read(container_.ns, "eth0");
    d.after = test::Counters::read(program, host_veth_ifindex_, container_.host);
    d.rx_bytes = inside_after.rx_bytes - inside_before.rx_bytes;
    d.rx_packets = inside_after.rx_packets - inside_before.rx_packets;
    d.redirected = redirected() - redirected_before;
    std::printf(
        "%s, %d datagrams of %zu bytes: container eth0 rx +%llu packets / %llu bytes; host veth "
        "tx +%llu packets / %llu bytes; psnic receive +%llu packets / %llu bytes\n",
        redirected_path ? "redirect_peer" : "ordinary path", kDatagrams, kPayload,
        static_cast<unsigned long long>(d.rx_packets), static_cast<unsigned long long>(d.rx_bytes),
        static_cast<unsigned long long>(d.after.tx_packets - d.before.tx_packets),
        static_cast<unsigned long long>(d.after.tx_bytes - d.before.tx_bytes),
        static_cast<unsigned long long>(d.psnic_receive_packets()),
        static_cast<unsigned long long>(d.psnic_receive_bytes()));
    // Every datagram arrived, whole frames in the container's rx; the test's redirect program
    // kept its place at the head of the uplink's ingress.
    EXPECT_EQ(d.received, kDatagrams);
    EXPECT_GE(d.rx_packets, static_cast<uint64_t>(kDatagrams));
    EXPECT_GE(d.rx_bytes, kDatagrams * kFrame);
    if (redirected_path) {
      EXPECT_GE(d.redirected, static_cast<uint64_t>(kDatagrams));
    } else {
      EXPECT_EQ(d.redirected, 0u);
    }
    EXPECT_EQ(test::tcx_chain(uplink_ifindex_, test::kTcxIngress).at(0), redirect_id_);
    return d;
  }

  // psnic's receive moved exactly as the container-side eth0's rx statistics did, and its
  // transmit as the host veth's rx.
  void expect_receive_counted_exactly(const TrafficProgram& program, bool redirected_path) {
    const Delivery d = deliver(program, redirected_path);
    EXPECT_EQ(d.psnic_receive_bytes(), d.rx_bytes);
    EXPECT_EQ(d.psnic_receive_packets(), d.rx_packets);
    EXPECT_EQ(d.after.psnic.ingress.bytes - d.before.psnic.ingress.bytes,
              d.after.rx_bytes - d.before.rx_bytes);
    EXPECT_EQ(d.after.psnic.ingress.packets - d.before.psnic.ingress.packets,
              d.after.rx_packets - d.before.rx_packets);
    // In the ordinary path the host veth transmits what the container receives.
    if (!redirected_path) {
      EXPECT_EQ(d.after.tx_bytes - d.before.tx_bytes, d.rx_bytes);
    }
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
  const Delivery d = deliver(program, /*redirected_path=*/true);
  // The host veth's egress saw none of them: psnic's receive moved with the host veth's tx, not
  // with what the container received.
  EXPECT_EQ(d.psnic_receive_bytes(), d.after.tx_bytes - d.before.tx_bytes);
  EXPECT_LT(d.psnic_receive_packets(), static_cast<uint64_t>(kDatagrams));
  EXPECT_LT(d.psnic_receive_bytes(), d.rx_bytes - (kDatagrams - 1) * kFrame);
  program.untrack(host_veth_ifindex_);
}

// Counted at the container-side device's ingress, the container's receive is exact on both
// paths: each byte the container-side eth0 receives once, whether the host veth transmitted it
// or a program on the uplink moved it there with bpf_redirect_peer.
TEST_F(RedirectPeerTest, PeerIngressCountsBothPathsExactlyOnce) {
  TrafficProgram program = TrafficProgram::load();
  ASSERT_TRUE(PeerLink::supported(program));
  program.track(host_veth_ifindex_);
  Attachment attached =
      Attachment::attach(program, host_veth_ifindex_, container_.host, AttachMode::tcx);
  {
    PeerLink peer = attach_peer(program);
    EXPECT_TRUE(peer.intact());
    EXPECT_EQ(container_ingress_chain(), (std::vector<uint32_t>{program.ids().peer_ingress}));
    expect_receive_counted_exactly(program, /*redirected_path=*/true);
    expect_receive_counted_exactly(program, /*redirected_path=*/false);
  }
  // Detached: nothing left on the container's side, and the host egress counts again.
  EXPECT_TRUE(container_ingress_chain().empty());
  settle();
  const test::Counters before = test::Counters::read(program, host_veth_ifindex_, container_.host);
  EXPECT_EQ(send_from_host(), kDatagrams);
  settle();
  test::expect_same_deltas(before,
                           test::Counters::read(program, host_veth_ifindex_, container_.host));
  program.untrack(host_veth_ifindex_);
}

// Another tool's program on the container-side ingress stays there, running, behind psnic's,
// and stays when psnic goes.
TEST_F(RedirectPeerTest, AForeignProgramOnThePeersIngressStays) {
  foreign_bpf* foreign = foreign_bpf__open_and_load();
  ASSERT_NE(foreign, nullptr);
  const int foreign_fd = bpf_program__fd(foreign->progs.psnictest_foreign);
  const uint32_t foreign_id = prog_id(foreign_fd);
  Fd foreign_link;
  const uint32_t inside_ifindex = container_ifindex();
  std::thread([&] {
    Fd ns(open(container_.ns.path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid() || setns(ns.get(), CLONE_NEWNET) != 0) return;
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    foreign_link = Fd(bpf_link_create(foreign_fd, static_cast<int>(inside_ifindex),
                                      static_cast<bpf_attach_type>(test::kTcxIngress), &opts));
  }).join();
  ASSERT_TRUE(foreign_link.valid());
  auto seen = [&] {
    uint32_t zero = 0;
    uint64_t count = 0;
    bpf_map_lookup_elem(bpf_map__fd(foreign->maps.seen), &zero, &count);
    return count;
  };

  TrafficProgram program = TrafficProgram::load();
  program.track(host_veth_ifindex_);
  Attachment attached =
      Attachment::attach(program, host_veth_ifindex_, container_.host, AttachMode::tcx);
  {
    PeerLink peer = attach_peer(program);
    EXPECT_EQ(container_ingress_chain(),
              (std::vector<uint32_t>{program.ids().peer_ingress, foreign_id}));
    const uint64_t before = seen();
    expect_receive_counted_exactly(program, /*redirected_path=*/true);
    EXPECT_GE(seen() - before, static_cast<uint64_t>(kDatagrams));
  }
  EXPECT_EQ(container_ingress_chain(), (std::vector<uint32_t>{foreign_id}));
  const uint64_t before = seen();
  EXPECT_EQ(send_from_outside(), kDatagrams);
  EXPECT_GE(seen() - before, static_cast<uint64_t>(kDatagrams));
  foreign_link = Fd();
  foreign_bpf__destroy(foreign);
  program.untrack(host_veth_ifindex_);
}

class PinnedRedirectPeerTest : public RedirectPeerTest {
 protected:
  void SetUp() override {
    RedirectPeerTest::SetUp();
    path_ = "/sys/fs/bpf/psnictest-peer-" + std::to_string(getpid());
  }
  void TearDown() override {
    cleanup_pins(path_);
    RedirectPeerTest::TearDown();
  }
  std::string path_;
};

// What a restarted pinned agent does: the link on the peer's ingress and its map entries are
// adopted (no second link), the counter continues, and both paths stay exact; --cleanup then
// removes the link and every pin.
TEST_F(PinnedRedirectPeerTest, AdoptedAfterARestartAndRemovedByCleanup) {
  uint64_t counted_before_restart = 0;
  {
    PinDir pins = PinDir::open(path_);
    TrafficProgram program = TrafficProgram::load(pins.map_path());
    CountedInterface counted = CountedInterface::attach(program, host_veth_ifindex_,
                                                        container_.host, AttachMode::tcx, &pins);
    PeerLink peer = attach_peer(program, &pins);
    expect_receive_counted_exactly(program, /*redirected_path=*/true);
    counted_before_restart = read_counters(program, host_veth_ifindex_).egress.bytes;
    peer.release();
    counted.release();
  }
  {
    PinDir pins = PinDir::open(path_);
    TrafficProgram program = TrafficProgram::load(pins.map_path());
    std::optional<CountedInterface> counted = CountedInterface::adopt(
        program, host_veth_ifindex_, container_.host, AttachMode::tcx, pins);
    ASSERT_TRUE(counted.has_value());
    std::optional<PeerLink> peer =
        PeerLink::adopt(program, host_veth_ifindex_, container_.host, pins);
    ASSERT_TRUE(peer.has_value());
    EXPECT_TRUE(peer->intact());
    EXPECT_EQ(container_ingress_chain().size(), 1u);  // adopted, not attached twice
    EXPECT_GE(read_counters(program, host_veth_ifindex_).egress.bytes, counted_before_restart);
    expect_receive_counted_exactly(program, /*redirected_path=*/true);
    expect_receive_counted_exactly(program, /*redirected_path=*/false);
    peer->release();
    counted->release();
  }
  CleanupReport report = cleanup_pins(path_);
  EXPECT_EQ(report.links, 3u);
  EXPECT_TRUE(report.map);
  EXPECT_TRUE(report.directory);
  EXPECT_TRUE(container_ingress_chain().empty());
  EXPECT_TRUE(test::tcx_chain(host_veth_ifindex_, test::kTcxEgress).empty());
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
}

// A container gone while no agent ran: its namespace destroyed, its device with it, the pinned
// link defunct.
// The next agent adopts nothing and leaves no pin or map entry behind.
TEST_F(PinnedRedirectPeerTest, ADefunctLinkIsNotAdoptedAndLeavesNoPin) {
  {
    PinDir pins = PinDir::open(path_);
    TrafficProgram program = TrafficProgram::load(pins.map_path());
    PeerLink peer = attach_peer(program, &pins);
    peer.release();
  }
  // The namespace goes: the kernel tears it down in a work queue, unregistering its eth0 and,
  // with it, the host veth (one batch), which is the sign to wait for.
  test::must("ip netns del " + container_.ns.name());
  for (int i = 0; i < 100 && test::host_ifindex(container_.host) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(test::host_ifindex(container_.host), 0u) << container_.host << " still there";
  PinDir pins = PinDir::open(path_);
  TrafficProgram program = TrafficProgram::load(pins.map_path());
  EXPECT_EQ(PeerLink::adopt(program, host_veth_ifindex_, container_.host, pins), std::nullopt);
  EXPECT_NE(access(pins.peer_link_path(host_veth_ifindex_).c_str(), F_OK), 0);
  psnic_peer_key key{}, next{};
  EXPECT_NE(bpf_map_get_next_key(program.peers_fd(), nullptr, &next), 0);
  EXPECT_NE(bpf_map_lookup_elem(program.received_at_peer_fd(), &host_veth_ifindex_, &key), 0);
}

// The real psnic-agent on the same topology: it counts the host veth as every host veth, learns
// the container's namespace when it names the owner, and then counts the container's receive at
// eth0's ingress. The exported receive series must equal eth0's rx statistics, read in its
// namespace, on both paths; a restart adopts the link; --cleanup and a --no-pin exit leave
// nothing.
class AgentRedirectPeerTest : public PinnedRedirectPeerTest {
 protected:
  // The exported receive of the container's host veth, and eth0's rx statistics, moved by one
  // send, with the agent's scrape read after the traffic settled.
  // With `split` (--split protocol) the exported receive is the sum over the protocol label.
  void expect_exported_receive_exact(test::e2e::Agent& agent, bool redirected_path,
                                     bool split = false) {
    settle();
    const InsideStatistics inside_before = InsideStatistics::read(container_.ns, "eth0");
    const std::optional<test::e2e::Counts> before =
        test::e2e::agent_counts(test::e2e::scrape(agent.port()), container_.host, "", split);
    ASSERT_TRUE(before.has_value());
    const uint64_t redirected_before = redirected();
    const uint64_t host_tx_before = test::link_statistic(container_.host, "tx_bytes");
    EXPECT_EQ(redirected_path ? send_from_outside() : send_from_host(), kDatagrams);
    settle();
    const InsideStatistics inside_after = InsideStatistics::read(container_.ns, "eth0");
    const std::string metrics = test::e2e::scrape(agent.port());
    const std::optional<test::e2e::Counts> after =
        test::e2e::agent_counts(metrics, container_.host, "", split);
    ASSERT_TRUE(after.has_value());
    const test::e2e::Counts exported = *after - *before;
    if (split) {  // the datagrams are UDP: the udp series has at least them
      const std::optional<double> udp =
          test::e2e::value_of(metrics, "psnic_container_network_receive_bytes_total",
                              {{"host_interface", container_.host}, {"protocol", "udp"}});
      ASSERT_TRUE(udp.has_value());
      EXPECT_GE(static_cast<uint64_t>(*udp), kDatagrams * kFrame);
    }
    const uint64_t rx_bytes = inside_after.rx_bytes - inside_before.rx_bytes;
    const uint64_t rx_packets = inside_after.rx_packets - inside_before.rx_packets;
    const uint64_t host_tx = test::link_statistic(container_.host, "tx_bytes") - host_tx_before;
    std::printf(
        "psnic-agent, %s, %d datagrams of %zu bytes: container eth0 rx +%llu packets / %llu "
        "bytes; exported receive +%llu packets / %llu bytes; host veth tx +%llu bytes\n",
        redirected_path ? "redirect_peer" : "ordinary path", kDatagrams, kPayload,
        static_cast<unsigned long long>(rx_packets), static_cast<unsigned long long>(rx_bytes),
        static_cast<unsigned long long>(exported.receive_packets),
        static_cast<unsigned long long>(exported.receive_bytes),
        static_cast<unsigned long long>(host_tx));
    EXPECT_GE(rx_bytes, kDatagrams * kFrame);
    EXPECT_EQ(exported.receive_bytes, rx_bytes);
    EXPECT_EQ(exported.receive_packets, rx_packets);
    if (redirected_path) {
      EXPECT_GE(redirected() - redirected_before, static_cast<uint64_t>(kDatagrams));
      EXPECT_LT(host_tx, kFrame);  // the host veth never transmitted them
    }
  }
  // One program on eth0's ingress, the one `agent` loaded.
  void expect_agents_link_on_the_peer(const test::e2e::Agent& agent) const {
    const std::vector<uint32_t> chain = container_ingress_chain();
    ASSERT_EQ(chain.size(), 1u);
    EXPECT_TRUE(test::e2e::bpf_ids(agent.pid()).count("prog " + std::to_string(chain[0])));
  }
  // The agent's log line saying the container's receive is counted at eth0.
  std::string at_peer_line() const {
    return container_.host + ": receive counted at its peer eth0's ingress";
  }
  std::vector<std::string> pinned_args() const { return {"--pin-dir", path_}; }
  // Receive counted at the host veth's egress, as before psnic counted at the peer: nothing on
  // eth0's ingress, the exported receive moving with the host veth's tx, which counts the
  // ordinary path's datagrams and none of the redirected ones.
  void expect_receive_at_the_host_egress(const test::e2e::Agent& agent) {
    EXPECT_TRUE(container_ingress_chain().empty());
    const std::optional<test::e2e::Counts> before =
        test::e2e::agent_counts(test::e2e::scrape(agent.port()), container_.host);
    ASSERT_TRUE(before.has_value());
    const test::e2e::Counts kernel_before = test::e2e::kernel_counts(container_.host);
    EXPECT_EQ(send_from_host(), kDatagrams);
    EXPECT_EQ(send_from_outside(), kDatagrams);
    settle();
    const std::optional<test::e2e::Counts> after =
        test::e2e::agent_counts(test::e2e::scrape(agent.port()), container_.host);
    ASSERT_TRUE(after.has_value());
    const test::e2e::Counts kernel = test::e2e::kernel_counts(container_.host) - kernel_before;
    EXPECT_EQ((*after - *before).receive_bytes, kernel.receive_bytes);
    EXPECT_GE(kernel.receive_bytes, kDatagrams * kFrame);
    EXPECT_LT(kernel.receive_bytes, 2 * kDatagrams * kFrame);
    EXPECT_EQ(interfaces_at_peer(agent), 0);
  }
  // psnic_receive_at_peer_interfaces: the container's eth0 among them, and the uplink's peer in
  // the outside namespace (a veth pair too) when the agent hooked that.
  static double interfaces_at_peer(const test::e2e::Agent& agent) {
    return test::e2e::value_of(test::e2e::scrape(agent.port()), "psnic_receive_at_peer_interfaces")
        .value_or(-1);
  }
};

TEST_F(AgentRedirectPeerTest, ExportedReceiveEqualsTheContainersRxOnBothPathsAcrossARestart) {
  test::e2e::Counts before_restart;
  {
    test::e2e::Agent agent(pinned_args());
    ASSERT_TRUE(agent.serving()) << agent.err();
    ASSERT_TRUE(agent.wait_for_log(at_peer_line())) << agent.err();
    expect_agents_link_on_the_peer(agent);
    expect_exported_receive_exact(agent, /*redirected_path=*/true);
    expect_exported_receive_exact(agent, /*redirected_path=*/false);
    EXPECT_GE(interfaces_at_peer(agent), 1);
    const std::optional<test::e2e::Counts> counts =
        test::e2e::agent_counts(test::e2e::scrape(agent.port()), container_.host);
    ASSERT_TRUE(counts.has_value());
    before_restart = *counts;
    EXPECT_EQ(agent.interrupt(), 0);
  }
  // Stopped, pinned: the link stays, counting with no agent.
  ASSERT_EQ(container_ingress_chain().size(), 1u);
  {
    test::e2e::Agent agent(pinned_args());
    ASSERT_TRUE(agent.serving()) << agent.err();
    ASSERT_TRUE(agent.wait_for_log("adopted " + container_.host + " (tcx)")) << agent.err();
    // Adopted: one link, running this agent's program, the counter going on.
    expect_agents_link_on_the_peer(agent);
    const std::optional<test::e2e::Counts> counts =
        test::e2e::agent_counts(test::e2e::scrape(agent.port()), container_.host);
    ASSERT_TRUE(counts.has_value());
    EXPECT_TRUE(counts->covers(before_restart)) << *counts << " after " << before_restart;
    EXPECT_FALSE(agent.logged(at_peer_line()));  // not attached anew
    expect_exported_receive_exact(agent, /*redirected_path=*/true);
    EXPECT_GE(interfaces_at_peer(agent), 1);  // the adopted link is at the peer too
    expect_exported_receive_exact(agent, /*redirected_path=*/false);
    EXPECT_EQ(agent.interrupt(), 0);
  }
  // --cleanup removes the peer link, its pins and maps with the rest.
  const test::CommandResult cleaned = test::e2e::run_cleanup(path_);
  EXPECT_EQ(cleaned.status, 0) << cleaned.err;
  EXPECT_TRUE(container_ingress_chain().empty());
  EXPECT_TRUE(test::tcx_chain(host_veth_ifindex_, test::kTcxEgress).empty());
  EXPECT_TRUE(test::tcx_chain(host_veth_ifindex_, test::kTcxIngress).empty());
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
}

// With --split protocol the peer program of that setting counts the receive, split, and the
// split egress program leaves the interface alone: exact on both paths, no double count.
TEST_F(AgentRedirectPeerTest, SplitByProtocolTheExportedReceiveSumsToTheContainersRx) {
  test::e2e::Agent agent({"--no-pin", "--split", "protocol"});
  ASSERT_TRUE(agent.serving()) << agent.err();
  ASSERT_TRUE(agent.wait_for_log(at_peer_line())) << agent.err();
  expect_agents_link_on_the_peer(agent);
  expect_exported_receive_exact(agent, /*redirected_path=*/true, /*split=*/true);
  expect_exported_receive_exact(agent, /*redirected_path=*/false, /*split=*/true);
  EXPECT_EQ(agent.interrupt(), 0);
  EXPECT_TRUE(container_ingress_chain().empty());
}

// An ephemeral agent takes its peer link with it when it stops.
TEST_F(AgentRedirectPeerTest, ANoPinAgentLeavesNothingOnThePeer) {
  {
    test::e2e::Agent agent({"--no-pin"});
    ASSERT_TRUE(agent.serving()) << agent.err();
    ASSERT_TRUE(agent.wait_for_log(at_peer_line())) << agent.err();
    expect_agents_link_on_the_peer(agent);
    expect_exported_receive_exact(agent, /*redirected_path=*/true);
    EXPECT_EQ(agent.interrupt(), 0);
  }
  EXPECT_TRUE(container_ingress_chain().empty());
  EXPECT_TRUE(test::tcx_chain(host_veth_ifindex_, test::kTcxEgress).empty());
}

// Where the peer cannot be hooked (here: tc mode) the receive stays at the host veth's egress,
// as before: exact on the ordinary path, blind to bpf_redirect_peer, and the agent says why once
// for all its interfaces (the topology's two veths among them), not per interface.
TEST_F(AgentRedirectPeerTest, InTcModeReceiveStaysAtTheHostEgressSaidOnce) {
  test::e2e::Agent agent({"--no-pin", "--attach-mode", "tc"});
  ASSERT_TRUE(agent.serving()) << agent.err();
  auto says_tc_mode = [](const test::LogRecord& r) {
    return r.at("msg").find("tc mode hooks host interfaces only") != std::string::npos;
  };
  ASSERT_TRUE(agent.wait_for_log_where(says_tc_mode)) << agent.err();
  settle();
  settle();  // the agent's first reconcile has passed both veths
  const std::vector<test::LogRecord> log = agent.log();
  EXPECT_EQ(std::count_if(log.begin(), log.end(), says_tc_mode), 1) << agent.err();
  expect_receive_at_the_host_egress(agent);
  EXPECT_EQ(agent.interrupt(), 0);
}

// --receive-at host: the same by choice, in TCX mode, said once at the start.
TEST_F(AgentRedirectPeerTest, ReceiveAtHostLeavesThePeerAlone) {
  test::e2e::Agent agent({"--no-pin", "--receive-at", "host"});
  ASSERT_TRUE(agent.serving()) << agent.err();
  ASSERT_TRUE(agent.logged(
      "receive counted at the host interfaces' egress (--receive-at host): traffic moved with "
      "bpf_redirect_peer is not counted"))
      << agent.err();
  const std::string named = container_.host + " is eth0 of ";
  ASSERT_TRUE(agent.wait_for_log_where([&](const test::LogRecord& r) {
    return r.at("msg").rfind(named, 0) == 0;
  })) << agent.err();
  settle();  // a peer would have been hooked by now
  EXPECT_FALSE(agent.logged(at_peer_line())) << agent.err();
  expect_receive_at_the_host_egress(agent);
  EXPECT_EQ(agent.interrupt(), 0);
}

// A container going while the agent runs: its interface is retired, and its peer link's pin and
// map entries go with it (the maps themselves stay pinned for the other interfaces).
TEST_F(AgentRedirectPeerTest, AContainerGoneTakesItsPeerLinksPinAndMapEntries) {
  test::e2e::Agent agent(pinned_args());
  ASSERT_TRUE(agent.serving()) << agent.err();
  ASSERT_TRUE(agent.wait_for_log(at_peer_line())) << agent.err();
  const std::string pin = path_ + "/links/" + std::to_string(host_veth_ifindex_) + "_peer";
  EXPECT_EQ(access(pin.c_str(), F_OK), 0);
  test::must("ip netns del " + container_.ns.name());
  ASSERT_TRUE(agent.wait_for_log_where([&](const test::LogRecord& r) {
    return r.at("msg").starts_with("detached " + container_.host + " (gone");
  })) << agent.err();
  EXPECT_NE(access(pin.c_str(), F_OK), 0);
  Fd peers(bpf_obj_get((path_ + "/peers").c_str()));
  Fd received_at_peer(bpf_obj_get((path_ + "/received_at_peer").c_str()));
  ASSERT_TRUE(peers.valid() && received_at_peer.valid());
  psnic_peer_key key{}, next{};
  const psnic_peer_key* previous = nullptr;
  while (bpf_map_get_next_key(peers.get(), previous, &next) == 0) {
    uint32_t host = 0;
    bpf_map_lookup_elem(peers.get(), &next, &host);
    EXPECT_NE(host, host_veth_ifindex_);
    key = next;
    previous = &key;
  }
  uint8_t flag = 0;
  EXPECT_NE(bpf_map_lookup_elem(received_at_peer.get(), &host_veth_ifindex_, &flag), 0);
  EXPECT_EQ(agent.interrupt(), 0);
}

}  // namespace
}  // namespace psnic
