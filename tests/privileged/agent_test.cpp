// PidAgent, the state behind `psnic-agent --pid`, on namespaces and veths made by the test.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "agent/pid_agent.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using test::Sleeper;
using test::TestVeth;

// Records what the agent reports about itself.
class RecordedReport : public SelfReport {
 public:
  void set_attached(std::string_view mode, double n) override { attached[std::string(mode)] = n; }
  void count_error(ErrorOp op) override { ++errors[std::string(op_name(op))]; }
  std::map<std::string, double> attached;
  std::map<std::string, int> errors;
};

class PidAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    program_ = std::make_unique<TrafficProgram>(TrafficProgram::load());
    labels_ = std::make_shared<LabelSnapshot>();
    self_ = std::make_shared<RecordedReport>();
  }
  bool tracked(uint32_t ifindex) const {
    std::vector<psnic_traffic> values(static_cast<size_t>(libbpf_num_possible_cpus()));
    return bpf_map_lookup_elem(program_->map_fd(), &ifindex, values.data()) == 0;
  }

  std::unique_ptr<TrafficProgram> program_;
  std::shared_ptr<LabelSnapshot> labels_;
  std::shared_ptr<RecordedReport> self_;
};

TEST_F(PidAgentTest, AttachesAndPublishesLabels) {
  TestVeth veth('a');
  Sleeper inside(veth.ns.path());
  uint32_t ifindex = test::host_ifindex(veth.host);
  PidAgent agent(*program_, AttachMode::tcx, labels_, self_);
  EXPECT_EQ(agent.add(std::to_string(inside.pid())), 0);
  EXPECT_EQ(agent.attached(), 1u);
  EXPECT_TRUE(tracked(ifindex));
  auto table = labels_->current();
  ASSERT_EQ(table->count(ifindex), 1u);
  EXPECT_EQ(table->at(ifindex).interface, "eth0");
  EXPECT_EQ(table->at(ifindex).host_interface, veth.host);
  EXPECT_EQ(table->at(ifindex).container_id, "");
  EXPECT_EQ(self_->attached["tcx"], 1);
  EXPECT_EQ(self_->attached["tc"], 0);
}

TEST_F(PidAgentTest, AnswersBadPidsAsPsnicDoes) {
  PidAgent agent(*program_, AttachMode::tcx, labels_, self_);
  Sleeper here;
  EXPECT_EQ(agent.add("abc"), 2);
  EXPECT_EQ(agent.add("0"), 2);
  Sleeper gone;
  pid_t gone_pid = gone.pid();
  gone.stop();
  EXPECT_EQ(agent.add(std::to_string(gone_pid)), 2);
  EXPECT_EQ(agent.add(std::to_string(here.pid())), 1);  // host network
  EXPECT_EQ(agent.attached(), 0u);
  EXPECT_TRUE(self_->errors.empty());  // bad input is not a failed operation
  EXPECT_TRUE(labels_->current()->empty());
}

TEST_F(PidAgentTest, ReleasesAProcessWhenItExitsAndStopsWhenNoneIsLeft) {
  TestVeth veth('b');
  uint32_t ifindex = test::host_ifindex(veth.host);
  Sleeper first(veth.ns.path());
  Sleeper second(veth.ns.path());
  PidAgent agent(*program_, AttachMode::tc, labels_, self_);
  ASSERT_EQ(agent.add(std::to_string(first.pid())), 0);
  ASSERT_EQ(agent.add(std::to_string(second.pid())), 0);

  bool shared_counter_kept = false, label_kept = false;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    first.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // The second process is in the same namespace: its counter and labels stay.
    shared_counter_kept = tracked(ifindex);
    label_kept = labels_->current()->count(ifindex) == 1;
    second.stop();
  });
  agent.run(std::chrono::milliseconds(1000), nullptr);  // returns once both have exited
  stopper.join();
  EXPECT_TRUE(shared_counter_kept);
  EXPECT_TRUE(label_kept);
  EXPECT_EQ(agent.attached(), 0u);
  EXPECT_FALSE(tracked(ifindex));
  EXPECT_TRUE(labels_->current()->empty());
  EXPECT_EQ(test::must("tc filter show dev " + veth.host + " ingress"), "");
}

}  // namespace
}  // namespace psnic
