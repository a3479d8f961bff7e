// ns per packet of psnic's tc program against a program that does nothing, and against the
// program as it was while it also counted GSO segments (bench/segments.bpf.c), all timed by the
// kernel with BPF_PROG_TEST_RUN on the same 64-byte and 1500-byte Ethernet + IPv4 + TCP frames.
// Then --split protocol's table: per frame kind (IPv4/IPv6 TCP, UDP, ICMP, a fragment, a VLAN
// tag, a truncated header, a GSO skb), the empty program, psnic unsplit, psnic split, and the
// split parsed with bpf_skb_load_bytes (bench/split_load_bytes.bpf.c), taking turns. Last, the
// receive at the container-side peer: psnic_egress with its received_at_peer lookup against
// psnic_ingress (the same program without it) and psnic_peer_ingress, which keys by skb->dev's
// namespace cookie.
//
// psnic_ingress runs with the loopback's key inserted, so every run takes the counting path (the
// bench checks the counters at the end; the segments program likewise). Each call runs a program
// kRepeat times on one skb and the kernel returns the average in whole nanoseconds (rounded
// down). The programs take turns, the first one changing every round, over kRounds rounds; the
// table shows the median, the spread across rounds (min, max, standard deviation: the machine's
// noise) and the ratios of the medians: psnic / empty (target: at most 2x), and with segments /
// psnic (what counting segments cost).
//
// Needs root (loading BPF programs and BPF_PROG_TEST_RUN need CAP_BPF and CAP_NET_ADMIN).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "empty.skel.h"
#include "segments.skel.h"
#include "split_load_bytes.skel.h"
#include "traffic.h"
#include "traffic.skel.h"

namespace psnic {
namespace {

constexpr int kRepeat = 1'000'000;  // runs per BPF_PROG_TEST_RUN call
constexpr int kRounds = 15;
constexpr uint32_t kLoopback = 1;  // the skb's device when ctx.ifindex is 0 or 1
constexpr uint32_t kTcActUnspec = 0xffffffff;
constexpr double kTargetRatio = 2.0;

struct TrafficDeleter {
  void operator()(traffic_bpf* skeleton) const { traffic_bpf__destroy(skeleton); }
};
struct EmptyDeleter {
  void operator()(empty_bpf* skeleton) const { empty_bpf__destroy(skeleton); }
};
struct SegmentsDeleter {
  void operator()(segments_bpf* skeleton) const { segments_bpf__destroy(skeleton); }
};
struct LoadBytesDeleter {
  void operator()(split_load_bytes_bpf* skeleton) const { split_load_bytes_bpf__destroy(skeleton); }
};

using Bytes = std::vector<uint8_t>;

void put16(Bytes& to, size_t offset, uint16_t value) {
  to[offset] = static_cast<uint8_t>(value >> 8);
  to[offset + 1] = static_cast<uint8_t>(value);
}

// RFC 1071 checksum of bytes [begin, end) of `bytes`, plus `sum`.
uint16_t checksum(const Bytes& bytes, size_t begin, size_t end, uint32_t sum = 0) {
  for (size_t i = begin; i < end; ++i) sum += ((i - begin) % 2 == 0) ? bytes[i] << 8 : bytes[i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Ethernet + IPv4 (192.0.2.1 -> 192.0.2.2) + TCP (ACK, 40000 -> 80) with checksums, `size`
// bytes in all.
Bytes ipv4_tcp_frame(size_t size) {
  constexpr size_t kIp = 14, kTcp = 34, kData = 54;
  Bytes frame(size);
  const uint8_t macs[12] = {0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a};
  std::copy(std::begin(macs), std::end(macs), frame.begin());
  put16(frame, 12, 0x0800);
  frame[kIp] = 0x45;
  put16(frame, kIp + 2, static_cast<uint16_t>(size - kIp));
  put16(frame, kIp + 6, 0x4000);  // don't fragment
  frame[kIp + 8] = 64;            // TTL
  frame[kIp + 9] = 6;             // TCP
  const uint8_t addresses[8] = {192, 0, 2, 1, 192, 0, 2, 2};
  std::copy(std::begin(addresses), std::end(addresses), frame.begin() + kIp + 12);
  put16(frame, kIp + 10, checksum(frame, kIp, kTcp));
  put16(frame, kTcp, 40000);
  put16(frame, kTcp + 2, 80);
  frame[kTcp + 12] = 5 << 4;  // 20-byte header
  frame[kTcp + 13] = 0x10;    // ACK
  put16(frame, kTcp + 14, 64240);
  for (size_t i = kData; i < size; ++i) frame[i] = static_cast<uint8_t>(i);
  // Pseudo-header: addresses, protocol, TCP length.
  uint32_t pseudo = 6 + static_cast<uint32_t>(size - kTcp);
  for (size_t i = kIp + 12; i < kTcp; i += 2) pseudo += frame[i] << 8 | frame[i + 1];
  put16(frame, kTcp + 16, checksum(frame, kTcp, size, pseudo));
  return frame;
}

// Ethernet (with an 802.1Q tag when `vlan`) + an IPv4 (`version` 4) or IPv6 header carrying
// `protocol` + zeroes, `size` bytes in all. No checksums: the programs read only the headers.
Bytes ip_frame(int version, uint8_t protocol, size_t size, bool vlan = false) {
  Bytes frame(size);
  const uint8_t macs[12] = {0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a};
  std::copy(std::begin(macs), std::end(macs), frame.begin());
  size_t l3 = 14;
  if (vlan) {
    put16(frame, 12, 0x8100);
    put16(frame, 14, 100);
    l3 = 18;
  }
  put16(frame, l3 - 2, version == 4 ? 0x0800 : 0x86dd);
  if (version == 4) {
    frame[l3] = 0x45;
    put16(frame, l3 + 2, static_cast<uint16_t>(size - l3));
    frame[l3 + 8] = 64;
    frame[l3 + 9] = protocol;
  } else {
    frame[l3] = 0x60;
    put16(frame, l3 + 4, static_cast<uint16_t>(size - l3 - 40));
    frame[l3 + 6] = protocol;
    frame[l3 + 7] = 64;
  }
  return frame;
}

// One BPF_PROG_TEST_RUN call of kRepeat runs: the kernel's average ns per run, or -1.
// With `gso_segs`, the skb is a GSO one of that many segments of `gso_size` bytes.
double ns_per_run(int prog_fd, const Bytes& frame, const char* name, uint32_t gso_segs = 0,
                  uint32_t gso_size = 0) {
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.repeat = kRepeat;
  __sk_buff ctx{};
  ctx.gso_segs = gso_segs;
  ctx.gso_size = gso_size;
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err < 0) {
    std::fprintf(stderr, "bpf_bench: %s: BPF_PROG_TEST_RUN: %s\n", name, std::strerror(-err));
    return -1;
  }
  if (opts.retval != kTcActUnspec) {
    std::fprintf(stderr, "bpf_bench: %s: returned %#x, not TC_ACT_UNSPEC\n", name, opts.retval);
    return -1;
  }
  return opts.duration;
}

struct Spread {
  double median = 0;
  double min = 0;
  double max = 0;
  double stddev = 0;  // sample standard deviation
};

Spread spread(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  Spread s;
  s.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  s.min = values.front();
  s.max = values.back();
  double mean = 0;
  for (double v : values) mean += v / static_cast<double>(n);
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  s.stddev = n > 1 ? std::sqrt(squares / static_cast<double>(n - 1)) : 0;
  return s;
}

// The median over rounds of a[round] - b[round]: what one program costs more than the other.
double median_difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> differences;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) differences.push_back(a[i] - b[i]);
  return spread(differences).median;
}

// "0.52 0.58 0.59" from /proc/loadavg.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// Inserts the loopback's entry `key` -> `value` in the map `name`; false, said on stderr, when
// it cannot.
bool insert(const char* name, int map_fd, const void* key, const void* value) {
  if (bpf_map_update_elem(map_fd, key, value, BPF_NOEXIST) == 0) return true;
  std::fprintf(stderr, "bpf_bench: %s: cannot insert the loopback: %s\n", name,
               std::strerror(errno));
  return false;
}

// Inserts the loopback's key, with the zeroed per-CPU `values`, in each map: the programs count
// only keys user space made.
bool insert_loopback_key(std::initializer_list<int> map_fds, const void* values) {
  for (int fd : map_fds)
    if (!insert("traffic", fd, &kLoopback, values)) return false;
  return true;
}

struct Program {
  const char* name;
  int fd;
};

// Runs `programs` on `frame` once each (warm-up, not kept), then kRounds rounds, the first one
// changing every round: [program][round] ns per packet; empty when a run failed (said on stderr).
std::vector<std::vector<double>> take_turns(const std::vector<Program>& programs,
                                            const Bytes& frame, uint32_t gso_segs = 0,
                                            uint32_t gso_size = 0) {
  std::vector<std::vector<double>> ns(programs.size());
  for (const Program& program : programs)
    if (ns_per_run(program.fd, frame, program.name, gso_segs, gso_size) < 0) return {};
  for (int round = 0; round < kRounds; ++round) {
    for (size_t i = 0; i < programs.size(); ++i) {
      const size_t p = (static_cast<size_t>(round) + i) % programs.size();
      const double result = ns_per_run(programs[p].fd, frame, programs[p].name, gso_segs, gso_size);
      if (result < 0) return {};
      ns[p].push_back(result);
    }
  }
  return ns;
}

// The network namespace cookie of the caller's namespace, which BPF_PROG_TEST_RUN's skb->dev
// (the loopback) belongs to; 0 when it cannot be read.
uint64_t own_netns_cookie() {
  constexpr int kSoNetnsCookie = 71;  // SO_NETNS_COOKIE, Linux >= 5.14
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  uint64_t cookie = 0;
  socklen_t size = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, kSoNetnsCookie, &cookie, &size) < 0) cookie = 0;
  close(fd);
  return cookie;
}

int run() {
  std::unique_ptr<traffic_bpf, TrafficDeleter> traffic(traffic_bpf__open_and_load());
  if (!traffic) {
    std::fprintf(stderr, "bpf_bench: psnic_ingress: cannot load: %s\n", std::strerror(errno));
    return 2;
  }
  std::unique_ptr<empty_bpf, EmptyDeleter> empty(empty_bpf__open_and_load());
  if (!empty) {
    std::fprintf(stderr, "bpf_bench: psnic_empty: cannot load: %s\n", std::strerror(errno));
    return 2;
  }
  std::unique_ptr<segments_bpf, SegmentsDeleter> segments(segments_bpf__open_and_load());
  if (!segments) {
    std::fprintf(stderr, "bpf_bench: psnic_segments: cannot load: %s\n", std::strerror(errno));
    return 2;
  }
  const int map_fd = bpf_map__fd(traffic->maps.traffic);
  const int segments_map_fd = bpf_map__fd(segments->maps.traffic);
  const size_t cpus = static_cast<size_t>(libbpf_num_possible_cpus());
  std::vector<psnic_traffic> per_cpu(cpus);
  if (!insert_loopback_key({map_fd, segments_map_fd}, per_cpu.data())) return 2;

  constexpr size_t kEmpty = 0, kPsnic = 1, kSegments = 2, kPrograms = 3;
  const Program programs[kPrograms] = {
      {"psnic_empty", bpf_program__fd(empty->progs.psnic_empty)},
      {"psnic_ingress", bpf_program__fd(traffic->progs.psnic_ingress)},
      {"psnic_segments", bpf_program__fd(segments->progs.psnic_segments)},
  };
  const Bytes frames[2] = {ipv4_tcp_frame(64), ipv4_tcp_frame(1500)};

  utsname host{};
  uname(&host);
  std::printf(
      "bpf_bench: BPF_PROG_TEST_RUN, %d runs per call, %d rounds alternating the three "
      "programs; kernel %s, %zu possible CPUs, load average %s\n",
      kRepeat, kRounds, host.release, cpus, load_average().c_str());

  // [frame][program][round], ns per packet.
  std::vector<double> ns[2][kPrograms];
  uint64_t psnic_runs = 0;
  for (const Bytes& frame : frames) {  // warm-up, not reported
    for (const Program& program : programs)
      if (ns_per_run(program.fd, frame, program.name) < 0) return 2;
    psnic_runs += kRepeat;
  }
  for (int round = 0; round < kRounds; ++round) {
    for (size_t f = 0; f < 2; ++f) {
      for (size_t i = 0; i < kPrograms; ++i) {
        const size_t p = (static_cast<size_t>(round) + i) % kPrograms;  // who goes first turns
        const double result = ns_per_run(programs[p].fd, frames[f], programs[p].name);
        if (result < 0) return 2;
        ns[f][p].push_back(result);
      }
      psnic_runs += kRepeat;
    }
  }

  std::printf("\n%6s  %-14s %8s %6s %6s %7s   (ns per packet)\n", "frame", "program", "median",
              "min", "max", "stddev");
  for (size_t f = 0; f < 2; ++f) {
    Spread of[kPrograms];
    for (size_t p = 0; p < kPrograms; ++p) {
      of[p] = spread(ns[f][p]);
      std::printf("%4zu B  %-14s %8.1f %6.0f %6.0f %7.2f\n", frames[f].size(), programs[p].name,
                  of[p].median, of[p].min, of[p].max, of[p].stddev);
    }
    auto per_round = [&](size_t over, size_t under) {
      std::vector<double> ratios;
      for (size_t round = 0; round < static_cast<size_t>(kRounds); ++round)
        ratios.push_back(ns[f][over][round] / ns[f][under][round]);
      return spread(ratios);
    };
    const Spread r = per_round(kPsnic, kEmpty);
    const double ratio = of[kPsnic].median / of[kEmpty].median;
    std::printf("%4zu B  %-14s %7.2fx  (per round: %.2fx to %.2fx; target <= %.0fx: %s)\n",
                frames[f].size(), "psnic / empty", ratio, r.min, r.max, kTargetRatio,
                ratio <= kTargetRatio ? "met" : "NOT met");
    const Spread s = per_round(kSegments, kPsnic);
    std::printf(
        "%4zu B  %-14s %7.2fx  (per round: %.2fx to %.2fx; median of the differences "
        "%+.1f ns)\n",
        frames[f].size(), "segments/psnic", of[kSegments].median / of[kPsnic].median, s.min, s.max,
        median_difference(ns[f][kSegments], ns[f][kPsnic]));
  }

  // --split protocol: the empty program, psnic unsplit and psnic split by protocol, side by side
  // on one frame after another, each frame's three taking turns over kRounds rounds.
  std::unique_ptr<split_load_bytes_bpf, LoadBytesDeleter> load_bytes(
      split_load_bytes_bpf__open_and_load());
  if (!load_bytes) {
    std::fprintf(stderr, "bpf_bench: psnic_split_lb: cannot load: %s\n", std::strerror(errno));
    return 2;
  }
  const int split_map_fd = bpf_map__fd(traffic->maps.traffic_proto);
  std::vector<psnic_traffic_split> split_per_cpu(cpus);
  if (!insert_loopback_key({split_map_fd, bpf_map__fd(load_bytes->maps.traffic_proto)},
                           split_per_cpu.data()))
    return 2;
  struct SplitFrame {
    const char* name;
    Bytes frame;
    int protocol;  // the slot it must count in
    uint32_t gso_segs = 0, gso_size = 0;
  };
  Bytes fragment = ip_frame(4, 17, 100);
  put16(fragment, 14 + 6, 0x2000 | 185);  // more fragments, offset 1480: no UDP header here
  Bytes truncated = ip_frame(4, 6, 34);
  truncated[14] = 0x4f;  // says a 60-byte header; 20 are there
  const SplitFrame split_frames[] = {
      {"IPv4 TCP", ip_frame(4, 6, 64), PSNIC_PROTOCOL_TCP},
      {"IPv4 UDP", ip_frame(4, 17, 64), PSNIC_PROTOCOL_UDP},
      {"IPv4 ICMP", ip_frame(4, 1, 64), PSNIC_PROTOCOL_ICMP},
      {"IPv6 TCP", ip_frame(6, 6, 86), PSNIC_PROTOCOL_TCP},
      {"IPv6 UDP", ip_frame(6, 17, 86), PSNIC_PROTOCOL_UDP},
      {"IPv6 ICMPv6", ip_frame(6, 58, 86), PSNIC_PROTOCOL_ICMP},
      {"IPv4 fragment", fragment, PSNIC_PROTOCOL_UDP},
      {"VLAN IPv4 TCP", ip_frame(4, 6, 68, /*vlan=*/true), PSNIC_PROTOCOL_TCP},
      {"truncated IPv4", truncated, PSNIC_PROTOCOL_OTHER},
      // A test run takes at most a page (3712 bytes of frame): a 64 KB GSO skb is refused
      // (EINVAL), so the GSO row is the largest one it takes, as a GSO skb of 2 segments.
      {"GSO TCP 3.5KB", ipv4_tcp_frame(3500), PSNIC_PROTOCOL_TCP, 2, 1448},
  };
  const std::vector<Program> split_programs = {
      programs[kEmpty],
      programs[kPsnic],
      {"psnic_split_in", bpf_program__fd(traffic->progs.psnic_split_in)},
      {"psnic_split_lb", bpf_program__fd(load_bytes->progs.psnic_split_lb)},
  };
  constexpr size_t kSplit = 2, kLoadBytes = 3, kSplitPrograms = 4;
  std::printf(
      "\n--split protocol: ns per packet, medians of %d rounds (min-max), ratio of the medians to "
      "the empty program; the last column is the split parsed with bpf_skb_load_bytes instead "
      "of direct packet access\n%-15s %18s %18s %7s %18s %7s %18s %7s\n",
      kRounds, "frame", "empty", "psnic (split off)", "ratio", "psnic (split on)", "ratio",
      "load_bytes split", "ratio");
  std::array<uint64_t, PSNIC_PROTOCOLS> split_expected{};
  uint64_t split_runs = 0;
  uint64_t psnic_split_table_runs = 0;
  bool split_met = true;
  for (const SplitFrame& f : split_frames) {
    const std::vector<std::vector<double>> ns_of =
        take_turns(split_programs, f.frame, f.gso_segs, f.gso_size);
    if (ns_of.empty()) return 2;
    // Each program ran once to warm up and once a round; psnic_ingress is in this table too.
    split_runs += (kRounds + 1) * uint64_t{kRepeat};
    split_expected[f.protocol] += (kRounds + 1) * uint64_t{kRepeat};
    psnic_split_table_runs += (kRounds + 1) * uint64_t{kRepeat};
    Spread of[kSplitPrograms];
    for (size_t p = 0; p < kSplitPrograms; ++p) of[p] = spread(ns_of[p]);
    char cell[kSplitPrograms][32];
    for (size_t p = 0; p < kSplitPrograms; ++p)
      std::snprintf(cell[p], sizeof cell[p], "%.1f (%.0f-%.0f)", of[p].median, of[p].min,
                    of[p].max);
    const double off = of[kPsnic].median / of[kEmpty].median;
    const double on = of[kSplit].median / of[kEmpty].median;
    split_met = split_met && on <= kTargetRatio;
    std::printf("%-15s %18s %18s %6.2fx %18s %6.2fx %18s %6.2fx\n", f.name, cell[kEmpty],
                cell[kPsnic], off, cell[kSplit], on, cell[kLoadBytes],
                of[kLoadBytes].median / of[kEmpty].median);
  }
  std::printf("split on, target <= %.0fx the empty program on every frame: %s\n", kTargetRatio,
              split_met ? "met" : "NOT met");
  // The split program counted every run, each frame in its protocol's slot.
  bool split_counted = bpf_map_lookup_elem(split_map_fd, &kLoopback, split_per_cpu.data()) == 0;
  for (int p = 0; split_counted && p < PSNIC_PROTOCOLS; ++p) {
    uint64_t counted = 0;
    for (const psnic_traffic_split& cpu : split_per_cpu) counted += cpu.protocol[p].ingress.packets;
    split_counted = counted == split_expected[p];
  }
  std::printf("psnic_split_in counted %llu runs, each in its frame's protocol: %s\n",
              static_cast<unsigned long long>(split_runs), split_counted ? "yes" : "MISMATCH");

  // Receive at the container-side peer (bpf_redirect_peer): what the host egress program pays
  // for its received_at_peer lookup (psnic_ingress is the same program without it, as
  // psnic_egress was before), and the peer program, which reads skb->dev's namespace cookie and
  // looks {cookie, ifindex} up in `peers` before the traffic map. The loopback is its own "peer"
  // here, mapped to its own key; it is not in received_at_peer, so psnic_egress counts too.
  const uint64_t cookie = own_netns_cookie();
  if (cookie == 0) {
    std::fprintf(stderr, "bpf_bench: SO_NETNS_COOKIE: %s\n", std::strerror(errno));
    return 2;
  }
  const psnic_peer_key loopback_peer{cookie, kLoopback, 0};
  if (!insert("peers", bpf_map__fd(traffic->maps.peers), &loopback_peer, &kLoopback)) return 2;
  const std::vector<Program> peer_programs = {
      programs[kEmpty],
      programs[kPsnic],
      {"psnic_egress", bpf_program__fd(traffic->progs.psnic_egress)},
      {"psnic_peer_ingress", bpf_program__fd(traffic->progs.psnic_peer_ingress)},
      {"psnic_peer_split", bpf_program__fd(traffic->progs.psnic_peer_split)},
  };
  constexpr size_t kEgress = 2, kPeer = 3, kPeerSplit = 4;
  const std::vector<std::vector<double>> peer_ns = take_turns(peer_programs, frames[0]);
  if (peer_ns.empty()) return 2;
  const uint64_t peer_table_runs = (kRounds + 1) * uint64_t{kRepeat};  // each program's
  std::printf(
      "\nreceive at the container-side peer, %zu B frame: ns per packet, medians of %d rounds\n"
      "%-20s %8s %6s %6s %7s %8s\n",
      frames[0].size(), kRounds, "program", "median", "min", "max", "stddev", "/ empty");
  Spread peer_of[kPeerSplit + 1];
  for (size_t p = 0; p < peer_programs.size(); ++p) {
    peer_of[p] = spread(peer_ns[p]);
    std::printf("%-20s %8.1f %6.0f %6.0f %7.2f %7.2fx\n", peer_programs[p].name, peer_of[p].median,
                peer_of[p].min, peer_of[p].max, peer_of[p].stddev,
                peer_of[p].median / peer_of[kEmpty].median);
  }
  std::printf(
      "the received_at_peer lookup on the host egress (psnic_egress - psnic_ingress): %+.1f ns; "
      "the peer program over the host one (psnic_peer_ingress - psnic_ingress): %+.1f ns "
      "(medians of the per-round differences)\n",
      median_difference(peer_ns[kEgress], peer_ns[kPsnic]),
      median_difference(peer_ns[kPeer], peer_ns[kPsnic]));
  // Then the loopback as an interface counted at its peer: psnic_egress skips it (the host egress
  // of every interface the agent has hooked at its peer).
  const uint8_t present = 1;
  if (!insert("received_at_peer", bpf_map__fd(traffic->maps.received_at_peer), &kLoopback,
              &present))
    return 2;
  const std::vector<Program> skip_programs = {
      programs[kEmpty], programs[kPsnic], {"psnic_egress", peer_programs[kEgress].fd}};
  const std::vector<std::vector<double>> skip_ns = take_turns(skip_programs, frames[0]);
  if (skip_ns.empty()) return 2;
  const Spread skip = spread(skip_ns[kEgress]);
  std::printf(
      "%-20s %8.1f %6.0f %6.0f %7.2f %7.2fx  (its interface at the peer: skipped; psnic_ingress "
      "%.1f alongside)\n",
      "psnic_egress, skip", skip.median, skip.min, skip.max, skip.stddev,
      skip.median / spread(skip_ns[kEmpty]).median, spread(skip_ns[kPsnic]).median);
  std::vector<psnic_traffic> loopback(cpus);
  uint64_t egress_counted = 0;
  if (bpf_map_lookup_elem(map_fd, &kLoopback, loopback.data()) == 0)
    for (const psnic_traffic& cpu : loopback) egress_counted += cpu.egress.packets;
  // psnic_peer_split counted the TCP frame as the loopback's TCP egress.
  uint64_t split_egress = 0;
  if (bpf_map_lookup_elem(split_map_fd, &kLoopback, split_per_cpu.data()) == 0)
    for (const psnic_traffic_split& cpu : split_per_cpu)
      split_egress += cpu.protocol[PSNIC_PROTOCOL_TCP].egress.packets;
  const bool peer_counted = egress_counted == 2 * peer_table_runs &&  // none in the skip table
                            split_egress == peer_table_runs;
  std::printf(
      "psnic_egress and psnic_peer_ingress counted %llu packets in %llu runs, psnic_peer_split "
      "%llu TCP in %llu: %s\n",
      static_cast<unsigned long long>(egress_counted),
      static_cast<unsigned long long>(2 * peer_table_runs),
      static_cast<unsigned long long>(split_egress),
      static_cast<unsigned long long>(peer_table_runs),
      peer_counted ? "every run took the counting path" : "MISMATCH");

  // The measured runs must have counted: one packet per run, all on the loopback's key (the
  // segments program's too, in its own map).
  bool all_counted = peer_counted;
  for (const auto& [name, fd] :
       {std::pair{"psnic_ingress", map_fd}, std::pair{"psnic_segments", segments_map_fd}}) {
    uint64_t counted = 0;
    if (bpf_map_lookup_elem(fd, &kLoopback, per_cpu.data()) == 0)
      for (const psnic_traffic& cpu : per_cpu) counted += cpu.ingress.packets;
    const uint64_t runs =
        psnic_runs + (fd == map_fd ? psnic_split_table_runs + 2 * peer_table_runs : 0);
    std::printf("%s%s counted %llu packets in %llu runs: %s\n", fd == map_fd ? "\n" : "", name,
                static_cast<unsigned long long>(counted), static_cast<unsigned long long>(runs),
                counted == runs ? "every run took the counting path" : "MISMATCH");
    all_counted = all_counted && counted == runs;
  }
  return all_counted && split_counted ? 0 : 1;  // a missed target is reported, not an error
}

}  // namespace
}  // namespace psnic

int main() {
  if (geteuid() != 0) {
    std::fprintf(stderr,
                 "bpf_bench: needs root: loading BPF programs and BPF_PROG_TEST_RUN need "
                 "CAP_BPF and CAP_NET_ADMIN\n");
    return 2;
  }
  return psnic::run();
}
