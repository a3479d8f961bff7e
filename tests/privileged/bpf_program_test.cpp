// psnic_ingress and psnic_egress (bpf/traffic.bpf.c) run by the kernel with BPF_PROG_TEST_RUN:
// a table of packets, each through both programs, once and 1000 times in a row. Every run must
// let the packet go on untouched (TC_ACT_UNSPEC, data out == data in) and count exactly the
// frame's bytes and one packet in its own direction (a GSO skb too: one packet of its whole
// length), nothing in the other, and never write the reserved field.
//
// What the kernel does with a tc program's test run (net/bpf/test_run.c, seen on 6.18):
// - The skb's device is ctx.ifindex's device in the caller's network namespace when ctx.ifindex
//   is above 1 (ENODEV when there is none), else that namespace's loopback (ifindex 1). The
//   program's skb->ifindex is that device's; ctx_out.ifindex reports it.
// - ctx.gso_segs and ctx.gso_size go into the skb as given (gso_segs up to GSO_MAX_SEGS), with
//   no check against the length of the packet.
// - skb->len is the whole frame, Ethernet header included.
// - The frame must fit in one page beside the skb's headroom and shared info (3712 bytes with
//   4 KiB pages): a jumbo frame gets EINVAL. So does a frame whose EtherType says IPv4 (IPv6)
//   but which is too short for an IPv4 (IPv6) header.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/support/support.h"
#include "traffic.h"
#include "traffic.skel.h"

// The layout bpf/traffic.bpf.c writes and user space reads.
static_assert(sizeof(psnic_counters) == 24);
static_assert(offsetof(psnic_counters, bytes) == 0);
static_assert(offsetof(psnic_counters, packets) == 8);
static_assert(offsetof(psnic_counters, reserved) == 16);
static_assert(sizeof(psnic_traffic) == 48);
static_assert(offsetof(psnic_traffic, ingress) == 0);
static_assert(offsetof(psnic_traffic, egress) == 24);
// The kernel copies a per-CPU value out at a stride of its size rounded up to 8 bytes: an array
// of psnic_traffic has exactly that stride and alignment.
static_assert(alignof(psnic_traffic) == 8 && sizeof(psnic_traffic) % 8 == 0);

namespace psnic {
namespace {

constexpr uint32_t kTcActUnspec = 0xffffffff;  // TC_ACT_UNSPEC (-1), as the test run's retval
constexpr uint32_t kLoopback = 1;              // in every network namespace

// ---------------------------------------------------------------------------------------------
// Packets, in network byte order, with valid lengths and checksums.

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using Ipv4 = std::array<uint8_t, 4>;
using Ipv6 = std::array<uint8_t, 16>;

constexpr Mac kMacA = {0x02, 0, 0, 0, 0, 0x0a};  // locally administered
constexpr Mac kMacB = {0x02, 0, 0, 0, 0, 0x0b};
constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr Ipv4 kIpv4A = {192, 0, 2, 1};  // TEST-NET-1
constexpr Ipv4 kIpv4B = {192, 0, 2, 2};
// 2001:db8::1 and 2001:db8::2
constexpr Ipv6 kIpv6A = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr Ipv6 kIpv6B = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeLocalExperimental = 0x88b5;  // IEEE 802: no header follows
constexpr uint8_t kProtocolHopByHop = 0;
constexpr uint8_t kProtocolTcp = 6;
constexpr uint8_t kProtocolUdp = 17;
constexpr uint8_t kProtocolDestinationOptions = 60;

constexpr size_t kEthernetHeader = 14;
constexpr size_t kIpv4Header = 20;
constexpr size_t kTcpHeader = 20;

void put16(Bytes& to, uint16_t value) {
  to.push_back(static_cast<uint8_t>(value >> 8));
  to.push_back(static_cast<uint8_t>(value));
}

template <typename Range>
void put(Bytes& to, const Range& from) {
  to.insert(to.end(), std::begin(from), std::end(from));
}

// Bytes 0, 1, 2, ... so that a moved or changed byte shows.
Bytes payload(size_t size) {
  Bytes bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i);
  return bytes;
}

// RFC 1071 checksum of the concatenated parts.
uint16_t internet_checksum(std::initializer_list<const Bytes*> parts) {
  uint32_t sum = 0;
  size_t offset = 0;
  for (const Bytes* part : parts) {
    for (uint8_t byte : *part) sum += (offset++ % 2 == 0) ? byte << 8 : byte;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void set16(Bytes& bytes, size_t offset, uint16_t value) {
  bytes[offset] = static_cast<uint8_t>(value >> 8);
  bytes[offset + 1] = static_cast<uint8_t>(value);
}

Bytes ethernet_header(uint16_t ethertype, const Mac& destination = kMacB) {
  Bytes header;
  put(header, destination);
  put(header, kMacA);
  put16(header, ethertype);
  return header;
}

// The pseudo-headers TCP and UDP checksums cover, for kIpv4A -> kIpv4B and kIpv6A -> kIpv6B.
Bytes ipv4_pseudo_header(uint8_t protocol, size_t l4_size) {
  Bytes header;
  put(header, kIpv4A);
  put(header, kIpv4B);
  header.push_back(0);
  header.push_back(protocol);
  put16(header, static_cast<uint16_t>(l4_size));
  return header;
}

Bytes ipv6_pseudo_header(uint8_t protocol, size_t l4_size) {
  Bytes header;
  put(header, kIpv6A);
  put(header, kIpv6B);
  put16(header, 0);  // upper half of the 32-bit length
  put16(header, static_cast<uint16_t>(l4_size));
  put16(header, 0);
  header.push_back(0);
  header.push_back(protocol);
  return header;
}

// A TCP segment (ACK+PSH, no options) from port 40000 to 80, checksummed over `pseudo_header`.
Bytes tcp_segment(const Bytes& data, const Bytes& pseudo_header) {
  Bytes segment;
  put16(segment, 40000);
  put16(segment, 80);
  put(segment, std::array<uint8_t, 4>{0, 0, 0x10, 0x00});  // sequence number
  put(segment, std::array<uint8_t, 4>{0, 0, 0x20, 0x00});  // acknowledgement number
  segment.push_back(5 << 4);                               // data offset: 5 words
  segment.push_back(0x18);                                 // ACK, PSH
  put16(segment, 64240);                                   // window
  put16(segment, 0);                                       // checksum, below
  put16(segment, 0);                                       // urgent pointer
  put(segment, data);
  set16(segment, 16, internet_checksum({&pseudo_header, &segment}));
  return segment;
}

// A UDP datagram from port 40000 to 53, checksummed over `pseudo_header`.
Bytes udp_datagram(const Bytes& data, const Bytes& pseudo_header) {
  Bytes datagram;
  put16(datagram, 40000);
  put16(datagram, 53);
  put16(datagram, static_cast<uint16_t>(8 + data.size()));
  put16(datagram, 0);  // checksum, below
  put(datagram, data);
  set16(datagram, 6, internet_checksum({&pseudo_header, &datagram}));
  return datagram;
}

Bytes ipv4_packet(uint8_t protocol, const Bytes& l4) {
  Bytes packet;
  packet.push_back(0x45);  // version 4, 5-word header
  packet.push_back(0);     // DSCP, ECN
  put16(packet, static_cast<uint16_t>(kIpv4Header + l4.size()));
  put16(packet, 0x1234);  // identification
  put16(packet, 0x4000);  // don't fragment
  packet.push_back(64);   // TTL
  packet.push_back(protocol);
  put16(packet, 0);  // header checksum, below
  put(packet, kIpv4A);
  put(packet, kIpv4B);
  set16(packet, 10, internet_checksum({&packet}));
  put(packet, l4);
  return packet;
}

// `payload_length` counts extension headers and the upper-layer packet.
Bytes ipv6_header(uint8_t next_header, size_t payload_length) {
  Bytes header = {0x60, 0, 0, 0};  // version 6, no traffic class, no flow label
  put16(header, static_cast<uint16_t>(payload_length));
  header.push_back(next_header);
  header.push_back(64);  // hop limit
  put(header, kIpv6A);
  put(header, kIpv6B);
  return header;
}

// A Hop-by-Hop or a Destination Options header (same format): 8 bytes, only a PadN option.
Bytes ipv6_options_header(uint8_t next_header) {
  return {next_header, 0 /* 8 bytes in all */, 1 /* PadN */, 4, 0, 0, 0, 0};
}

// Ethernet + IPv4 + TCP, `frame_size` bytes in all.
Bytes ipv4_tcp_frame(size_t frame_size) {
  const size_t data_size = frame_size - kEthernetHeader - kIpv4Header - kTcpHeader;
  Bytes frame = ethernet_header(kEtherTypeIpv4);
  put(frame, ipv4_packet(kProtocolTcp,
                         tcp_segment(payload(data_size),
                                     ipv4_pseudo_header(kProtocolTcp, kTcpHeader + data_size))));
  return frame;
}

// An 802.1Q tag (VLAN `vlan_id`, priority 0) in front of IPv4 + TCP, `frame_size` bytes in all.
Bytes vlan_ipv4_tcp_frame(uint16_t vlan_id, size_t frame_size) {
  Bytes untagged = ipv4_tcp_frame(frame_size - 4);
  Bytes frame = ethernet_header(kEtherTypeVlan);
  put16(frame, vlan_id);
  frame.insert(frame.end(), untagged.begin() + 12, untagged.end());  // its EtherType onwards
  return frame;
}

// Ethernet + IPv6 + one options header of type `extension` + UDP with `data_size` bytes.
Bytes ipv6_udp_frame(uint8_t extension, size_t data_size) {
  Bytes udp = udp_datagram(payload(data_size), ipv6_pseudo_header(kProtocolUdp, 8 + data_size));
  Bytes options = ipv6_options_header(kProtocolUdp);
  Bytes frame = ethernet_header(kEtherTypeIpv6);
  put(frame, ipv6_header(extension, options.size() + udp.size()));
  put(frame, options);
  put(frame, udp);
  return frame;
}

// Who has 192.0.2.2? Tell 192.0.2.1: 42 bytes, unpadded, as the local stack hands it to tc.
Bytes arp_request_frame() {
  Bytes frame = ethernet_header(kEtherTypeArp, kBroadcast);
  put16(frame, 1);       // hardware type: Ethernet
  put16(frame, 0x0800);  // protocol type: IPv4
  frame.push_back(6);
  frame.push_back(4);
  put16(frame, 1);  // request
  put(frame, kMacA);
  put(frame, kIpv4A);
  put(frame, Mac{});
  put(frame, kIpv4B);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Row {
  std::string name;  // for the test's name: letters and digits
  std::string description;
  Bytes packet;
  uint32_t gso_segs = 0;  // ctx.gso_segs and ctx.gso_size; 0: not a GSO skb
  uint32_t gso_size = 0;
  int refused_with = 0;  // the errno the kernel refuses the test run with (nothing runs), or 0
  uint32_t verdict = kTcActUnspec;
};

void PrintTo(const Row& row, std::ostream* os) {
  *os << row.description << " (" << row.packet.size() << " bytes)";
}

std::vector<Row> rows() {
  return {
      {.name = "Ipv4Tcp",
       .description = "Ethernet + IPv4 + TCP, 64-byte frame",
       .packet = ipv4_tcp_frame(64)},
      {.name = "Ipv4TcpFullMtu",
       .description = "Ethernet + IPv4 + TCP, 1500-byte IP packet",
       .packet = ipv4_tcp_frame(1514)},
      {.name = "Ipv4TcpGso",
       .description = "Ethernet + IPv4 + TCP, GSO skb of 4 segments of 536 bytes",
       .packet = ipv4_tcp_frame(kEthernetHeader + kIpv4Header + kTcpHeader + 4 * 536),
       .gso_segs = 4,
       .gso_size = 536},
      {.name = "Ipv6HopByHopUdp",
       .description = "Ethernet + IPv6 + Hop-by-Hop Options + UDP",
       .packet = ipv6_udp_frame(kProtocolHopByHop, 32)},
      {.name = "Ipv6DestinationOptionsUdp",
       .description = "Ethernet + IPv6 + Destination Options + UDP",
       .packet = ipv6_udp_frame(kProtocolDestinationOptions, 32)},
      {.name = "ArpRequest",
       .description = "ARP request, broadcast",
       .packet = arp_request_frame()},
      {.name = "VlanIpv4Tcp",
       .description = "802.1Q VLAN 100 tag + IPv4 + TCP",
       .packet = vlan_ipv4_tcp_frame(100, 68)},
      {.name = "BareEthernet",
       .description = "bare Ethernet header, EtherType 0x88b5, no payload",
       .packet = ethernet_header(kEtherTypeLocalExperimental)},
      {.name = "Jumbo",
       .description = "Ethernet + IPv4 + TCP, 9000-byte jumbo frame: more than a test run takes",
       .packet = ipv4_tcp_frame(9000),
       .refused_with = EINVAL},
      {.name = "TruncatedIpv4",
       .description = "Ethernet header saying IPv4, nothing after it",
       .packet = ethernet_header(kEtherTypeIpv4),
       .refused_with = EINVAL},
  };
}

// ---------------------------------------------------------------------------------------------
// The kernel side.

struct TrafficSkeletonDeleter {
  void operator()(traffic_bpf* skeleton) const { traffic_bpf__destroy(skeleton); }
};
using TrafficSkeleton = std::unique_ptr<traffic_bpf, TrafficSkeletonDeleter>;

enum class Direction { kIngress, kEgress };

void PrintTo(Direction direction, std::ostream* os) {
  *os << (direction == Direction::kIngress ? "psnic_ingress" : "psnic_egress");
}

Direction other(Direction direction) {
  return direction == Direction::kIngress ? Direction::kEgress : Direction::kIngress;
}

int program_fd(const traffic_bpf& skeleton, Direction direction) {
  return bpf_program__fd(direction == Direction::kIngress ? skeleton.progs.psnic_ingress
                                                          : skeleton.progs.psnic_egress);
}

// One direction's counters, summed over CPUs.
struct Counters {
  uint64_t bytes = 0;
  uint64_t packets = 0;
  uint64_t reserved = 0;  // must stay 0: no psnic writes it any more
  bool operator==(const Counters&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Counters& c) {
  return os << "{bytes " << c.bytes << ", packets " << c.packets << ", reserved " << c.reserved
            << "}";
}

struct Traffic {
  Counters ingress;
  Counters egress;
  const Counters& in(Direction direction) const {
    return direction == Direction::kIngress ? ingress : egress;
  }
  bool operator==(const Traffic&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Traffic& t) {
  return os << "{ingress " << t.ingress << ", egress " << t.egress << "}";
}

// Inserts a zeroed value for `ifindex` on every CPU, as the agent does: the program counts only
// interfaces that have a key. Returns 0 or an errno.
int insert_key(int map_fd, uint32_t ifindex) {
  std::vector<psnic_traffic> zeroed(static_cast<size_t>(libbpf_num_possible_cpus()));
  return bpf_map_update_elem(map_fd, &ifindex, zeroed.data(), BPF_NOEXIST) < 0 ? errno : 0;
}

// The counters of `ifindex` summed over all possible CPUs; nullopt when it has no key.
std::optional<Traffic> totals(int map_fd, uint32_t ifindex) {
  std::vector<psnic_traffic> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
  if (bpf_map_lookup_elem(map_fd, &ifindex, per_cpu.data()) < 0) return std::nullopt;
  Traffic sum;
  auto add = [](Counters& to, const psnic_counters& from) {
    to.bytes += from.bytes;
    to.packets += from.packets;
    to.reserved += from.reserved;
  };
  for (const psnic_traffic& cpu : per_cpu) {
    add(sum.ingress, cpu.ingress);
    add(sum.egress, cpu.egress);
  }
  return sum;
}

std::set<uint32_t> keys(int map_fd) {
  std::set<uint32_t> found;
  uint32_t key = 0;
  uint32_t next = 0;
  const void* previous = nullptr;  // the first key
  while (bpf_map_get_next_key(map_fd, previous, &next) == 0) {
    found.insert(next);
    key = next;
    previous = &key;
  }
  return found;
}

struct TestRun {
  int error = 0;  // errno of a refused run, else 0
  uint32_t retval = 0;
  Bytes data_out;
  __sk_buff ctx_out{};
};

TestRun test_run(int prog_fd, const Bytes& packet, const __sk_buff& ctx, int repeat) {
  TestRun run;
  // Room beyond the input, so that a packet the program made longer would show.
  run.data_out.resize(packet.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = packet.data();
  opts.data_size_in = static_cast<uint32_t>(packet.size());
  opts.data_out = run.data_out.data();
  opts.data_size_out = static_cast<uint32_t>(run.data_out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.ctx_out = &run.ctx_out;
  opts.ctx_size_out = sizeof(run.ctx_out);
  opts.repeat = repeat;
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err < 0) {
    run.error = -err;
    run.data_out.clear();
    return run;
  }
  run.retval = opts.retval;
  run.data_out.resize(opts.data_size_out);
  return run;
}

__sk_buff context(uint32_t ifindex, uint32_t gso_segs = 0, uint32_t gso_size = 0) {
  __sk_buff ctx{};  // the kernel refuses any field it does not take set
  ctx.ifindex = ifindex;
  ctx.gso_segs = gso_segs;
  ctx.gso_size = gso_size;
  return ctx;
}

// Where two byte strings first differ ("none" when they are equal).
std::string first_difference(const Bytes& a, const Bytes& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) return "byte " + std::to_string(i);
  return a.size() == b.size() ? "none" : "length";
}

std::string error_name(int error) { return error == 0 ? "success" : std::strerror(error); }

// ---------------------------------------------------------------------------------------------
// The tests.

using Param = std::tuple<Row, Direction, int /* repeat */>;

// Every test loads its own copy of the programs: its map starts without keys.
template <typename GTestBase>
class WithTrafficProgram : public GTestBase {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    skeleton_.reset(traffic_bpf__open_and_load());
    ASSERT_TRUE(skeleton_) << "traffic_bpf__open_and_load: " << error_name(errno);
    map_fd_ = bpf_map__fd(skeleton_->maps.traffic);
  }

  TrafficSkeleton skeleton_;
  int map_fd_ = -1;
};

class BpfProgramTest : public WithTrafficProgram<testing::TestWithParam<Param>> {};

TEST_P(BpfProgramTest, CountsThePacketInItsDirectionAndLetsItGoOn) {
  const auto& [row, direction, repeat] = GetParam();
  ASSERT_EQ(insert_key(map_fd_, kLoopback), 0);

  const TestRun run = test_run(program_fd(*skeleton_, direction), row.packet,
                               context(kLoopback, row.gso_segs, row.gso_size), repeat);

  EXPECT_EQ(keys(map_fd_), std::set<uint32_t>{kLoopback}) << "the program made a key";
  if (row.refused_with != 0) {
    EXPECT_EQ(error_name(run.error), error_name(row.refused_with));
    EXPECT_EQ(totals(map_fd_, kLoopback), Traffic{}) << "counted a packet the kernel refused";
    return;
  }
  ASSERT_EQ(error_name(run.error), "success") << "BPF_PROG_TEST_RUN";
  EXPECT_EQ(run.retval, row.verdict);
  EXPECT_EQ(run.data_out.size(), row.packet.size()) << "data_size_out";
  EXPECT_EQ(first_difference(run.data_out, row.packet), "none") << "data out differs from in";
  EXPECT_EQ(run.ctx_out.ifindex, kLoopback) << "the device the program ran on";

  const uint64_t runs = static_cast<uint64_t>(repeat);
  const Counters expected = {.bytes = row.packet.size() * runs, .packets = runs};
  const std::optional<Traffic> counted = totals(map_fd_, kLoopback);
  ASSERT_TRUE(counted) << "the key for the loopback is gone";
  EXPECT_EQ(counted->in(direction), expected) << "counted in its own direction";
  EXPECT_EQ(counted->in(other(direction)), Counters{}) << "counted in the other direction";
}

// "<row>_Ingress|Egress_x<repeat>", for BpfProgramTest's and SplitProgramTest's rows alike.
template <typename P>
std::string param_name(const testing::TestParamInfo<P>& info) {
  const auto& [row, direction, repeat] = info.param;
  return row.name + (direction == Direction::kIngress ? "_Ingress" : "_Egress") + "_x" +
         std::to_string(repeat);
}

INSTANTIATE_TEST_SUITE_P(Packets, BpfProgramTest,
                         testing::Combine(testing::ValuesIn(rows()),
                                          testing::Values(Direction::kIngress, Direction::kEgress),
                                          testing::Values(1, 1000)),
                         param_name<Param>);

class BpfProgramContextTest : public WithTrafficProgram<testing::Test> {};

// An ifindex no device of the caller's network namespace has.
uint32_t unused_ifindex(uint32_t from) {
  char name[IF_NAMESIZE];
  while (if_indextoname(from, name) != nullptr) ++from;
  return from;
}

// The agent inserts keys for the interfaces it watches; a packet on any other interface is let
// through uncounted, and the program makes no key for it.
TEST_F(BpfProgramContextTest, PacketOnAnInterfaceWithoutAKeyIsNotCounted) {
  constexpr uint32_t kWatched = 424242;  // a key needs no device
  ASSERT_EQ(insert_key(map_fd_, kWatched), 0);
  const Bytes packet = ipv4_tcp_frame(64);

  for (Direction direction : {Direction::kIngress, Direction::kEgress}) {
    SCOPED_TRACE(testing::PrintToString(direction));
    const TestRun run =
        test_run(program_fd(*skeleton_, direction), packet, context(kLoopback), 100);
    ASSERT_EQ(error_name(run.error), "success") << "BPF_PROG_TEST_RUN";
    EXPECT_EQ(run.retval, kTcActUnspec);
    EXPECT_EQ(first_difference(run.data_out, packet), "none") << "data out differs from in";
  }

  EXPECT_EQ(keys(map_fd_), std::set<uint32_t>{kWatched}) << "the program made a key";
  EXPECT_EQ(totals(map_fd_, kWatched), Traffic{});
  EXPECT_EQ(totals(map_fd_, kLoopback), std::nullopt);
}

// ctx.ifindex above 1 picks the device in the caller's namespace; 0 and 1 mean its loopback.
// Run from a thread in a namespace of the test's own, on a veth made there with an ifindex the
// test's original namespace lacks: a test run there would fail with ENODEV.
TEST_F(BpfProgramContextTest, CountsUnderTheIfindexOfTheContextDevice) {
  test::TestNetns netns('b');
  const uint32_t veth = unused_ifindex(4242);
  netns.ip("link add psnictestv0 index " + std::to_string(veth) +
           " type veth peer name psnictestv1");
  const Bytes packet = ipv4_tcp_frame(100);

  std::thread in_netns([&] {
    const int netns_fd = open(netns.path().c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(netns_fd, 0) << netns.path();
    ASSERT_EQ(setns(netns_fd, CLONE_NEWNET), 0) << error_name(errno);
    close(netns_fd);
    ASSERT_EQ(if_nametoindex("psnictestv0"), veth) << "psnictestv0 in " << netns.name();
    ASSERT_EQ(insert_key(map_fd_, veth), 0);
    ASSERT_EQ(insert_key(map_fd_, kLoopback), 0);

    const int prog = program_fd(*skeleton_, Direction::kEgress);
    TestRun run = test_run(prog, packet, context(veth), 3);
    ASSERT_EQ(error_name(run.error), "success") << "BPF_PROG_TEST_RUN on the veth";
    EXPECT_EQ(run.ctx_out.ifindex, veth);
    run = test_run(prog, packet, context(0), 5);
    ASSERT_EQ(error_name(run.error), "success") << "BPF_PROG_TEST_RUN with ifindex 0";
    EXPECT_EQ(run.ctx_out.ifindex, kLoopback);

    Traffic on_veth;
    on_veth.egress = {.bytes = 3 * packet.size(), .packets = 3};
    Traffic on_loopback;
    on_loopback.egress = {.bytes = 5 * packet.size(), .packets = 5};
    EXPECT_EQ(totals(map_fd_, veth), on_veth);
    EXPECT_EQ(totals(map_fd_, kLoopback), on_loopback);
  });
  in_netns.join();
}

TEST_F(BpfProgramContextTest, IfindexOfNoDeviceIsRefused) {
  const uint32_t unused = unused_ifindex(4242);
  ASSERT_EQ(insert_key(map_fd_, unused), 0);

  const TestRun run =
      test_run(program_fd(*skeleton_, Direction::kIngress), ipv4_tcp_frame(64), context(unused), 1);

  EXPECT_EQ(error_name(run.error), error_name(ENODEV));
  EXPECT_EQ(totals(map_fd_, unused), Traffic{});
}

}  // namespace
}  // namespace psnic

// ---------------------------------------------------------------------------------------------
// --split protocol: psnic_split_in and psnic_split_eg count each packet into the slot of its
// protocol in traffic_proto (psnic_traffic_split), and nothing anywhere else.

namespace psnic {
namespace {

constexpr uint16_t kEtherTypeQinQ = 0x88a8;
constexpr uint8_t kProtocolIcmp = 1;
constexpr uint8_t kProtocolGre = 47;
constexpr uint8_t kProtocolRouting = 43;
constexpr uint8_t kProtocolFragment = 44;
constexpr uint8_t kProtocolIcmpv6 = 58;

// An echo request: type, code, checksum, identifier, sequence, data.
Bytes icmp_echo(uint8_t type, const Bytes& data) {
  Bytes message = {type, 0, 0, 0, 0x12, 0x34, 0, 1};
  put(message, data);
  set16(message, 2, internet_checksum({&message}));
  return message;
}

Bytes ipv4_frame(uint8_t protocol, const Bytes& l4) {
  Bytes frame = ethernet_header(kEtherTypeIpv4);
  put(frame, ipv4_packet(protocol, l4));
  return frame;
}

Bytes ipv4_udp_frame(size_t data_size) {
  return ipv4_frame(kProtocolUdp, udp_datagram(payload(data_size),
                                               ipv4_pseudo_header(kProtocolUdp, 8 + data_size)));
}

// A fragment of a UDP datagram that is not the first: no UDP header in it, only the protocol byte
// says UDP.
Bytes ipv4_later_fragment_frame() {
  Bytes frame = ipv4_udp_frame(64);
  set16(frame, kEthernetHeader + 6, 0x2000 | 185);  // more fragments, offset 185 * 8
  set16(frame, kEthernetHeader + 10, 0);
  return frame;
}

// IPv4 whose header has `words` 4-byte words (options are NOPs): `cut` bytes of the frame removed
// from the end, so that the header may be cut short.
Bytes ipv4_options_tcp_frame(uint8_t words, size_t cut = 0) {
  Bytes frame = ipv4_tcp_frame(64);
  const Bytes options((words - 5) * 4, 1 /* NOP */);
  frame.insert(frame.begin() + kEthernetHeader + kIpv4Header, options.begin(), options.end());
  frame[kEthernetHeader] = static_cast<uint8_t>(0x40 | words);
  frame.resize(frame.size() - cut);
  return frame;
}

// Ethernet + IPv6 + `extensions` (each 8 bytes, chained in order) + an upper-layer packet.
Bytes ipv6_frame(const std::vector<uint8_t>& extensions, uint8_t protocol, const Bytes& l4) {
  Bytes chain;
  for (size_t i = 0; i < extensions.size(); ++i) {
    const uint8_t next = i + 1 < extensions.size() ? extensions[i + 1] : protocol;
    if (extensions[i] == kProtocolFragment)
      put(chain, std::array<uint8_t, 8>{next, 0, 0x05, 0xc8, 0, 0, 0, 7});  // offset 1480
    else if (extensions[i] == kProtocolRouting)
      put(chain, std::array<uint8_t, 8>{next, 0, 4 /* type */, 0 /* segments left */});
    else
      put(chain, ipv6_options_header(next));
  }
  Bytes frame = ethernet_header(kEtherTypeIpv6);
  put(frame, ipv6_header(extensions.empty() ? protocol : extensions[0], chain.size() + l4.size()));
  put(frame, chain);
  put(frame, l4);
  return frame;
}

Bytes ipv6_tcp(size_t data_size) {
  return tcp_segment(payload(data_size), ipv6_pseudo_header(kProtocolTcp, kTcpHeader + data_size));
}
Bytes ipv6_udp(size_t data_size) {
  return udp_datagram(payload(data_size), ipv6_pseudo_header(kProtocolUdp, 8 + data_size));
}

// 802.1ad outer tag, 802.1Q inner tag, then IPv6 + UDP.
Bytes qinq_ipv6_udp_frame() {
  const Bytes untagged = ipv6_frame({}, kProtocolUdp, ipv6_udp(32));
  Bytes frame = ethernet_header(kEtherTypeQinQ);
  put16(frame, 200);
  put16(frame, kEtherTypeVlan);
  put16(frame, 100);
  frame.insert(frame.end(), untagged.begin() + 12, untagged.end());
  return frame;
}

struct SplitRow {
  std::string name;
  std::string description;
  Bytes packet;
  int protocol;  // the psnic_protocol slot that must count it
  uint32_t gso_segs = 0;
  uint32_t gso_size = 0;
};

void PrintTo(const SplitRow& row, std::ostream* os) {
  *os << row.description << " (" << row.packet.size() << " bytes)";
}

std::vector<SplitRow> split_rows() {
  const Bytes hop_by_hop_cut = [] {
    Bytes frame = ipv6_frame({kProtocolHopByHop}, kProtocolUdp, {});
    frame[kEthernetHeader + 40 + 1] = 4;  // says 40 bytes; 8 are there
    return frame;
  }();
  const Bytes vlan_cut = [] {
    Bytes frame = ethernet_header(kEtherTypeVlan);
    put16(frame, 100);  // the TCI, then nothing
    return frame;
  }();
  return {
      {"Ipv4Tcp", "IPv4 + TCP", ipv4_tcp_frame(64), PSNIC_PROTOCOL_TCP},
      {"Ipv4Udp", "IPv4 + UDP", ipv4_udp_frame(100), PSNIC_PROTOCOL_UDP},
      {"Ipv4Icmp", "IPv4 + ICMP echo request", ipv4_frame(kProtocolIcmp, icmp_echo(8, payload(56))),
       PSNIC_PROTOCOL_ICMP},
      {"Ipv4Gre", "IPv4 + GRE: another protocol", ipv4_frame(kProtocolGre, payload(40)),
       PSNIC_PROTOCOL_OTHER},
      {"Ipv4Icmpv6Number", "IPv4 with protocol 58, ICMPv6's number: not ICMP in IPv4",
       ipv4_frame(kProtocolIcmpv6, payload(40)), PSNIC_PROTOCOL_OTHER},
      {"Ipv4Options", "IPv4 with 8 bytes of options + TCP", ipv4_options_tcp_frame(7),
       PSNIC_PROTOCOL_TCP},
      {"Ipv4LaterFragment", "IPv4 fragment at offset 1480 of a UDP datagram",
       ipv4_later_fragment_frame(), PSNIC_PROTOCOL_UDP},
      {"Ipv4HeaderCut", "IPv4 header saying 60 bytes, 20 there: truncated",
       ipv4_options_tcp_frame(15, 40 + kTcpHeader + 10), PSNIC_PROTOCOL_OTHER},
      {"Ipv4TcpGso", "IPv4 + TCP, GSO skb of 4 segments of 536 bytes",
       ipv4_tcp_frame(kEthernetHeader + kIpv4Header + kTcpHeader + 4 * 536), PSNIC_PROTOCOL_TCP, 4,
       536},
      {"Ipv6Tcp", "IPv6 + TCP", ipv6_frame({}, kProtocolTcp, ipv6_tcp(20)), PSNIC_PROTOCOL_TCP},
      {"Ipv6Udp", "IPv6 + UDP", ipv6_frame({}, kProtocolUdp, ipv6_udp(20)), PSNIC_PROTOCOL_UDP},
      {"Ipv6Icmpv6", "IPv6 + ICMPv6 echo request",
       ipv6_frame({}, kProtocolIcmpv6, icmp_echo(128, payload(56))), PSNIC_PROTOCOL_ICMP},
      {"Ipv6IcmpNumber", "IPv6 with next header 1, ICMP's number: not ICMPv6",
       ipv6_frame({}, kProtocolIcmp, payload(16)), PSNIC_PROTOCOL_OTHER},
      {"Ipv6HopByHopUdp", "IPv6 + Hop-by-Hop Options + UDP", ipv6_udp_frame(kProtocolHopByHop, 32),
       PSNIC_PROTOCOL_UDP},
      {"Ipv6FourExtensionsTcp", "IPv6 + Hop-by-Hop + Routing + Fragment + Destination + TCP",
       ipv6_frame(
           {kProtocolHopByHop, kProtocolRouting, kProtocolFragment, kProtocolDestinationOptions},
           kProtocolTcp, ipv6_tcp(20)),
       PSNIC_PROTOCOL_TCP},
      {"Ipv6LaterFragment", "IPv6 + Fragment (offset 1480) of a UDP datagram, no UDP header",
       ipv6_frame({kProtocolFragment}, kProtocolUdp, payload(64)), PSNIC_PROTOCOL_UDP},
      {"Ipv6FiveExtensionsUdp", "IPv6 + 5 extension headers + UDP: the most walked",
       ipv6_frame({kProtocolHopByHop, kProtocolDestinationOptions, kProtocolRouting,
                   kProtocolFragment, kProtocolDestinationOptions},
                  kProtocolUdp, ipv6_udp(8)),
       PSNIC_PROTOCOL_UDP},
      {"Ipv6SixExtensionsUdp", "IPv6 + 6 extension headers + UDP: more than are walked",
       ipv6_frame({kProtocolHopByHop, kProtocolDestinationOptions, kProtocolRouting,
                   kProtocolFragment, kProtocolDestinationOptions, kProtocolDestinationOptions},
                  kProtocolUdp, ipv6_udp(8)),
       PSNIC_PROTOCOL_OTHER},
      {"Ipv6HopByHopCut", "IPv6 + Hop-by-Hop saying 40 bytes, 8 there: truncated", hop_by_hop_cut,
       PSNIC_PROTOCOL_OTHER},
      {"Ipv6FragmentHeaderMissing", "IPv6 saying a Fragment header follows, none there",
       ipv6_frame({}, kProtocolFragment, {}), PSNIC_PROTOCOL_OTHER},
      {"VlanIpv4Tcp", "802.1Q tag + IPv4 + TCP", vlan_ipv4_tcp_frame(100, 68), PSNIC_PROTOCOL_TCP},
      {"QinQIpv6Udp", "802.1ad + 802.1Q tags + IPv6 + UDP", qinq_ipv6_udp_frame(),
       PSNIC_PROTOCOL_UDP},
      {"VlanCut", "802.1Q tag cut after its TCI: truncated", vlan_cut, PSNIC_PROTOCOL_OTHER},
      {"ArpRequest", "ARP request", arp_request_frame(), PSNIC_PROTOCOL_OTHER},
      {"BareEthernet", "bare Ethernet header, EtherType 0x88b5",
       ethernet_header(kEtherTypeLocalExperimental), PSNIC_PROTOCOL_OTHER},
  };
}

int split_program_fd(const traffic_bpf& skeleton, Direction direction) {
  return bpf_program__fd(direction == Direction::kIngress ? skeleton.progs.psnic_split_in
                                                          : skeleton.progs.psnic_split_eg);
}

// traffic_proto's counters of `ifindex` per protocol, summed over CPUs.
std::optional<std::array<Traffic, PSNIC_PROTOCOLS>> split_totals(int map_fd, uint32_t ifindex) {
  std::vector<psnic_traffic_split> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
  if (bpf_map_lookup_elem(map_fd, &ifindex, per_cpu.data()) < 0) return std::nullopt;
  std::array<Traffic, PSNIC_PROTOCOLS> sum{};
  auto add = [](Counters& to, const psnic_counters& from) {
    to.bytes += from.bytes;
    to.packets += from.packets;
    to.reserved += from.reserved;
  };
  for (const psnic_traffic_split& cpu : per_cpu)
    for (int p = 0; p < PSNIC_PROTOCOLS; ++p) {
      add(sum[p].ingress, cpu.protocol[p].ingress);
      add(sum[p].egress, cpu.protocol[p].egress);
    }
  return sum;
}

using SplitParam = std::tuple<SplitRow, Direction, int /* repeat */>;

class SplitProgramTest : public WithTrafficProgram<testing::TestWithParam<SplitParam>> {
 protected:
  void SetUp() override {
    WithTrafficProgram::SetUp();
    split_map_fd_ = bpf_map__fd(skeleton_->maps.traffic_proto);
  }
  int split_map_fd_ = -1;
};

TEST_P(SplitProgramTest, CountsThePacketInItsProtocolAndDirectionOnly) {
  const auto& [row, direction, repeat] = GetParam();
  std::vector<psnic_traffic_split> zeroed(static_cast<size_t>(libbpf_num_possible_cpus()));
  ASSERT_EQ(bpf_map_update_elem(split_map_fd_, &kLoopback, zeroed.data(), BPF_NOEXIST), 0);
  ASSERT_EQ(insert_key(map_fd_, kLoopback), 0);

  const TestRun run = test_run(split_program_fd(*skeleton_, direction), row.packet,
                               context(kLoopback, row.gso_segs, row.gso_size), repeat);

  ASSERT_EQ(error_name(run.error), "success") << "BPF_PROG_TEST_RUN";
  EXPECT_EQ(run.retval, kTcActUnspec);
  EXPECT_EQ(first_difference(run.data_out, row.packet), "none") << "data out differs from in";
  const std::optional<std::array<Traffic, PSNIC_PROTOCOLS>> counted =
      split_totals(split_map_fd_, kLoopback);
  ASSERT_TRUE(counted) << "the key for the loopback is gone";
  const uint64_t runs = static_cast<uint64_t>(repeat);
  for (int p = 0; p < PSNIC_PROTOCOLS; ++p) {
    SCOPED_TRACE("protocol " + std::to_string(p) + " (tcp, udp, icmp, other)");
    Traffic expected;
    if (p == row.protocol)
      (direction == Direction::kIngress ? expected.ingress : expected.egress) = {
          .bytes = row.packet.size() * runs, .packets = runs};
    EXPECT_EQ((*counted)[p], expected);
  }
  // The unsplit map is not counted into as well.
  EXPECT_EQ(totals(map_fd_, kLoopback), Traffic{});
  EXPECT_EQ(keys(split_map_fd_), std::set<uint32_t>{kLoopback}) << "the program made a key";
}

INSTANTIATE_TEST_SUITE_P(Packets, SplitProgramTest,
                         testing::Combine(testing::ValuesIn(split_rows()),
                                          testing::Values(Direction::kIngress, Direction::kEgress),
                                          testing::Values(1, 100)),
                         param_name<SplitParam>);

}  // namespace
}  // namespace psnic
