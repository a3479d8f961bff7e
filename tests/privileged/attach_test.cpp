// The attach layer on real veths: both modes count exactly what the kernel counts, leave other
// tools' programs running and in place, and leave nothing behind.
#include "kernel/attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "kernel/program.h"
#include "agent/views.h"
#include "foreign.skel.h"
#include "base/error.h"
#include "tests/privileged/traffic_counts.h"
#include "tests/support/support.h"
#include "traffic.h"

namespace psnic {

// Readable parameter names in test output and CTest names.
void PrintTo(AttachMode mode, std::ostream* os) { *os << attach_mode_name(mode); }

namespace {

using test::Counters;
using test::expect_same_deltas;
using test::read_counters;
using test::TestVeth;

using test::kTcxEgress;
using test::kTcxIngress;
using test::tcx_chain;

uint32_t prog_id(int prog_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  bpf_obj_get_info_by_fd(prog_fd, &info, &length);
  return info.id;
}

// The id of the program in an interface's cls_bpf filter at handle/priority, 0 if none.
uint32_t tc_filter(uint32_t ifindex, bpf_tc_attach_point point, uint32_t handle,
                   uint32_t priority) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
  if (bpf_tc_query(&hook, &opts) < 0) return 0;
  return opts.prog_id;
}

size_t open_fds() {
  size_t n = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir)) ++n;
    closedir(dir);
  }
  return n;
}

size_t map_keys(int map_fd) {
  size_t n = 0;
  uint32_t key = 0, next = 0;
  const void* previous = nullptr;
  while (bpf_map_get_next_key(map_fd, previous, &next) == 0) {
    ++n;
    key = next;
    previous = &key;
  }
  return n;
}

class AttachTest : public ::testing::TestWithParam<AttachMode> {
 protected:
  void SetUp() override { PSNIC_REQUIRE_ROOT(); }
};

TEST_P(AttachTest, CountsExactlyWhatTheKernelCountsOnTheHostVeth) {
  TestVeth veth('a', /*addressed=*/true);
  uint32_t ifindex = test::host_ifindex(veth.host);
  test::TcpSink sink(veth.ns.path(), 5001);
  TrafficProgram program = TrafficProgram::load();
  program.track(ifindex);
  Attachment attached = Attachment::attach(program, ifindex, veth.host, GetParam());

  // Quiet first: the kernel's counters and psnic's must move together from here on.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Counters before = Counters::read(program, ifindex, veth.host);

  // Into the namespace: TCP (GSO super-packets) and UDP of several sizes; out of it: the ACKs
  // and the ICMP port-unreachable answers.
  ASSERT_TRUE(test::send_tcp(veth.inside_address, 5001, 4 << 20));
  for (size_t size : {1u, 100u, 1400u, 8000u})
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, size, 20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  Counters after = Counters::read(program, ifindex, veth.host);
  expect_same_deltas(before, after);
  EXPECT_GT(after.psnic.egress.bytes - before.psnic.egress.bytes, 4u << 20);
  program.untrack(ifindex);
}

TEST_P(AttachTest, JumboFramesAreCountedWhole) {
  // BPF_PROG_TEST_RUN refuses frames above one page, so 9000-byte frames are checked here, on a
  // veth whose MTU allows them.
  TestVeth veth('f', /*addressed=*/true);
  test::must("ip link set " + veth.host + " mtu 9000");
  veth.ns.ip("link set eth0 mtu 9000");
  uint32_t ifindex = test::host_ifindex(veth.host);
  TrafficProgram program = TrafficProgram::load();
  program.track(ifindex);
  Attachment attached = Attachment::attach(program, ifindex, veth.host, GetParam());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Counters before = Counters::read(program, ifindex, veth.host);

  // 8972 bytes of UDP payload + 8 UDP + 20 IPv4 = 9000-byte packets, 9014-byte frames.
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 8972, 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Counters after = Counters::read(program, ifindex, veth.host);
  expect_same_deltas(before, after);
  EXPECT_GE(after.psnic.egress.bytes - before.psnic.egress.bytes, 10u * 9014u);
  EXPECT_LT(after.psnic.egress.packets - before.psnic.egress.packets, 20u);  // not fragmented
}

TEST_P(AttachTest, ThousandAttachDetachCyclesLeaveNothingBehind) {
  TestVeth veth('b');
  uint32_t ifindex = test::host_ifindex(veth.host);
  TrafficProgram program = TrafficProgram::load();
  // The first cycle may create the clsact qdisc (kept on purpose) and warm up libbpf.
  { Attachment warm = Attachment::attach(program, ifindex, veth.host, GetParam()); }
  size_t fds = open_fds();
  for (int cycle = 0; cycle < 1000; ++cycle) {
    program.track(ifindex);
    Attachment a = Attachment::attach(program, ifindex, veth.host, GetParam());
    a.detach();
    program.untrack(ifindex);
  }
  EXPECT_EQ(open_fds(), fds);
  EXPECT_EQ(map_keys(program.map_fd()), 0u);
  EXPECT_TRUE(tcx_chain(ifindex, kTcxIngress).empty());
  EXPECT_TRUE(tcx_chain(ifindex, kTcxEgress).empty());
  EXPECT_EQ(tc_filter(ifindex, BPF_TC_INGRESS, kTcEphemeralHandle, kTcPriority), 0u);
  EXPECT_EQ(tc_filter(ifindex, BPF_TC_EGRESS, kTcEphemeralHandle, kTcPriority), 0u);
}

TEST_P(AttachTest, AFailedAttachLeavesNothingAttached) {
  TrafficProgram program = TrafficProgram::load();
  EXPECT_THROW(Attachment::attach(program, 0x7ffffff0, "psnictest-none", GetParam()), Error);
}

INSTANTIATE_TEST_SUITE_P(Modes, AttachTest, ::testing::Values(AttachMode::tcx, AttachMode::tc),
                         [](const auto& info) { return attach_mode_name(info.param); });

class CoexistenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    foreign_ = foreign_bpf__open_and_load();
    ASSERT_NE(foreign_, nullptr);
  }
  void TearDown() override {
    if (foreign_) foreign_bpf__destroy(foreign_);
  }
  int foreign_fd() const { return bpf_program__fd(foreign_->progs.psnictest_foreign); }
  uint64_t foreign_seen() const {
    uint32_t zero = 0;
    uint64_t seen = 0;
    bpf_map_lookup_elem(bpf_map__fd(foreign_->maps.seen), &zero, &seen);
    return seen;
  }

  foreign_bpf* foreign_ = nullptr;
};

TEST_F(CoexistenceTest, ForeignTcxProgramKeepsRunningBehindPsnic) {
  TestVeth veth('c', /*addressed=*/true);
  uint32_t ifindex = test::host_ifindex(veth.host);
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  Fd foreign_link(bpf_link_create(foreign_fd(), static_cast<int>(ifindex),
                                  static_cast<bpf_attach_type>(kTcxEgress), &opts));
  ASSERT_TRUE(foreign_link.valid()) << "foreign tcx link: " << errno;
  uint32_t foreign_id = prog_id(foreign_fd());

  TrafficProgram program = TrafficProgram::load();
  program.track(ifindex);
  uint32_t psnic_id = prog_id(program.egress_fd());
  {
    Attachment attached = Attachment::attach(program, ifindex, veth.host, AttachMode::tcx);
    // psnic at the head, the foreign program right behind it.
    EXPECT_EQ(tcx_chain(ifindex, kTcxEgress), (std::vector<uint32_t>{psnic_id, foreign_id}));
    uint64_t seen = foreign_seen();
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 100, 10));
    EXPECT_GE(foreign_seen(), seen + 10);
    EXPECT_GE(read_counters(program, ifindex).egress.packets, 10u);
  }
  EXPECT_EQ(tcx_chain(ifindex, kTcxEgress), (std::vector<uint32_t>{foreign_id}));
  uint64_t seen = foreign_seen();
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 100, 10));
  EXPECT_GE(foreign_seen(), seen + 10);
}

TEST_F(CoexistenceTest, ForeignClsBpfFilterKeepsRunningAndItsQdiscStays) {
  TestVeth veth('d', /*addressed=*/true);
  uint32_t ifindex = test::host_ifindex(veth.host);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_EGRESS);
  ASSERT_EQ(bpf_tc_hook_create(&hook), 0);
  LIBBPF_OPTS(bpf_tc_opts, foreign, .prog_fd = foreign_fd(), .handle = 7, .priority = 1);
  ASSERT_EQ(bpf_tc_attach(&hook, &foreign), 0);
  uint32_t foreign_id = foreign.prog_id;

  TrafficProgram program = TrafficProgram::load();
  program.track(ifindex);
  {
    Attachment attached = Attachment::attach(program, ifindex, veth.host, AttachMode::tc);
    EXPECT_EQ(tc_filter(ifindex, BPF_TC_EGRESS, 7, 1), foreign_id);
    EXPECT_EQ(tc_filter(ifindex, BPF_TC_EGRESS, kTcEphemeralHandle, kTcPriority),
              prog_id(program.egress_fd()));
    uint64_t seen = foreign_seen();
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 100, 10));
    EXPECT_GE(foreign_seen(), seen + 10);
    EXPECT_GE(read_counters(program, ifindex).egress.packets, 10u);
  }
  EXPECT_EQ(tc_filter(ifindex, BPF_TC_EGRESS, kTcEphemeralHandle, kTcPriority), 0u);
  EXPECT_EQ(tc_filter(ifindex, BPF_TC_EGRESS, 7, 1), foreign_id);
  EXPECT_NE(test::must("tc qdisc show dev " + veth.host).find("clsact"), std::string::npos);
  uint64_t seen = foreign_seen();
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 100, 10));
  EXPECT_GE(foreign_seen(), seen + 10);
}

TEST_F(CoexistenceTest, DetachLeavesAFilterSomeoneElsePutInPsnicsPlace) {
  TestVeth veth('e');
  uint32_t ifindex = test::host_ifindex(veth.host);
  TrafficProgram program = TrafficProgram::load();
  Attachment attached = Attachment::attach(program, ifindex, veth.host, AttachMode::tc);
  // Another tool replaces psnic's filter at psnic's own handle and priority.
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, replace, .prog_fd = foreign_fd(), .flags = BPF_TC_F_REPLACE,
              .handle = kTcEphemeralHandle, .priority = kTcPriority);
  ASSERT_EQ(bpf_tc_attach(&hook, &replace), 0);
  attached.detach();
  EXPECT_EQ(tc_filter(ifindex, BPF_TC_INGRESS, kTcEphemeralHandle, kTcPriority),
            prog_id(foreign_fd()));
}

TEST_F(CoexistenceTest, FilterLeftByAKilledAgentIsReplacedAndAForeignOneRefused) {
  TestVeth veth('g');
  uint32_t ifindex = test::host_ifindex(veth.host);
  {
    // An earlier agent's filters, as kill -9 leaves them: attached, never detached.
    TrafficProgram earlier = TrafficProgram::load();
    for (auto [point, fd] : {std::pair{BPF_TC_INGRESS, earlier.ingress_fd()},
                             std::pair{BPF_TC_EGRESS, earlier.egress_fd()}}) {
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = point);
      bpf_tc_hook_create(&hook);
      LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = fd, .handle = kTcEphemeralHandle,
                  .priority = kTcPriority);
      ASSERT_EQ(bpf_tc_attach(&hook, &opts), 0);
    }
  }
  TrafficProgram program = TrafficProgram::load();
  {
    Attachment attached = Attachment::attach(program, ifindex, veth.host, AttachMode::tc);
    EXPECT_EQ(tc_filter(ifindex, BPF_TC_INGRESS, kTcEphemeralHandle, kTcPriority),
              prog_id(program.ingress_fd()));
    EXPECT_EQ(tc_filter(ifindex, BPF_TC_EGRESS, kTcEphemeralHandle, kTcPriority),
              prog_id(program.egress_fd()));
  }
  // Another tool's program at psnic's handle is not psnic's to replace.
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, foreign, .prog_fd = foreign_fd(), .handle = kTcEphemeralHandle,
              .priority = kTcPriority);
  ASSERT_EQ(bpf_tc_attach(&hook, &foreign), 0);
  EXPECT_THROW(Attachment::attach(program, ifindex, veth.host, AttachMode::tc), Error);
  EXPECT_EQ(tc_filter(ifindex, BPF_TC_INGRESS, kTcEphemeralHandle, kTcPriority),
            prog_id(foreign_fd()));
}

TEST(AttachMode, ProbeFindsTcxOnThisKernel) {
  PSNIC_REQUIRE_ROOT();
  // The test machines run Linux >= 6.6; on older kernels the probe answers tc.
  TrafficProgram program = TrafficProgram::load();
  EXPECT_EQ(probe_attach_mode(program), AttachMode::tcx);
}

TEST(AttachMode, ParsesTheFlagValues) {
  EXPECT_EQ(parse_attach_mode("tcx"), AttachMode::tcx);
  EXPECT_EQ(parse_attach_mode("tc"), AttachMode::tc);
  EXPECT_EQ(parse_attach_mode("auto"), std::nullopt);
  EXPECT_THROW(parse_attach_mode("xdp"), Error);
}

}  // namespace
}  // namespace psnic
