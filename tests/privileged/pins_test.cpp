// A pinned HostAgent across restarts: what one agent leaves in its pin directory, the next adopts
// (counters continue, traffic sent while no agent ran is counted, nothing is attached twice), and
// cleanup_pins() removes it all. Each test pins in a directory of its own,
// /sys/fs/bpf/psnictest-pins-*; the e2e tests kill a real psnic-agent with SIGKILL.
#include "kernel/pins.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "agent/host_agent.h"
#include "agent/label_store.h"
#include "base/error.h"
#include "kernel/traffic_map.h"
#include "tests/privileged/traffic_counts.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using test::TestVeth;

constexpr auto kSettle = std::chrono::milliseconds(100);

using test::Counters;
using test::expect_same_deltas;

class PinnedAgentTest : public ::testing::TestWithParam<AttachMode> {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    static int dirs = 0;
    path_ = "/sys/fs/bpf/psnictest-pins-" + std::to_string(getpid()) + "-" + std::to_string(++dirs);
    start(GetParam());
  }
  void TearDown() override {
    stop();
    if (path_.empty()) return;
    cleanup_pins(path_);
    EXPECT_FALSE(std::filesystem::exists(path_)) << path_;
  }

  // What `psnic-agent` does on start: lock the directory, load the program on the pinned map,
  // one full pass.
  void start(AttachMode mode, Split split = Split::none) {
    pins_.emplace(PinDir::open(path_));
    program_ = std::make_unique<TrafficProgram>(
        TrafficProgram::load(pins_->map_path(), split, pins_->split_map_path()));
    labels_ = std::make_shared<LabelSnapshot>();
    retired_ = std::make_shared<RetiredSnapshot>();
    HostAgentOptions options;
    options.mode = mode;
    options.pins = &*pins_;
    agent_ = std::make_unique<HostAgent>(*program_, options, labels_, retired_, nullptr, nullptr);
    agent_->reconcile();
  }
  // What SIGTERM does, and what kill -9 leaves: the programs counting, pinned.
  void stop() {
    agent_.reset();
    program_.reset();
    pins_.reset();
  }

  bool counted(const std::string& host) const {
    const auto table = labels_->current();
    for (const auto& [ifindex, labels] : *table)
      if (labels.host_interface == host) return true;
    return false;
  }
  Counters read(const std::string& host) const {
    return Counters::read(*program_, test::host_ifindex(host), host);
  }
  std::optional<RetiredSeries> retired(const std::string& host) const {
    const auto table = retired_->current();
    for (const RetiredSeries& series : *table)
      if (series.labels.host_interface == host) return series;
    return std::nullopt;
  }
  // Sends `count` datagrams of `size` bytes into `veth`'s namespace: psnic counts what the
  // kernel counts.
  void expect_counted_exactly(const TestVeth& veth, size_t size, int count) const {
    std::this_thread::sleep_for(kSettle);
    const Counters before = read(veth.host);
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, size, count));
    std::this_thread::sleep_for(kSettle);
    expect_same_deltas(before, read(veth.host));
  }
  bool tracked(uint32_t ifindex) const {
    std::vector<uint32_t> keys = program_->tracked();
    return std::find(keys.begin(), keys.end(), ifindex) != keys.end();
  }

  std::string path_;
  std::optional<PinDir> pins_;
  std::unique_ptr<TrafficProgram> program_;
  std::shared_ptr<LabelSnapshot> labels_;
  std::shared_ptr<RetiredSnapshot> retired_;
  std::unique_ptr<HostAgent> agent_;
};

TEST_P(PinnedAgentTest, NextAgentAdoptsCountersThatCountedWhileNoAgentRan) {
  TestVeth veth('p', /*addressed=*/true);
  agent_->reconcile();
  ASSERT_TRUE(counted(veth.host));
  std::this_thread::sleep_for(kSettle);
  const Counters before = read(veth.host);
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 500, 20));

  stop();
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 700, 30));  // while no agent runs
  std::this_thread::sleep_for(kSettle);
  start(GetParam());

  ASSERT_TRUE(counted(veth.host));
  const Counters after = read(veth.host);
  expect_same_deltas(before, after);
  EXPECT_GE(after.psnic.egress.bytes - before.psnic.egress.bytes, 20u * 500u + 30u * 700u);
  EXPECT_EQ(test::psnic_programs(veth.host), 2u) << "attached twice, or not at all";

  // And it counts on.
  expect_counted_exactly(veth, 300, 10);
}

TEST_P(PinnedAgentTest, InterfaceGoneWhileNoAgentRanIsRetiredWithItsFinalValuesAndLabels) {
  uint32_t ifindex = 0;
  std::string host, ns;
  uint64_t sent = 0;
  {
    TestVeth veth('q', /*addressed=*/true);
    host = veth.host;
    ns = veth.ns.name();
    agent_->reconcile();
    ASSERT_TRUE(counted(host));
    ifindex = test::host_ifindex(host);
    stop();
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 600, 15));  // while no agent runs
    std::this_thread::sleep_for(kSettle);
    sent = test::link_statistic(host, "tx_bytes");
  }  // deleted while no agent runs
  start(GetParam());
  EXPECT_FALSE(counted(host));
  const std::optional<RetiredSeries> series = retired(host);
  ASSERT_TRUE(series.has_value()) << host << " not exported for its grace period";
  EXPECT_EQ(series->labels.container_name, ns);
  EXPECT_EQ(series->labels.interface, "eth0");
  EXPECT_GE(series->final.all.egress.bytes, 15u * 600u);
  EXPECT_LE(series->final.all.egress.bytes, sent);
  // Nothing of it stays: no counter, no pin.
  EXPECT_FALSE(tracked(ifindex));
  std::vector<uint32_t> pinned = pins_->pinned_ifindexes();
  EXPECT_EQ(std::count(pinned.begin(), pinned.end(), ifindex), 0);
  agent_->expire_retired(HostAgent::Clock::now() + std::chrono::hours(1));
  EXPECT_EQ(retired(host), std::nullopt);
}

TEST_P(PinnedAgentTest, IfindexReusedWhileNoAgentRanStartsItsOwnCounter) {
  // The same ifindex, another interface: its counter must not continue the first one's.
  uint32_t ifindex = 0;
  std::string first;
  {
    TestVeth veth('r', /*addressed=*/true);
    agent_->reconcile();
    ASSERT_TRUE(counted(veth.host));
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 100, 5));
    std::this_thread::sleep_for(kSettle);
    ASSERT_GE(read(veth.host).psnic.egress.packets, 5u);
    ifindex = test::host_ifindex(veth.host);
    first = veth.host;
    stop();
  }
  test::TestNetns ns('s');
  const std::string second = test::unique_name('t');
  // Down: nothing crosses it, so a counter that is not zero is the first interface's.
  test::must("ip link add " + second + " index " + std::to_string(ifindex) +
             " type veth peer name eth0 netns " + ns.name());
  start(GetParam());
  ASSERT_TRUE(counted(second));
  const Counters fresh = read(second);
  EXPECT_EQ(fresh.psnic.egress.packets, 0u);
  EXPECT_EQ(fresh.psnic.ingress.packets, 0u);
  EXPECT_EQ(test::psnic_programs(second), 2u);
  // The first one's counter is exported under its own name for the grace period.
  const std::optional<RetiredSeries> old = retired(first);
  ASSERT_TRUE(old.has_value());
  EXPECT_GE(old->final.all.egress.packets, 5u);
}

TEST_P(PinnedAgentTest, NextAgentInTheOtherModeReplacesThePairWithoutCountingTwice) {
  TestVeth veth('u', /*addressed=*/true);
  agent_->reconcile();
  ASSERT_TRUE(counted(veth.host));
  stop();
  const AttachMode other = GetParam() == AttachMode::tcx ? AttachMode::tc : AttachMode::tcx;
  start(other);
  ASSERT_TRUE(counted(veth.host));
  EXPECT_EQ(test::psnic_programs(veth.host), 2u);
  const uint32_t ifindex = test::host_ifindex(veth.host);
  const size_t tcx = test::tcx_chain(ifindex, test::kTcxIngress).size() +
                     test::tcx_chain(ifindex, test::kTcxEgress).size();
  EXPECT_EQ(tcx, other == AttachMode::tcx ? 2u : 0u);
  expect_counted_exactly(veth, 400, 25);
}

TEST_P(PinnedAgentTest, CleanupRemovesWhatTheAgentLeftAndNothingElse) {
  TestVeth veth('v');
  agent_->reconcile();
  ASSERT_TRUE(counted(veth.host));
  // Another tool's filter on the same interface.
  test::must("tc qdisc replace dev " + veth.host + " clsact");
  test::must("tc filter add dev " + veth.host +
             " ingress pref 7 protocol all u32 match u32 0 0 classid ffff:1");
  stop();
  ASSERT_EQ(test::psnic_programs(veth.host), 2u);

  CleanupReport report = cleanup_pins(path_);
  // TCX: the pair and the link on the peer's ingress (its namespace named by the reconcile).
  EXPECT_EQ(report.links, GetParam() == AttachMode::tcx ? 3u : 0u);
  EXPECT_EQ(report.tc_filters, GetParam() == AttachMode::tc ? 2u : 0u);
  EXPECT_TRUE(report.map);
  EXPECT_TRUE(report.directory);
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(test::psnic_programs(veth.host), 0u);
  EXPECT_NE(test::must("tc filter show dev " + veth.host + " ingress").find("pref 7 u32"),
            std::string::npos);
  // Nothing left to do the second time.
  CleanupReport again = cleanup_pins(path_);
  EXPECT_FALSE(again.map || again.directory || again.links || again.tc_filters);
}

TEST_P(PinnedAgentTest, EphemeralAttachmentBesideItTakesNothingFromIt) {
  // `psnic-agent --pid` on an interface the pinned agent counts: in tc mode the two use handles
  // of their own (0x5053, 0x5054), in TCX links of their own; both count, neither is disturbed.
  TestVeth veth('w', /*addressed=*/true);
  agent_->reconcile();
  ASSERT_TRUE(counted(veth.host));
  const uint32_t ifindex = test::host_ifindex(veth.host);
  TrafficProgram ephemeral_program = TrafficProgram::load();
  ephemeral_program.track(ifindex);
  {
    Attachment ephemeral = Attachment::attach(ephemeral_program, ifindex, veth.host, GetParam());
    EXPECT_EQ(test::psnic_programs(veth.host), 4u);
    expect_counted_exactly(veth, 200, 10);
    EXPECT_GE(test::read_counters(ephemeral_program, ifindex).egress.packets, 10u);
  }  // the ephemeral one detaches: the pinned one stays, intact
  EXPECT_EQ(test::psnic_programs(veth.host), 2u);
  ::testing::internal::CaptureStderr();
  agent_->reconcile();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.find(veth.host + ": psnic's program was removed"), std::string::npos) << log;
  expect_counted_exactly(veth, 200, 5);
}

TEST_P(PinnedAgentTest, SecondAgentOnTheSameDirectoryIsRefused) {
  try {
    PinDir::open(path_);
    ADD_FAILURE() << "a second lock on " << path_;
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), EBUSY);
    EXPECT_EQ(std::string(e.what()), path_ + ": in use by another psnic-agent");
  }
  try {
    cleanup_pins(path_);
    ADD_FAILURE() << "cleanup while an agent runs";
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), EBUSY);
  }
}

// --split is the agent's choice at each start. Restarted with the same setting, an agent adopts
// the counters and they continue; with the other, it switches the pinned links (or filters) to
// the other program pair and starts the counters anew in the other map (series of another label
// set), the one left behind emptied: never a stale counter continued, never a map nobody
// counts into read.
TEST_P(PinnedAgentTest, TheOtherSplitSettingStartsTheCountersAnewTheSameContinuesThem) {
  TestVeth veth('q', /*addressed=*/true);
  const uint32_t ifindex = test::host_ifindex(veth.host);
  agent_->reconcile();
  ASSERT_TRUE(counted(veth.host));
  ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 500, 20));
  std::this_thread::sleep_for(kSettle);
  const uint64_t unsplit = read(veth.host).psnic.egress.bytes;
  ASSERT_GE(unsplit, 20u * 500u);

  stop();
  start(GetParam(), Split::protocol);
  ASSERT_TRUE(counted(veth.host));
  EXPECT_EQ(test::psnic_programs(veth.host), 2u) << "attached twice, or not at all";
  EXPECT_FALSE(TrafficMap(program_->idle_map_fd()).read(ifindex)) << "the unsplit counter stays";
  EXPECT_LT(read(veth.host).psnic.egress.bytes, unsplit) << "continued the unsplit counter";
  expect_counted_exactly(veth, 300, 10);  // by the split programs: the links were switched
  std::optional<TrafficCounts> split = TrafficMap(program_->map_fd()).read_counts(ifindex);
  ASSERT_TRUE(split && split->by_protocol);
  EXPECT_GE((*split->by_protocol)[PSNIC_PROTOCOL_UDP].egress.bytes, 10u * 300u);

  // The same setting again: the split counters continue.
  stop();
  start(GetParam(), Split::protocol);
  ASSERT_TRUE(counted(veth.host));
  EXPECT_GE(read(veth.host).psnic.egress.bytes, split->all.egress.bytes);
  expect_counted_exactly(veth, 200, 5);
  const uint64_t split_total = read(veth.host).psnic.egress.bytes;

  // Back to unsplit: a counter of its own from zero, not the first run's, and the split one gone.
  stop();
  start(GetParam());
  ASSERT_TRUE(counted(veth.host));
  EXPECT_EQ(test::psnic_programs(veth.host), 2u);
  EXPECT_LT(read(veth.host).psnic.egress.bytes, std::min(unsplit, split_total));
  EXPECT_FALSE(TrafficMap(program_->idle_map_fd()).read(ifindex)) << "the split counter stays";
  expect_counted_exactly(veth, 400, 5);
  // TearDown's cleanup_pins removes the directory: both map pins went.
}

INSTANTIATE_TEST_SUITE_P(Modes, PinnedAgentTest, ::testing::Values(AttachMode::tcx, AttachMode::tc),
                         [](const auto& info) {
                           return std::string(attach_mode_name(info.param));
                         });

class PinDirTest : public ::testing::Test {
 protected:
  void SetUp() override { PSNIC_REQUIRE_ROOT(); }
};

TEST_F(PinDirTest, MapPinnedByAnotherLayoutIsNamedWithTheWayOut) {
  const std::string path = "/sys/fs/bpf/psnictest-layout-" + std::to_string(getpid());
  std::optional<PinDir> pins(PinDir::open(path));
  {
    // Another value size than psnic_traffic's.
    Fd map(bpf_map_create(BPF_MAP_TYPE_HASH, "traffic", 4, 8, 16, nullptr));
    ASSERT_TRUE(map.valid());
    ASSERT_EQ(bpf_obj_pin(map.get(), pins->map_path().c_str()), 0);
  }
  try {
    TrafficProgram::load(pins->map_path());
    ADD_FAILURE() << "loaded on a map of another layout";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              pins->map_path() +
                  ": pinned by a psnic with another map layout (psnic-agent --cleanup removes it)");
  }
  pins.reset();
  EXPECT_TRUE(cleanup_pins(path).map);
  EXPECT_FALSE(std::filesystem::exists(path));
}

// A map pinned by psnic 0.2.0 and before, which counted GSO segments in what is now the
// reserved field: the same layout, so it is adopted and its counters go on; what the old program
// left in the reserved field is read as nothing.
TEST_F(PinDirTest, MapPinnedByAPsnicThatCountedSegmentsIsAdoptedWithItsCounters) {
  const std::string path = "/sys/fs/bpf/psnictest-segments-" + std::to_string(getpid());
  std::optional<PinDir> pins(PinDir::open(path));
  const uint32_t ifindex = 424242;
  {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    Fd map(bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "traffic", sizeof(uint32_t),
                          sizeof(psnic_traffic), PSNIC_MAX_INTERFACES, &opts));
    ASSERT_TRUE(map.valid()) << strerror(errno);
    std::vector<psnic_traffic> old(static_cast<size_t>(libbpf_num_possible_cpus()));
    old[0].egress = {.bytes = 9000, .packets = 1, .reserved = 6};  // one GSO skb of 6 segments
    ASSERT_EQ(bpf_map_update_elem(map.get(), &ifindex, old.data(), BPF_NOEXIST), 0);
    ASSERT_EQ(bpf_obj_pin(map.get(), pins->map_path().c_str()), 0);
  }
  {
    TrafficProgram program = TrafficProgram::load(pins->map_path());
    program.track(ifindex);  // an existing counter is left as it is
    std::optional<psnic_traffic> adopted = TrafficMap(program.map_fd()).read(ifindex);
    ASSERT_TRUE(adopted);
    EXPECT_EQ(adopted->egress.bytes, 9000u);
    EXPECT_EQ(adopted->egress.packets, 1u);
    EXPECT_EQ(adopted->egress.reserved, 0u);
  }
  pins.reset();
  EXPECT_TRUE(cleanup_pins(path).map);
}

// An unmounted /sys/fs/bpf, played by an empty directory on a tmpfs of the test's own, given as
// the mount point.
class UnmountedBpffsTest : public PinDirTest {
 protected:
  void SetUp() override {
    PinDirTest::SetUp();
    ASSERT_NE(mkdtemp(base_), nullptr);
    ASSERT_EQ(mount("psnictest", base_, "tmpfs", 0, "size=1m"), 0) << strerror(errno);
    mount_point_ = std::string(base_) + "/bpf";
    ASSERT_EQ(mkdir(mount_point_.c_str(), 0700), 0);
  }
  void TearDown() override {
    if (on_bpffs(mount_point_)) umount2(mount_point_.c_str(), MNT_DETACH);
    umount2(base_, MNT_DETACH);
    rmdir(base_);
    PinDirTest::TearDown();
  }
  char base_[32] = "/tmp/psnictest-mnt-XXXXXX";
  std::string mount_point_;
};

TEST_F(UnmountedBpffsTest, BpfFilesystemIsMountedOnTheMountPointWhenNoneIsThere) {
  const std::string path = mount_point_ + "/psnic";
  {
    ASSERT_FALSE(on_bpffs(mount_point_));
    PinDir pins = PinDir::open(path, mount_point_);
    EXPECT_TRUE(pins.mounted_bpffs());
    EXPECT_TRUE(on_bpffs(mount_point_));
    EXPECT_TRUE(std::filesystem::is_directory(path + "/links"));
    TrafficProgram program = TrafficProgram::load(pins.map_path());
    EXPECT_TRUE(std::filesystem::exists(pins.map_path()));
  }
  // Once there, it is the host's: a second open mounts nothing more.
  EXPECT_FALSE(PinDir::open(path, mount_point_).mounted_bpffs());
  EXPECT_TRUE(cleanup_pins(path).map);
  EXPECT_EQ(umount2(mount_point_.c_str(), MNT_DETACH), 0) << strerror(errno);
  EXPECT_FALSE(on_bpffs(mount_point_));
}

TEST_F(UnmountedBpffsTest, NoOtherEmptyDirectoryGetsAMount) {
  // Beside the mount point, below it on the tmpfs, and the mount point's parent: all empty
  // directories, none of them the mount point.
  const std::string beside = std::string(base_) + "/elsewhere";
  ASSERT_EQ(mkdir(beside.c_str(), 0700), 0);
  for (const std::string& path : {beside, beside + "/psnic", std::string(base_) + "/psnic"}) {
    try {
      PinDir::open(path, mount_point_);
      ADD_FAILURE() << "opened " << path;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                path + ": not on a bpf filesystem (psnic mounts one on " + mount_point_ + " only)");
    }
  }
  EXPECT_FALSE(on_bpffs(beside));
  EXPECT_TRUE(std::filesystem::is_empty(beside));
  EXPECT_FALSE(std::filesystem::exists(std::string(base_) + "/psnic"));
  EXPECT_FALSE(on_bpffs(mount_point_));
}

TEST_F(UnmountedBpffsTest, AMountPointThatHoldsFilesIsNotMountedOver) {
  const std::string file = mount_point_ + "/something";
  ASSERT_EQ(close(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
  const std::string path = mount_point_ + "/psnic";
  try {
    PinDir::open(path, mount_point_ + "/");  // the same directory, spelt with a slash
    ADD_FAILURE() << "opened " << path;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": not on a bpf filesystem, and " + mount_point_ +
                                         " is not an empty directory to mount one on");
  }
  EXPECT_FALSE(on_bpffs(mount_point_));
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST_F(PinDirTest, DirectoryOffBpffsIsRefusedWithoutMountingAnything) {
  const std::string path = "/tmp/psnictest-pins-" + std::to_string(getpid()) + "/psnic";
  try {
    PinDir::open(path);
    ADD_FAILURE() << "opened " << path;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ": not on a bpf filesystem (psnic mounts one on /sys/fs/bpf only)");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(on_bpffs("/tmp"));
  try {
    PinDir::open("relative/dir");
    ADD_FAILURE() << "opened a relative directory";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "pin directory relative/dir: not absolute");
  }
}

TEST_F(PinDirTest, LabelStoreKeepsLabelsAcrossOpensAndCutsLongOnes) {
  const std::string path = "/sys/fs/bpf/psnictest-labels-" + std::to_string(getpid());
  {
    PinDir pins = PinDir::open(path);
    LabelStore store = LabelStore::open(pins);
    InterfaceLabels labels{"0123abcd", std::string(300, 'n'), "web-0", "shop", "eth0", "veth9"};
    store.put(7, labels);
    store.put(8, InterfaceLabels{});
    store.erase(8);
    EXPECT_FALSE(store.get(8));
    EXPECT_FALSE(store.get(9));
  }
  {
    PinDir pins = PinDir::open(path);
    std::optional<InterfaceLabels> got = LabelStore::open(pins).get(7);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->container_id, "0123abcd");
    EXPECT_EQ(got->container_name, std::string(LabelStore::kMaxLabel, 'n'));
    EXPECT_EQ(got->pod, "web-0");
    EXPECT_EQ(got->namespace_name, "shop");
    EXPECT_EQ(got->interface, "eth0");
    EXPECT_EQ(got->host_interface, "veth9");
    // One of another layout (an older psnic's) is replaced, empty.
    unlink(pins.labels_path().c_str());
    Fd other(bpf_map_create(BPF_MAP_TYPE_HASH, "psnic_labels", 4, 8, 16, nullptr));
    ASSERT_TRUE(other.valid());
    ASSERT_EQ(bpf_obj_pin(other.get(), pins.labels_path().c_str()), 0);
    LabelStore replaced = LabelStore::open(pins);
    EXPECT_FALSE(replaced.get(7));
    replaced.put(7, InterfaceLabels{"x", "", "", "", "eth0", "veth9"});
    EXPECT_EQ(replaced.get(7)->container_id, "x");
  }
  cleanup_pins(path);
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace psnic
