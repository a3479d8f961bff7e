// ns per packet of psnic's tc program against a program that does nothing, and against the
// program as it was while it also counted GSO segments (bench/segments.bpf.c), all timed by the
// kernel with BPF_PROG_TEST_RUN on the same 64-byte and 1500-byte Ethernet + IPv4 + TCP frames.
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
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "empty.skel.h"
#include "segments.skel.h"
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

// One BPF_PROG_TEST_RUN call of kRepeat runs: the kernel's average ns per run, or -1.
double ns_per_run(int prog_fd, const Bytes& frame, const char* name) {
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.repeat = kRepeat;
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
  for (int fd : {map_fd, segments_map_fd}) {
    if (bpf_map_update_elem(fd, &kLoopback, per_cpu.data(), BPF_NOEXIST) < 0) {
      std::fprintf(stderr, "bpf_bench: traffic map: cannot insert the loopback's key: %s\n",
                   std::strerror(errno));
      return 2;
    }
  }

  struct Program {
    const char* name;
    int fd;
  };
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

  // The measured runs must have counted: one packet per run, all on the loopback's key (the
  // segments program's too, in its own map).
  bool all_counted = true;
  for (const auto& [name, fd] :
       {std::pair{"psnic_ingress", map_fd}, std::pair{"psnic_segments", segments_map_fd}}) {
    uint64_t counted = 0;
    if (bpf_map_lookup_elem(fd, &kLoopback, per_cpu.data()) == 0)
      for (const psnic_traffic& cpu : per_cpu) counted += cpu.ingress.packets;
    std::printf("%s%s counted %llu packets in %llu runs: %s\n", fd == map_fd ? "\n" : "", name,
                static_cast<unsigned long long>(counted),
                static_cast<unsigned long long>(psnic_runs),
                counted == psnic_runs ? "every run took the counting path" : "MISMATCH");
    all_counted = all_counted && counted == psnic_runs;
  }
  return all_counted ? 0 : 1;  // a missed target is reported, not an error
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
