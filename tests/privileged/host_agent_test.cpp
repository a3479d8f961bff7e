// HostAgent, the state behind `psnic-agent` on its own, on namespaces and veths the test makes.
// The agent counts every host peer on the machine; assertions look only at the test's own.
#include "agent/host_agent.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include "kernel/expedite.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using test::Sleeper;
using test::TestVeth;

class HostAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    program_ = std::make_unique<TrafficProgram>(TrafficProgram::load());
    labels_ = std::make_shared<LabelSnapshot>();
    retired_ = std::make_shared<RetiredSnapshot>();
  }
  std::unique_ptr<HostAgent> make_agent(AttachMode mode = AttachMode::tcx) {
    HostAgentOptions options;
    options.mode = mode;
    options.retire_after = std::chrono::seconds(60);
    return std::make_unique<HostAgent>(*program_, options, labels_, retired_, nullptr, nullptr);
  }
  // Copies: the agent may publish a new table, and free this one, at its next step.
  std::optional<InterfaceLabels> live(const std::string& host) const {
    const auto table = labels_->current();
    for (const auto& [ifindex, labels] : *table)
      if (labels.host_interface == host) return labels;
    return std::nullopt;
  }
  std::optional<RetiredSeries> retired(const std::string& host) const {
    const auto table = retired_->current();
    for (const RetiredSeries& series : *table)
      if (series.labels.host_interface == host) return series;
    return std::nullopt;
  }
  // Feeds the agent every link notification waiting on `events`.
  void deliver(LinkEvents& events, HostAgent& agent) {
    bool overrun = false;
    for (const LinkEvent& event : events.drain(overrun))
      agent.handle_all({event}, HostAgent::Clock::now());
    EXPECT_FALSE(overrun);
  }

  std::unique_ptr<TrafficProgram> program_;
  std::shared_ptr<LabelSnapshot> labels_;
  std::shared_ptr<RetiredSnapshot> retired_;
};

TEST_F(HostAgentTest, ReconcileAttachesAndNamesWhatIsAlreadyThere) {
  TestVeth veth('a');
  Sleeper inside(veth.ns.path());
  auto agent = make_agent();
  agent->reconcile();
  const std::optional<InterfaceLabels> labels = live(veth.host);
  ASSERT_TRUE(labels.has_value());
  EXPECT_EQ(labels->interface, "eth0");
  EXPECT_EQ(labels->container_name, veth.ns.name());  // an `ip netns` namespace's name
  EXPECT_EQ(labels->container_id, "");
}

TEST_F(HostAgentTest, NamedNamespaceWithoutProcessIsNamedToo) {
  TestVeth veth('b');
  auto agent = make_agent();
  agent->reconcile();
  ASSERT_NE(live(veth.host), std::nullopt);
  EXPECT_EQ(live(veth.host)->container_name, veth.ns.name());
}

TEST_F(HostAgentTest, NotificationAttachesAtOnceAndTheOwnerIsNamedAfter) {
  auto agent = make_agent();
  agent->reconcile();
  LinkEvents events = LinkEvents::open();
  TestVeth veth('c');
  deliver(events, *agent);
  // Counting before the owner is known; its series waits for the owner's name.
  EXPECT_EQ(test::psnic_programs(veth.host), 2u);
  EXPECT_EQ(live(veth.host), std::nullopt);
  EXPECT_GE(agent->pending(), 1u);
  agent->identify_pending();
  ASSERT_NE(live(veth.host), std::nullopt);
  EXPECT_EQ(live(veth.host)->interface, "eth0");
  EXPECT_EQ(live(veth.host)->container_name, veth.ns.name());
}

TEST_F(HostAgentTest, VanishedInterfaceKeepsItsFinalValuesThenGoes) {
  auto agent = make_agent();
  LinkEvents events = LinkEvents::open();
  std::string host;
  uint64_t sent = 0;
  {
    TestVeth veth('d', /*addressed=*/true);
    host = veth.host;
    agent->reconcile();
    ASSERT_NE(live(host), std::nullopt);
    ASSERT_TRUE(test::send_udp(veth.inside_address, 9, 500, 20));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sent = test::link_statistic(host, "tx_bytes");
    deliver(events, *agent);
  }  // the veth and its namespace are deleted here
  deliver(events, *agent);
  EXPECT_EQ(live(host), std::nullopt);
  const std::optional<RetiredSeries> series = retired(host);
  ASSERT_TRUE(series.has_value());
  EXPECT_GE(series->final.all.egress.bytes, 20u * 500u);
  EXPECT_LE(series->final.all.egress.bytes, sent);
  EXPECT_EQ(series->labels.interface, "eth0");
  agent->expire_retired(HostAgent::Clock::now() + std::chrono::seconds(61));
  EXPECT_EQ(retired(host), std::nullopt);
}

TEST_F(HostAgentTest, ReconcileReattachesWhatAnotherToolRemoved) {
  TestVeth veth('e');
  Sleeper inside(veth.ns.path());
  auto agent = make_agent(AttachMode::tc);
  agent->reconcile();
  ASSERT_NE(live(veth.host), std::nullopt);
  test::must("tc filter del dev " + veth.host + " ingress pref 1 handle 0x5054 bpf");
  EXPECT_EQ(test::must("tc filter show dev " + veth.host + " ingress"), "");
  agent->reconcile();
  EXPECT_NE(test::must("tc filter show dev " + veth.host + " ingress").find("psnic_ingress"),
            std::string::npos);
  EXPECT_NE(live(veth.host), std::nullopt);
}

TEST_F(HostAgentTest, DestructionDetachesEverything) {
  TestVeth veth('f');
  {
    auto agent = make_agent(AttachMode::tc);
    agent->reconcile();
    ASSERT_NE(live(veth.host), std::nullopt);
  }
  EXPECT_EQ(test::must("tc filter show dev " + veth.host + " ingress"), "");
  EXPECT_EQ(test::must("tc filter show dev " + veth.host + " egress"), "");
  EXPECT_TRUE(labels_->current()->empty());
}

TEST_F(HostAgentTest, ALinkGoneBeforeItIsAttachedIsNoError) {
  struct Errors : SelfReport {
    void set_attached(std::string_view, double) override {}
    void count_error(ErrorOp) override { ++count; }
    int count = 0;
  };
  auto errors = std::make_shared<Errors>();
  HostAgentOptions options;
  HostAgent agent(*program_, options, labels_, retired_, errors, nullptr);
  LinkEvent event;
  event.link.ifindex = 0x7ffffff0;  // no such link: deleted right after its notification
  event.link.name = "psnictest-gone";
  event.link.kind = "veth";
  event.link.link = 2;
  event.link.link_netnsid = 0;
  agent.handle_all({event}, HostAgent::Clock::now());
  EXPECT_EQ(agent.attached(), 0u);
  EXPECT_EQ(errors->count, 0);
}

// --expedite-attach on the host's real /sys/kernel/rcu_expedited. The machine's value is put
// back whatever happens: by the RcuExpeditedAt each test holds, and checked (and put back once
// more) here.
class ExpeditedHostAgentTest : public HostAgentTest {
 protected:
  void SetUp() override {
    HostAgentTest::SetUp();
    if (IsSkipped()) return;
    machine_value_ = test::rcu_expedited();
    ASSERT_FALSE(machine_value_.empty()) << kRcuExpeditedKnob << " cannot be read";
    char dir[] = "/tmp/psnictest-record-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    record_dir_ = dir;
  }
  void TearDown() override {
    if (!record_dir_.empty()) std::filesystem::remove_all(record_dir_);
    if (machine_value_.empty()) return;
    const std::string now = test::rcu_expedited();
    EXPECT_EQ(now, machine_value_) << kRcuExpeditedKnob << " not given back its value";
    if (now != machine_value_) test::set_rcu_expedited(machine_value_);
  }

  // Runs `step` while a thread reads the knob every 0.1 ms: whether it was ever "1" meanwhile.
  static bool knob_set_during(const std::function<void()>& step) {
    std::atomic<bool> stop{false};
    std::atomic<bool> seen{false};
    std::thread watcher([&] {
      while (!stop) {
        if (test::rcu_expedited() == "1") seen = true;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
    step();
    stop = true;
    watcher.join();
    return seen;
  }

  std::string machine_value_;
  std::string record_dir_;
};

TEST_F(ExpeditedHostAgentTest, HeldWhileABacklogIsAttachedAndDetachedThenGivenBack) {
  test::RcuExpeditedAt ordinary("0");
  test::TestNetns ns('q');
  const std::vector<std::string> veths = test::make_host_veths(ns, kExpediteAbove + 20);
  ASSERT_FALSE(HasFailure());
  const std::string record = record_dir_ + "/rcu_expedited";
  ExpeditedGracePeriods expedite(kRcuExpeditedKnob, record);
  ASSERT_TRUE(expedite.usable());
  HostAgentOptions options;
  options.retire_after = std::chrono::seconds(60);
  options.expedite = &expedite;
  auto agent = std::make_unique<HostAgent>(*program_, options, labels_, retired_, nullptr, nullptr);

  EXPECT_TRUE(knob_set_during([&] { agent->reconcile(); }));
  EXPECT_EQ(test::rcu_expedited(), "0");
  EXPECT_FALSE(std::filesystem::is_symlink(record));
  for (const std::string& veth : veths) EXPECT_EQ(test::psnic_programs(veth), 2u) << veth;

  // Ephemeral: its exit detaches them all, expedited too.
  EXPECT_TRUE(knob_set_during([&] { agent.reset(); }));
  EXPECT_EQ(test::rcu_expedited(), "0");
  EXPECT_FALSE(std::filesystem::is_symlink(record));
  for (const std::string& veth : veths) EXPECT_EQ(test::psnic_programs(veth), 0u) << veth;
}

// A few interfaces (a container's start) never touch the host's knob.
TEST_F(ExpeditedHostAgentTest, AFewInterfacesLeaveTheKnobAlone) {
  test::RcuExpeditedAt ordinary("0");
  TestVeth veth('r');
  ExpeditedGracePeriods expedite(kRcuExpeditedKnob, record_dir_ + "/rcu_expedited");
  HostAgentOptions options;
  options.expedite = &expedite;
  auto agent = std::make_unique<HostAgent>(*program_, options, labels_, retired_, nullptr, nullptr);
  // Other tests' veths may be on the host: only a host with few is this test's case.
  bool set = knob_set_during([&] { agent->reconcile(); });
  if (agent->attached() <= kExpediteAbove) {
    EXPECT_FALSE(set);
  }
  EXPECT_EQ(test::psnic_programs(veth.host), 2u);
  EXPECT_EQ(test::rcu_expedited(), "0");
}

}  // namespace
}  // namespace psnic
