// The agent's decisions, without root: the Inventory driven by link events and host passes made
// up here, acting on a fake kernel, reading a fake clock. What only the kernel can show (that a
// hook counts, that a pin outlives its agent) stays in the privileged and e2e tiers.
#include "agent/inventory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/counters.h"
#include "agent/views.h"
#include "base/error.h"
#include "tests/support/captured_stderr.h"

namespace psnic {
namespace {

using namespace std::chrono_literals;
using Clock = Inventory::Clock;

psnic_traffic traffic(uint64_t bytes) {
  psnic_traffic t{};
  t.ingress.bytes = bytes;
  t.ingress.packets = 1;
  t.egress.bytes = 2 * bytes;
  t.egress.packets = 2;
  return t;
}

// The kernel as the inventory sees it: counters and hooks, always together, with what an
// earlier pinned agent left. Every call is recorded; attaching advances the clock as TCX does.
class FakeCounters : public Counters {
 public:
  explicit FakeCounters(Clock::time_point& now) : now_(now) {}

  AttachMode mode() const override { return AttachMode::tcx; }
  const std::string* pin_path() const override { return pinned_dir ? &*pinned_dir : nullptr; }

  std::vector<std::optional<Error>> attach(const std::vector<AttachRequest>& requests) override {
    std::vector<std::optional<Error>> errors;
    for (const AttachRequest& r : requests) {
      now_ += attach_cost;
      calls.push_back("attach " + r.name);
      if (!knob.empty()) knob_at_attach.push_back(read_knob());
      if (auto it = failing.find(r.ifindex); it != failing.end()) {
        errors.push_back(Error(r.name + ": tcx ingress link", it->second, "failed"));
        continue;
      }
      hooked[r.ifindex] = r.name;
      counters.try_emplace(r.ifindex, psnic_traffic{});
      errors.push_back(std::nullopt);
    }
    return errors;
  }
  void detach(uint32_t ifindex) override {
    calls.push_back("detach " + std::to_string(ifindex));
    hooked.erase(ifindex);
    at_peers.erase(ifindex);
    counters.erase(ifindex);
    stored.erase(ifindex);
  }
  bool intact(uint32_t ifindex) const override {
    return hooked.count(ifindex) && !removed_by_another_tool.count(ifindex) &&
           !peer_removed_by_another_tool.count(ifindex);
  }
  void reattach(uint32_t ifindex) override {
    calls.push_back("reattach " + std::to_string(ifindex));
    removed_by_another_tool.erase(ifindex);
    if (peer_removed_by_another_tool.erase(ifindex)) at_peers.erase(ifindex);
  }
  void count_at_peer(const PeerRequest& p) override {
    peer_calls.push_back(p.host_name + " -> " + std::to_string(p.ifindex) + " in netns " +
                         std::to_string(p.netns_inode) + " of " + std::to_string(p.pid));
    if (!hooked.count(p.host_ifindex)) throw Error(p.host_name, ENODEV, "not counted");
    if (auto it = peer_failing.find(p.host_ifindex); it != peer_failing.end())
      throw Error(p.host_name + ": peer's ingress", it->second,
                  "failed (" + std::to_string(it->second) + ")");
    now_ += attach_cost;
    if (!knob.empty()) knob_at_peer.push_back(read_knob());
    at_peers.insert(p.host_ifindex);
  }
  bool at_peer(uint32_t ifindex) const override { return at_peers.count(ifindex) != 0; }
  std::optional<TrafficCounts> read(uint32_t ifindex) const override {
    auto it = counters.find(ifindex);
    if (it == counters.end()) return std::nullopt;
    return it->second;
  }
  bool adopt(const AttachRequest& r) override {
    if (!left_counting.count(r.ifindex)) return false;
    calls.push_back("adopt " + r.name);
    hooked[r.ifindex] = r.name;
    if (left_at_peer.count(r.ifindex)) at_peers.insert(r.ifindex);
    counters.try_emplace(r.ifindex, psnic_traffic{});
    return true;
  }
  void remove_remnants(uint32_t ifindex) override {
    calls.push_back("remove_remnants " + std::to_string(ifindex));
  }
  std::vector<uint32_t> counted() const override {
    std::vector<uint32_t> keys;
    for (const auto& [ifindex, value] : counters) keys.push_back(ifindex);
    return keys;
  }
  std::vector<uint32_t> pinned() const override {
    return {pinned_links.begin(), pinned_links.end()};
  }
  void unpin(uint32_t ifindex) override {
    calls.push_back("unpin " + std::to_string(ifindex));
    pinned_links.erase(ifindex);
  }
  void forget(uint32_t ifindex) override {
    calls.push_back("forget " + std::to_string(ifindex));
    counters.erase(ifindex);
    stored.erase(ifindex);
  }
  std::optional<InterfaceLabels> stored_labels(uint32_t ifindex) const override {
    auto it = stored.find(ifindex);
    if (it == stored.end()) return std::nullopt;
    return it->second;
  }
  void store_labels(uint32_t ifindex, const InterfaceLabels& labels) override {
    if (pinned_dir) stored[ifindex] = labels;
  }

  std::string read_knob() const {
    std::ifstream in(knob);
    std::string value;
    in >> value;
    return value;
  }

  Clock::time_point& now_;
  Clock::duration attach_cost = 0ms;
  std::string knob;                         // set: the RCU knob's file, read at each attach
  std::vector<std::string> knob_at_attach;  // what it read then
  std::vector<std::string> knob_at_peer;    // and at each peer's attach
  std::optional<std::string> pinned_dir;    // set: a pinned agent
  std::map<uint32_t, std::string> hooked;
  std::map<uint32_t, psnic_traffic> counters;
  std::map<uint32_t, InterfaceLabels> stored;
  std::set<uint32_t> removed_by_another_tool;
  std::set<uint32_t> left_counting;  // an earlier pinned agent's pairs, adoptable
  std::set<uint32_t> pinned_links;
  std::map<uint32_t, int> failing;  // ifindex -> errno of its attach
  std::vector<std::string> calls;
  // Receive counted at the container-side peer (PeerLink), apart from `calls`.
  std::set<uint32_t> at_peers;
  std::set<uint32_t> left_at_peer;  // an earlier pinned agent's peer links, adoptable
  std::set<uint32_t> peer_removed_by_another_tool;
  std::map<uint32_t, int> peer_failing;  // host ifindex -> errno of its peer's attach
  std::vector<std::string> peer_calls;
};

struct FakeSelf : SelfReport {
  void set_attached(std::string_view mode, double n) override { attached[std::string(mode)] = n; }
  void count_error(ErrorOp op) override { ++errors[op]; }
  void set_received_at_peer(double n) override { at_peer = n; }
  std::map<std::string, double> attached;
  double at_peer = -1;
  std::map<ErrorOp, int> errors;
};

// A host veth whose peer is eth0 in another namespace.
Link host_veth(uint32_t ifindex, const std::string& name) {
  Link link;
  link.ifindex = ifindex;
  link.name = name;
  link.kind = "veth";
  link.link = 2;
  link.link_netnsid = 0;
  return link;
}

LinkEvent added(uint32_t ifindex, const std::string& name) { return {host_veth(ifindex, name)}; }
LinkEvent deleted(uint32_t ifindex, const std::string& name) {
  return {host_veth(ifindex, name), true};
}

const std::string kIdA(64, 'a');
const std::string kIdB(64, 'b');

class InventoryTest : public ::testing::Test {
 protected:
  InventoryTest() : counters_(now_) {}

  Inventory& make(std::chrono::milliseconds retire_after = 60s) {
    inventory_.emplace(
        counters_,
        [this](const ResolveOptions&) {
          ++passes_;
          if (discover_error_) throw Error("netlink", EIO, "input/output error");
          return host_;
        },
        Inventory::Options{30s, retire_after, 2s, expedite_, receive_at_peer_}, labels_, retired_,
        self_,
        [this](OwnerRequest request) {
          if (queue_full_) return false;
          questions_.push_back(std::move(request));
          return true;
        },
        [this] { return now_; }, owners_);
    return *inventory_;
  }

  // The runtime (a RuntimeWorker's source) answers question `i` as names_ says, or fails with
  // `error`.
  OwnerAnswer answer_to(const OwnerRequest& question, const std::string& error = "") const {
    OwnerAnswer answer{question.ticket, {question.labels, "", ""}, error};
    if (auto it = names_.find(question.owner.identity.id); error.empty() && it != names_.end()) {
      answer.facts.labels.container_name = it->second;
      answer.facts.image = "busybox:" + it->second;
      answer.facts.runtime = "docker";
    }
    return answer;
  }
  // The one question asked so far, taken: the test answers it when it chooses.
  OwnerRequest take_question() {
    EXPECT_EQ(questions_.size(), 1u);
    OwnerRequest question = questions_.empty() ? OwnerRequest{} : questions_.front();
    questions_.clear();
    return question;
  }
  // An inventory counting veth7, of container kIdA, named `name` by its runtime.
  Inventory& make_with_named_veth7(const std::string& name) {
    add_to_host(7, "veth7", kIdA);
    names_[kIdA] = name;
    Inventory& inventory = make();
    inventory.reconcile();
    answer_all();
    return inventory;
  }
  // Answers every question asked so far.
  void answer_all() {
    std::vector<OwnerAnswer> answers;
    for (const OwnerRequest& question : questions_) answers.push_back(answer_to(question));
    questions_.clear();
    inventory_->owners_described(answers);
  }

  // The host has a veth `host` whose peer is eth0 of a namespace; with `container_id`, a
  // process of that container is in it, so its owner can be named.
  void add_to_host(uint32_t ifindex, const std::string& host, const std::string& container_id) {
    host_.host_links.push_back(host_veth(ifindex, host));
    if (container_id.empty()) return;
    NetnsReport owner;
    owner.pid = static_cast<pid_t>(1000 + ifindex);
    owner.netns_inode = 4026530000u + static_cast<uint8_t>(container_id[0]);  // one per container
    owner.identity.id = container_id;
    owner.interfaces.push_back(eth0_peered_with(ifindex, host));
    host_.namespaces.push_back(owner);
  }
  // eth0 of a namespace, whose host peer is `host`.
  static InterfacePair eth0_peered_with(uint32_t ifindex, const std::string& host) {
    InterfacePair pair;
    pair.ifindex = 2;
    pair.name = "eth0";
    pair.kind = "veth";
    pair.placement = Placement::host_peer;
    pair.host_ifindex = ifindex;
    pair.host_name = host;
    return pair;
  }
  void remove_from_host(uint32_t ifindex) {
    std::erase_if(host_.host_links, [&](const Link& l) { return l.ifindex == ifindex; });
    std::erase_if(host_.namespaces, [&](const NetnsReport& n) {
      return !n.interfaces.empty() && n.interfaces[0].host_ifindex == ifindex;
    });
  }

  // What the exporter sees.
  std::optional<InterfaceLabels> live(const std::string& host) const {
    const auto table = labels_->current();
    for (const auto& [ifindex, labels] : *table)
      if (labels.host_interface == host) return labels;
    return std::nullopt;
  }
  std::vector<RetiredSeries> retired() const { return *retired_->current(); }
  // psnic_container_info's entry for a container.
  std::optional<OwnerFacts> info(const std::string& container_id) const {
    for (const OwnerFacts& facts : *owners_->current())
      if (facts.labels.container_id == container_id) return facts;
    return std::nullopt;
  }

  Clock::time_point now_ = Clock::time_point{} + 24h;
  FakeCounters counters_;
  BatchReport host_;
  bool discover_error_ = false;
  int passes_ = 0;
  std::map<std::string, std::string> names_;  // container id -> name
  std::vector<OwnerRequest> questions_;       // asked of the runtime, not answered yet
  bool queue_full_ = false;
  std::shared_ptr<LabelSnapshot> labels_ = std::make_shared<LabelSnapshot>();
  std::shared_ptr<RetiredSnapshot> retired_ = std::make_shared<RetiredSnapshot>();
  std::shared_ptr<OwnerSnapshot> owners_ = std::make_shared<OwnerSnapshot>();
  std::shared_ptr<FakeSelf> self_ = std::make_shared<FakeSelf>();
  ExpeditedGracePeriods* expedite_ = nullptr;
  bool receive_at_peer_ = true;
  std::optional<Inventory> inventory_;
};

TEST_F(InventoryTest, ReconcileCountsEveryHostPeerAndNamesItsOwner) {
  add_to_host(7, "veth7", kIdA);
  names_[kIdA] = "web";
  host_.host_links.push_back(Link{9, "dummy9", "dummy", 0, 0, std::nullopt});  // not a peer
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"attach veth7"});
  answer_all();
  ASSERT_TRUE(live("veth7"));
  EXPECT_EQ(live("veth7")->container_id, kIdA);
  EXPECT_EQ(live("veth7")->container_name, "web");
  EXPECT_EQ(live("veth7")->interface, "eth0");
  EXPECT_EQ(inventory.pending(), 0u);
  EXPECT_EQ(self_->attached["tcx"], 1);
}

TEST_F(InventoryTest, NotifiedPeerCountsAtOnceAndItsOwnerIsNamedWithBackoff) {
  Inventory& inventory = make();
  inventory.reconcile();
  // The veth comes first, its container's first process later.
  add_to_host(7, "veth7", "");
  inventory.handle_all({added(7, "veth7")}, now_);
  // Counting before the owner is known; its series waits for the owner's name.
  EXPECT_EQ(counters_.hooked.count(7), 1u);
  EXPECT_FALSE(live("veth7"));
  EXPECT_EQ(inventory.pending(), 1u);
  EXPECT_EQ(inventory.unexported(), 1u);

  // Looked for again at growing intervals while nobody is in the namespace.
  std::vector<Clock::duration> waits;
  for (int i = 0; i < 4; ++i) {
    const Clock::time_point due = inventory.next_deadline();
    waits.push_back(due - now_);
    now_ = due;
    ASSERT_TRUE(inventory.identify_due(now_));
    inventory.identify_pending();
  }
  EXPECT_EQ(waits, (std::vector<Clock::duration>{20ms, 40ms, 80ms, 160ms}));

  remove_from_host(7);
  add_to_host(7, "veth7", kIdA);
  now_ = inventory.next_deadline();
  inventory.identify_pending();
  EXPECT_EQ(inventory.pending(), 1u);  // found; its runtime is asked
  answer_all();
  EXPECT_EQ(inventory.pending(), 0u);
  ASSERT_TRUE(live("veth7"));  // first exported named
  EXPECT_EQ(live("veth7")->container_id, kIdA);
  EXPECT_FALSE(inventory.identify_due(now_ + 1h));  // nothing left to identify
}

TEST_F(InventoryTest, BackoffStopsGrowingAtFiveSeconds) {
  Inventory& inventory = make();
  inventory.reconcile();
  add_to_host(7, "veth7", "");
  inventory.handle_all({added(7, "veth7")}, now_);
  Clock::duration last{};
  for (int i = 0; i < 12; ++i) {
    const Clock::time_point due = inventory.next_deadline();
    last = due - now_;
    now_ = due;
    if (inventory.identify_due(now_)) inventory.identify_pending();
    inventory.export_overdue(now_);
  }
  EXPECT_EQ(last, 5000ms);
  // Exported after its wait with what is known: its host interface.
  ASSERT_TRUE(live("veth7"));
  EXPECT_EQ(live("veth7")->container_id, "");
}

TEST_F(InventoryTest, AddedAndDeletedWithinOneBatchIsNeverAttached) {
  Inventory& inventory = make();
  inventory.handle_all({added(7, "veth7"), deleted(7, "veth7"), added(8, "veth8")}, now_);
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"attach veth8"});
  EXPECT_EQ(inventory.attached(), 1u);
}

TEST_F(InventoryTest, BacklogOfAPassOutOfTimeYieldsToNotifications) {
  for (uint32_t i = 1; i <= 10; ++i) add_to_host(i, "veth" + std::to_string(i), "");
  counters_.attach_cost = 25ms;  // TCX: one RCU grace period per link
  Inventory& inventory = make();
  // A 100 ms slice: four interfaces (one chunk) then the rest waits, in link order.
  inventory.reconcile(100ms);
  EXPECT_EQ(inventory.attached(), 4u);
  EXPECT_EQ(inventory.backlog(), 6u);
  EXPECT_EQ(inventory.next_deadline(), now_);  // the loop comes back at once

  // Deleted while waiting: out of the backlog, never attached, nothing retired.
  inventory.handle_all({deleted(9, "veth9")}, now_);
  EXPECT_EQ(inventory.backlog(), 5u);
  // A notification of a waiting link makes it due at once, ahead of the others.
  inventory.handle_all({added(10, "veth10")}, now_);
  EXPECT_EQ(counters_.hooked.count(10), 1u);
  EXPECT_EQ(inventory.backlog(), 4u);

  inventory.attach_backlog(Clock::time_point::max());
  EXPECT_EQ(inventory.backlog(), 0u);
  EXPECT_EQ(counters_.calls,
            (std::vector<std::string>{"attach veth1", "attach veth2", "attach veth3",
                                      "attach veth4", "attach veth10", "attach veth5",
                                      "attach veth6", "attach veth7", "attach veth8"}));
  EXPECT_FALSE(live("veth9"));
  EXPECT_TRUE(retired().empty());
}

TEST_F(InventoryTest, VanishedInterfaceIsExportedWithItsFinalValuesForItsGracePeriod) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make(/*retire_after=*/10s);
  inventory.reconcile();
  answer_all();
  remove_from_host(7);
  counters_.counters[7] = traffic(500);
  const Clock::time_point gone_at = now_;
  inventory.handle_all({deleted(7, "veth7")}, gone_at);
  EXPECT_FALSE(live("veth7"));
  EXPECT_EQ(counters_.calls.back(), "detach 7");
  ASSERT_EQ(retired().size(), 1u);
  EXPECT_EQ(retired()[0].labels.container_id, kIdA);
  EXPECT_EQ(retired()[0].final.all.ingress.bytes, 500u);
  EXPECT_EQ(retired()[0].final.all.egress.bytes, 1000u);
  EXPECT_EQ(inventory.next_deadline(), gone_at + 10s);

  inventory.expire_retired(gone_at + 10s - 1ms);
  EXPECT_EQ(retired().size(), 1u);
  inventory.expire_retired(gone_at + 10s);
  EXPECT_TRUE(retired().empty());
}

TEST_F(InventoryTest, InterfaceGoneWithoutANotificationIsRetiredByTheNextPass) {
  add_to_host(7, "veth7", kIdA);
  add_to_host(8, "veth8", kIdB);
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  remove_from_host(7);  // the notification was lost (an overrun socket)
  now_ += 30s;
  ASSERT_TRUE(inventory.reconcile_due(now_));
  inventory.reconcile();
  EXPECT_FALSE(live("veth7"));
  EXPECT_TRUE(live("veth8"));
  ASSERT_EQ(retired().size(), 1u);
  EXPECT_EQ(retired()[0].labels.host_interface, "veth7");
}

TEST_F(InventoryTest, RenamedInterfaceKeepsCountingUnderItsNewName) {
  add_to_host(7, "veth7", kIdA);
  counters_.pinned_dir = "/sys/fs/bpf/psnictest";
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  const std::vector<std::string> calls = counters_.calls;
  inventory.handle_all({added(7, "renamed7")}, now_);
  EXPECT_FALSE(live("veth7"));
  ASSERT_TRUE(live("renamed7"));
  EXPECT_EQ(live("renamed7")->container_id, kIdA);
  EXPECT_EQ(counters_.stored.at(7).host_interface, "renamed7");  // the next agent knows it too
  EXPECT_EQ(counters_.calls, calls);                             // no detach, no second attach
}

// A container made again under its name: its new veth's series is live, and the old one's
// retired series, with the same labels, is not exported beside it.
TEST_F(InventoryTest, RetiredSeriesShadowedByALiveOneWithTheSameLabelsIsNotExported) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  inventory.handle_all({deleted(7, "veth7")}, now_);
  ASSERT_EQ(retired().size(), 1u);
  remove_from_host(7);
  add_to_host(11, "veth7", kIdA);  // same names, new ifindex
  inventory.handle_all({added(11, "veth7")}, now_);
  inventory.identify_pending();
  answer_all();
  ASSERT_TRUE(live("veth7"));
  EXPECT_TRUE(retired().empty());
  EXPECT_EQ(inventory.retired(), 1u);  // kept until its grace period ends, just not exported
}

// An ifindex the kernel gives again to a new interface: a new counter, never the old one's.
TEST_F(InventoryTest, IfindexReusedByANewInterfaceStartsItsOwnSeries) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  counters_.counters[7] = traffic(500);
  remove_from_host(7);
  add_to_host(7, "vethnew", kIdB);
  inventory.handle_all({deleted(7, "veth7"), added(7, "vethnew")}, now_);
  EXPECT_EQ(counters_.calls,
            (std::vector<std::string>{"attach veth7", "detach 7", "attach vethnew"}));
  EXPECT_EQ(counters_.counters.at(7).ingress.bytes, 0u);
  inventory.identify_pending();
  answer_all();
  EXPECT_EQ(live("vethnew")->container_id, kIdB);
  ASSERT_EQ(retired().size(), 1u);
  EXPECT_EQ(retired()[0].labels.host_interface, "veth7");
  EXPECT_EQ(retired()[0].final.all.ingress.bytes, 500u);
}

TEST_F(InventoryTest, HooksAnotherToolRemovedAreAttachedAgainAndTheCounterContinues) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  counters_.counters[7] = traffic(500);
  counters_.removed_by_another_tool.insert(7);
  inventory.reconcile();
  EXPECT_EQ(counters_.calls, (std::vector<std::string>{"attach veth7", "reattach 7"}));
  EXPECT_EQ(counters_.counters.at(7).ingress.bytes, 500u);
  EXPECT_EQ(live("veth7")->container_id, kIdA);
}

TEST_F(InventoryTest, ALinkGoneBeforeItIsAttachedIsNoErrorOtherFailuresAreCounted) {
  Inventory& inventory = make();
  counters_.failing[7] = ENODEV;
  counters_.failing[8] = EPERM;
  inventory.handle_all({added(7, "veth7"), added(8, "veth8")}, now_);
  EXPECT_EQ(inventory.attached(), 0u);
  EXPECT_EQ(self_->errors[ErrorOp::kAttach], 1);
}

TEST_F(InventoryTest, AFailedPassIsCountedAndTheNextOneIsStillScheduled) {
  Inventory& inventory = make();
  discover_error_ = true;
  inventory.reconcile();
  EXPECT_EQ(self_->errors[ErrorOp::kReconcile], 1);
  EXPECT_EQ(inventory.next_deadline(), now_ + 30s);
}

TEST_F(InventoryTest, ARuntimesEventNamesTheContainersInterfacesAgainAtOnce) {
  add_to_host(7, "veth7", kIdA);
  add_to_host(8, "veth8", kIdB);
  names_[kIdA] = "old";
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  ASSERT_EQ(live("veth7")->container_name, "old");
  names_[kIdA] = "new";
  const int passes = passes_;
  inventory.owners_changed({kIdA});
  EXPECT_EQ(inventory.pending(), 1u);  // only that container's interface
  EXPECT_TRUE(inventory.identify_due(now_));
  inventory.identify_pending();
  EXPECT_EQ(passes_, passes + 1);
  EXPECT_EQ(live("veth7")->container_name, "old");  // until the runtime answers
  answer_all();
  EXPECT_EQ(live("veth7")->container_name, "new");
  inventory.owners_changed({std::string(64, 'c')});  // not one psnic counts: nothing to do
  EXPECT_FALSE(inventory.identify_due(now_));
}

// ---- Owners named by a runtime, whose answers come later or never ------------------------------

TEST_F(InventoryTest, AHungRuntimeDelaysTheNamesNeverTheCounting) {
  Inventory& inventory = make();
  inventory.reconcile();
  const Clock::time_point next_pass = inventory.next_deadline();
  add_to_host(7, "veth7", kIdA);
  names_[kIdA] = "web";
  const Clock::time_point due = now_ + 2s;  // Options::name_wait
  inventory.handle_all({added(7, "veth7")}, now_);
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"attach veth7"});  // counted at once
  now_ = inventory.next_deadline();
  inventory.identify_pending();
  inventory.attach_backlog(now_ + 1ms);  // its peer, queued when its namespace was found
  ASSERT_EQ(questions_.size(), 1u);
  EXPECT_EQ(questions_[0].owner.identity.id, kIdA);
  EXPECT_EQ(questions_[0].labels.interface, "eth0");
  EXPECT_EQ(inventory.pending(), 1u);
  // Its series waits a while for the answer; found, nothing is looked for again meanwhile.
  EXPECT_FALSE(live("veth7"));
  EXPECT_FALSE(inventory.identify_due(now_ + 1h));
  EXPECT_EQ(inventory.next_deadline(), due);
  inventory.export_overdue(due - 1ms);
  EXPECT_FALSE(live("veth7"));
  now_ = due;
  inventory.export_overdue(now_);
  ASSERT_TRUE(live("veth7"));
  EXPECT_EQ(live("veth7")->container_id, kIdA);  // what the resolver knew
  EXPECT_EQ(live("veth7")->interface, "eth0");
  EXPECT_EQ(live("veth7")->container_name, "");
  EXPECT_EQ(inventory.next_deadline(), next_pass);  // nothing timed is left but the next pass
  // A late answer renames nothing: a series' labels are those it was first exported with. What
  // it says is joined on by container id, from psnic_container_info.
  answer_all();
  EXPECT_EQ(live("veth7")->container_name, "");
  ASSERT_TRUE(info(kIdA));
  EXPECT_EQ(info(kIdA)->labels.container_name, "web");
  EXPECT_EQ(info(kIdA)->image, "busybox:web");
  EXPECT_EQ(inventory.pending(), 0u);
}

TEST_F(InventoryTest, APodmanNetnsWaitsForItsFirstProcessOtherNamedNamespacesDoNot) {
  // Named namespaces with no process in them: podman's (netns-<uuid>) and an `ip netns add` one.
  auto named_namespace = [&](uint32_t ifindex, const std::string& host, const std::string& name) {
    add_to_host(ifindex, host, "");
    NetnsReport owner;
    owner.netns_inode = ifindex;
    owner.netns_name = name;
    owner.interfaces.push_back(eth0_peered_with(ifindex, host));
    host_.namespaces.push_back(owner);
  };
  named_namespace(7, "veth7", "netns-7a1d4765-dc9d-f8d1-0f84-8e0fa7ac1804");
  named_namespace(8, "veth8", "psnictest-x");
  Inventory& inventory = make();
  inventory.reconcile();
  ASSERT_TRUE(live("veth8"));  // the plain one at once, by its name
  EXPECT_EQ(live("veth8")->container_name, "psnictest-x");
  EXPECT_TRUE(questions_.empty());
  EXPECT_FALSE(live("veth7"));  // podman's waits
  // The container's process comes: its cgroup names it, and podman is asked, not the netns name.
  host_.namespaces[0].pid = 4242;
  host_.namespaces[0].identity = {"podman", kIdA, ""};
  now_ += 40ms;
  inventory.identify_pending();
  ASSERT_EQ(questions_.size(), 1u);
  const OwnerRequest question = take_question();
  EXPECT_EQ(question.owner.identity.id, kIdA);
  EXPECT_EQ(question.labels.container_name, "");
  // One that never gets a process is named by its name after the answer wait.
  named_namespace(9, "veth9", "netns-11111111-2222-3333-4444-555555555555");
  inventory.handle_all({added(9, "veth9")}, now_);
  inventory.identify_pending();
  EXPECT_FALSE(live("veth9"));
  now_ += 1s;  // half the name wait
  inventory.identify_pending();
  ASSERT_TRUE(live("veth9"));
  EXPECT_EQ(live("veth9")->container_name, "netns-11111111-2222-3333-4444-555555555555");
}

TEST_F(InventoryTest, OneQuestionPerOwnerNamesAllItsInterfaces) {
  add_to_host(7, "veth7", kIdA);
  add_to_host(8, "veth8", kIdA);  // a second interface of the same container
  names_[kIdA] = "web";
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(questions_.size(), 1u);
  now_ += 30s;
  inventory.reconcile();  // asked again while the answer is out: joined, not asked twice
  EXPECT_EQ(questions_.size(), 1u);
  answer_all();
  EXPECT_EQ(live("veth7")->container_name, "web");
  EXPECT_EQ(live("veth8")->container_name, "web");
  now_ += 30s;
  inventory.reconcile();  // answered: the next pass asks again (the runtime may keep answers)
  EXPECT_EQ(questions_.size(), 1u);
}

TEST_F(InventoryTest, AnAnswerAfterItsInterfaceWentNamesNobody) {
  add_to_host(7, "veth7", kIdA);
  names_[kIdA] = "web";
  Inventory& inventory = make();
  inventory.reconcile();
  ASSERT_EQ(questions_.size(), 1u);
  remove_from_host(7);
  inventory.handle_all({deleted(7, "veth7")}, now_);
  answer_all();
  EXPECT_FALSE(live("veth7"));
  ASSERT_EQ(retired().size(), 1u);
  EXPECT_EQ(retired()[0].labels.container_name, "");
}

// The kernel gives the ifindex of a gone interface to a new one in another container: the old
// question's answer, arriving late, must not name the new interface.
TEST_F(InventoryTest, AnAnswerAboutAnIfindexsEarlierInterfaceNamesNobody) {
  add_to_host(7, "veth7", kIdA);
  names_[kIdA] = "old-web";
  names_[kIdB] = "db";
  Inventory& inventory = make();
  inventory.reconcile();
  const OwnerRequest earlier = take_question();
  remove_from_host(7);
  add_to_host(7, "vethnew", kIdB);
  inventory.handle_all({deleted(7, "veth7"), added(7, "vethnew")}, now_);
  inventory.identify_pending();
  ASSERT_EQ(questions_.size(), 1u);
  EXPECT_NE(questions_[0].ticket, earlier.ticket);
  inventory.owners_described({answer_to(earlier)});
  EXPECT_FALSE(live("vethnew"));  // still waiting for its own answer
  answer_all();
  EXPECT_EQ(live("vethnew")->container_name, "db");
  EXPECT_EQ(live("vethnew")->container_id, kIdB);
}

// The same ifindex, namespace and container asked about again after the interface went: a new
// question, not the old one joined (its answer may be about what the owner was).
TEST_F(InventoryTest, AnInterfaceMadeAgainAsksAnew) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  ASSERT_EQ(questions_.size(), 1u);
  inventory.handle_all({deleted(7, "veth7"), added(7, "veth7")}, now_);
  inventory.identify_pending();
  EXPECT_EQ(questions_.size(), 2u);
}

TEST_F(InventoryTest, AnAnswerToAQuestionAskedBeforeARenameNamesNobody) {
  Inventory& inventory = make_with_named_veth7("old");
  now_ += 30s;
  inventory.reconcile();  // a question out when the container is renamed
  const OwnerRequest before = take_question();
  inventory.owners_changed({kIdA});
  inventory.identify_pending();
  const OwnerRequest after = take_question();  // asked anew, not joined
  names_[kIdA] = "new";
  inventory.owners_described({answer_to(after)});
  names_[kIdA] = "old";  // what the daemon said before the rename
  inventory.owners_described({answer_to(before)});
  EXPECT_EQ(live("veth7")->container_name, "new");
}

TEST_F(InventoryTest, ARuntimeFailingKeepsWhatItSaidBeforeAndIsCounted) {
  Inventory& inventory = make_with_named_veth7("web");
  now_ += 30s;
  inventory.reconcile();
  ASSERT_EQ(questions_.size(), 1u);
  inventory.owners_described({answer_to(questions_[0], "timed out")});
  EXPECT_EQ(self_->errors[ErrorOp::kDescribe], 1);
  EXPECT_EQ(live("veth7")->container_name, "web");
  EXPECT_EQ(inventory.pending(), 0u);
}

TEST_F(InventoryTest, AFirstAnswerThatFailsExportsWhatIsKnownAtOnce) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  ASSERT_EQ(questions_.size(), 1u);
  inventory.owners_described({answer_to(questions_[0], "timed out")});
  EXPECT_EQ(live("veth7")->container_id, kIdA);
  EXPECT_EQ(live("veth7")->interface, "eth0");
  EXPECT_EQ(inventory.pending(), 0u);
}

TEST_F(InventoryTest, AFullQueueNamesWithWhatIsKnown) {
  add_to_host(7, "veth7", kIdA);
  queue_full_ = true;
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(live("veth7")->container_id, kIdA);
  EXPECT_EQ(inventory.pending(), 0u);
  EXPECT_EQ(self_->errors[ErrorOp::kDescribe], 1);
}

// ---- Labels fixed from a series' first export ------------------------------------------------

TEST_F(InventoryTest, ASeriesIsExportedOnceWithItsOwnersNameAndItsLabelsNeverFlip) {
  add_to_host(7, "veth7", kIdA);
  names_[kIdA] = "web";
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_FALSE(live("veth7"));  // counted, waiting for the runtime
  answer_all();
  const std::optional<InterfaceLabels> first = live("veth7");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->container_name, "web");
  // Pass after pass, answers that fail, that know less, or that come late change nothing.
  for (int i = 0; i < 3; ++i) {
    now_ += 30s;
    inventory.reconcile();
    ASSERT_EQ(questions_.size(), 1u);
    if (i == 0) inventory.owners_described({answer_to(questions_[0], "timed out")});
    if (i == 1) {
      OwnerAnswer knows_less = answer_to(questions_[0]);
      knows_less.facts.labels.container_name = "";
      inventory.owners_described({knows_less});
    }
    if (i == 2) answer_all();
    questions_.clear();
    EXPECT_EQ(live("veth7"), first) << i;
  }
  EXPECT_EQ(info(kIdA)->runtime, "docker");
}

TEST_F(InventoryTest, AContainersNamespaceIsNotNamedAfterItsNetnsName) {
  // podman names its containers' namespaces netns-UUID, new at each start.
  add_to_host(7, "veth7", kIdA);
  host_.namespaces.back().netns_name = "netns-4f1d";
  host_.namespaces.back().identity.runtime = "podman";
  // A namespace made with `ip netns add` and no container in it is named after it.
  add_to_host(8, "veth8", "");
  NetnsReport named;
  named.netns_name = "psnictest-blue";
  named.netns_inode = 4026532001;
  InterfacePair pair;
  pair.name = "eth0";
  pair.placement = Placement::host_peer;
  pair.host_ifindex = 8;
  pair.host_name = "veth8";
  named.interfaces.push_back(pair);
  host_.namespaces.push_back(named);
  Inventory& inventory = make();
  inventory.reconcile();
  // The container's runtime is asked; about a namespace with no container nobody is.
  ASSERT_EQ(questions_.size(), 1u);
  EXPECT_EQ(live("veth8")->container_name, "psnictest-blue");
  inventory.owners_described({answer_to(take_question(), "connection refused")});
  EXPECT_EQ(live("veth7")->container_name, "");
  EXPECT_EQ(live("veth7")->container_id, kIdA);
  EXPECT_EQ(live("veth8")->container_name, "psnictest-blue");
  EXPECT_EQ(info(kIdA)->runtime, "podman");  // from its cgroup, the runtime being down
}

TEST_F(InventoryTest, AnInterfaceThatIsAnotherContainersNowIsANewSeries) {
  Inventory& inventory = make_with_named_veth7("web");
  // Its container-side peer moved into another container's namespace.
  host_.namespaces.back().identity.id = kIdB;
  names_[kIdB] = "db";
  now_ += 30s;
  inventory.reconcile();
  answer_all();
  EXPECT_EQ(live("veth7")->container_id, kIdB);
  EXPECT_EQ(live("veth7")->container_name, "db");
  EXPECT_FALSE(info(kIdA));
  EXPECT_EQ(info(kIdB)->labels.container_name, "db");
}

TEST_F(InventoryTest, AContainerIdItsRuntimeDisownsIsTakenOff) {
  Inventory& inventory = make_with_named_veth7("web");
  now_ += 30s;
  inventory.reconcile();
  // The namespace's process claimed kIdA's cgroup; the runtime says kIdA's namespace is another.
  OwnerAnswer disowned = answer_to(take_question());
  disowned.facts.labels.container_id = "";
  disowned.facts.labels.container_name = "";
  disowned.facts.disowned = true;
  inventory.owners_described({disowned});
  EXPECT_EQ(live("veth7")->container_id, "");
  EXPECT_EQ(live("veth7")->container_name, "");
  EXPECT_EQ(live("veth7")->interface, "eth0");
  EXPECT_FALSE(info(kIdA));
}

TEST_F(InventoryTest, ContainerInfoIsOnePerContainerAndStaysWithItsRetiredSeries) {
  add_to_host(7, "veth7", kIdA);
  add_to_host(8, "veth8", kIdA);
  add_to_host(9, "veth9", kIdB);
  names_[kIdA] = "web";
  names_[kIdB] = "db";
  Inventory& inventory = make(/*retire_after=*/10s);
  inventory.reconcile();
  answer_all();
  ASSERT_EQ(owners_->current()->size(), 2u);
  EXPECT_EQ(info(kIdA)->image, "busybox:web");
  EXPECT_EQ(info(kIdB)->labels.container_name, "db");
  remove_from_host(9);
  inventory.handle_all({deleted(9, "veth9")}, now_);
  EXPECT_TRUE(info(kIdB));  // its final values are still exported: so is what it was
  now_ += 10s;
  inventory.expire_retired(now_);
  EXPECT_FALSE(info(kIdB));
  EXPECT_TRUE(info(kIdA));
}

TEST_F(InventoryTest, AnInterfaceGoneWithinItsWaitIsExportedRetiredWithWhatIsKnown) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.handle_all({added(7, "veth7")}, now_);
  inventory.identify_pending();
  ASSERT_EQ(questions_.size(), 1u);  // not answered yet
  counters_.counters[7] = traffic(100);
  inventory.handle_all({deleted(7, "veth7")}, now_ + 10ms);
  EXPECT_FALSE(live("veth7"));
  ASSERT_EQ(retired().size(), 1u);  // what it counted is not lost
  EXPECT_EQ(retired()[0].labels.container_id, kIdA);
  EXPECT_EQ(retired()[0].labels.interface, "eth0");
  EXPECT_EQ(retired()[0].final.all.ingress.bytes, 100u);
}

// ---- Receive counted at the container-side peer (bpf_redirect_peer) -----------------------------

TEST_F(InventoryTest, ReceiveMovesToThePeerOnceItsNamespaceIsKnownAndOnlyOnce) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  // Counted at the host first (attach), then at the peer the pass found: eth0 (ifindex 2) in
  // the namespace of PID 1007.
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"attach veth7"});
  EXPECT_EQ(counters_.peer_calls,
            std::vector<std::string>{"veth7 -> 2 in netns 4026530097 of 1007"});
  EXPECT_TRUE(counters_.at_peer(7));
  EXPECT_EQ(self_->at_peer, 1);
  answer_all();
  inventory.reconcile();
  inventory.identify_pending();
  EXPECT_EQ(counters_.peer_calls.size(), 1u);
  // Gone: detached, its peer link with it.
  inventory.handle_all({deleted(7, "veth7")}, now_);
  EXPECT_FALSE(counters_.at_peer(7));
  EXPECT_EQ(self_->at_peer, 0);
}

// --receive-at host: counted and named as ever, never hooked at the peer.
TEST_F(InventoryTest, ReceiveAtHostLeavesEveryPeerAlone) {
  add_to_host(7, "veth7", kIdA);
  receive_at_peer_ = false;
  Inventory& inventory = make();
  inventory.reconcile();
  answer_all();
  inventory.identify_pending();
  inventory.attach_backlog(now_ + 50ms);
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"attach veth7"});
  ASSERT_TRUE(live("veth7"));
  EXPECT_EQ(live("veth7")->container_id, kIdA);
  EXPECT_TRUE(counters_.peer_calls.empty());
  EXPECT_EQ(inventory.peers_waiting(), 0u);
  EXPECT_EQ(self_->at_peer, 0);
}

TEST_F(InventoryTest, ANotifiedPeerIsHookedAtItsPeerWhenItsOwnerIsFound) {
  Inventory& inventory = make();
  inventory.reconcile();
  add_to_host(7, "veth7", "");
  inventory.handle_all({added(7, "veth7")}, now_);
  now_ = inventory.next_deadline();
  inventory.identify_pending();
  EXPECT_TRUE(counters_.peer_calls.empty());  // its namespace not known yet
  remove_from_host(7);
  add_to_host(7, "veth7", kIdA);
  now_ = inventory.next_deadline();
  inventory.identify_pending();
  // Queued, and hooked by the loop's next turn: a TCX attach each, never all in one step.
  EXPECT_TRUE(counters_.peer_calls.empty());
  EXPECT_EQ(inventory.peers_waiting(), 1u);
  EXPECT_EQ(inventory.next_deadline(), now_);
  inventory.attach_backlog(now_ + 50ms);
  EXPECT_EQ(inventory.peers_waiting(), 0u);
  EXPECT_EQ(counters_.peer_calls,
            std::vector<std::string>{"veth7 -> 2 in netns 4026530097 of 1007"});
  EXPECT_TRUE(counters_.at_peer(7));
}

// Each peer is a TCX attach of its own (an RCU grace period): a pass out of time leaves them
// queued, for the loop's next turns, a slice at a time.
TEST_F(InventoryTest, PeersAreHookedWithinTheTimeGivenAndTheRestWait) {
  for (uint32_t ifindex : {7u, 8u, 9u})
    add_to_host(ifindex, "veth" + std::to_string(ifindex), kIdA);
  counters_.attach_cost = 10ms;
  Inventory& inventory = make();
  inventory.reconcile(25ms);
  EXPECT_EQ(inventory.attached(), 3u);  // one chunk, over the budget
  EXPECT_TRUE(counters_.at_peers.empty());
  EXPECT_EQ(inventory.peers_waiting(), 3u);
  EXPECT_EQ(inventory.next_deadline(), now_);
  EXPECT_EQ(self_->at_peer, 0);
  inventory.attach_backlog(now_ + 15ms);
  EXPECT_EQ(counters_.at_peers, (std::set<uint32_t>{7, 8}));
  EXPECT_EQ(inventory.peers_waiting(), 1u);
  EXPECT_EQ(self_->at_peer, 2);  // psnic_receive_at_peer_interfaces, published by the step
  inventory.attach_backlog(now_ + 15ms);
  EXPECT_EQ(counters_.at_peers.size(), 3u);
  EXPECT_EQ(inventory.peers_waiting(), 0u);
  EXPECT_EQ(self_->at_peer, 3);
}

TEST_F(InventoryTest, APeerThatCannotBeHookedStaysAtTheHostLoggedOncePerCause) {
  for (uint32_t ifindex : {7u, 8u, 9u}) {
    add_to_host(ifindex, "veth" + std::to_string(ifindex), kIdA);
    counters_.peer_failing[ifindex] = EPERM;
  }
  add_to_host(10, "veth10", kIdB);
  counters_.peer_failing[10] = EOPNOTSUPP;  // tc mode, a netkit peer: not an error
  test::CapturedStderr stderr_;
  Inventory& inventory = make();
  inventory.reconcile();
  inventory.reconcile();
  const std::string printed = stderr_.read();
  // Counted, at the host egress, all four.
  EXPECT_EQ(inventory.attached(), 4u);
  EXPECT_TRUE(counters_.at_peers.empty());
  // One line per cause, not per interface and pass.
  auto lines_with = [&](const std::string& text) {
    size_t n = 0;
    for (size_t at = printed.find(text); at != std::string::npos; at = printed.find(text, at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(lines_with("peer's ingress: failed (" + std::to_string(EPERM) + ")"), 1u) << printed;
  EXPECT_EQ(lines_with("peer's ingress: failed (" + std::to_string(EOPNOTSUPP) + ")"), 1u)
      << printed;
  EXPECT_EQ(lines_with("bpf_redirect_peer skips"), 2u) << printed;
  // Each failure that is psnic's is counted; none is tried again by later passes.
  EXPECT_EQ(self_->errors[ErrorOp::kAttach], 3);
  EXPECT_EQ(counters_.peer_calls.size(), 4u);
  EXPECT_EQ(self_->at_peer, 0);
}

TEST_F(InventoryTest, ANamespaceThatCannotBeOpenedNowIsTriedAgainByTheNextPass) {
  add_to_host(7, "veth7", kIdA);
  counters_.peer_failing[7] = ESRCH;  // its process exited, its namespace not named
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_FALSE(counters_.at_peer(7));
  counters_.peer_failing.clear();
  inventory.reconcile();
  EXPECT_TRUE(counters_.at_peer(7));
  EXPECT_EQ(counters_.peer_calls.size(), 2u);
  EXPECT_EQ(self_->errors[ErrorOp::kAttach], 0);
}

TEST_F(InventoryTest, APeerLinkAnotherToolRemovedIsHookedAgainByTheNextPass) {
  add_to_host(7, "veth7", kIdA);
  Inventory& inventory = make();
  inventory.reconcile();
  counters_.peer_removed_by_another_tool.insert(7);
  inventory.reconcile();
  EXPECT_EQ(counters_.calls, (std::vector<std::string>{"attach veth7", "reattach 7"}));
  EXPECT_EQ(counters_.peer_calls.size(), 2u);
  EXPECT_TRUE(counters_.at_peer(7));
}

// ---- A pinned agent's first pass ---------------------------------------------------------------

class PinnedInventoryTest : public InventoryTest {
 protected:
  PinnedInventoryTest() { counters_.pinned_dir = "/sys/fs/bpf/psnictest"; }

  // An earlier agent left veth7 (ifindex 7) counting, with these labels stored.
  void left_counting_veth7(const std::string& interface) {
    counters_.left_counting.insert(7);
    InterfaceLabels stored;
    stored.host_interface = "veth7";
    stored.interface = interface;
    stored.container_id = kIdA;
    stored.container_name = "web";
    counters_.stored[7] = stored;
  }
};

TEST_F(PinnedInventoryTest, WhatAnEarlierAgentLeftCountingIsAdoptedWithItsLabels) {
  add_to_host(7, "veth7", "");  // its owner cannot be named right now
  left_counting_veth7("");
  counters_.counters[7] = traffic(500);
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"adopt veth7"});
  EXPECT_EQ(counters_.counters.at(7).ingress.bytes, 500u);  // counted on, not restarted
  ASSERT_TRUE(live("veth7"));
  EXPECT_EQ(live("veth7")->container_name, "web");  // the series goes on as it was
  EXPECT_TRUE(retired().empty());
}

TEST_F(PinnedInventoryTest, AnAdoptedSeriesKeepsItsStoredLabelsWhileItsRuntimeHangs) {
  add_to_host(7, "veth7", kIdA);
  left_counting_veth7("eth0");
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(questions_.size(), 1u);
  now_ += 10s;
  inventory.export_overdue(now_);
  EXPECT_EQ(live("veth7")->container_name, "web");
  EXPECT_EQ(inventory.pending(), 0u);
}

// Stored labels of another interface (the ifindex was reused while no agent ran) are not taken
// over: the old counter is retired under its own labels and the new interface starts its own.
TEST_F(PinnedInventoryTest, IfindexReusedWhileNoAgentRanRetiresTheOldCounter) {
  add_to_host(7, "vethnew", kIdB);
  counters_.counters[7] = traffic(500);
  InterfaceLabels stored;
  stored.host_interface = "vethold";
  stored.container_id = kIdA;
  counters_.stored[7] = stored;
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(counters_.calls,
            (std::vector<std::string>{"remove_remnants 7", "forget 7", "attach vethnew"}));
  EXPECT_EQ(counters_.counters.at(7).ingress.bytes, 0u);
  ASSERT_EQ(retired().size(), 1u);
  EXPECT_EQ(retired()[0].labels.host_interface, "vethold");
  EXPECT_EQ(retired()[0].final.all.ingress.bytes, 500u);
  answer_all();
  EXPECT_EQ(live("vethnew")->container_id, kIdB);
}

TEST_F(PinnedInventoryTest, CountersAndPinsOfInterfacesGoneWhileNoAgentRanAreDropped) {
  add_to_host(7, "veth7", kIdA);
  counters_.left_counting.insert(7);
  counters_.pinned_links = {7, 8};
  counters_.counters[7] = traffic(1);
  counters_.counters[8] = traffic(800);
  InterfaceLabels stored;
  stored.host_interface = "veth8";
  counters_.stored[8] = stored;
  counters_.counters[9] = traffic(900);  // no labels stored: dropped, not exported
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(counters_.calls,
            (std::vector<std::string>{"adopt veth7", "unpin 8", "forget 8", "forget 9"}));
  ASSERT_EQ(retired().size(), 1u);
  EXPECT_EQ(retired()[0].labels.host_interface, "veth8");
  EXPECT_EQ(retired()[0].final.all.ingress.bytes, 800u);
  // Only on the first pass.
  counters_.calls.clear();
  counters_.counters[12] = traffic(1);
  inventory.reconcile();
  EXPECT_TRUE(counters_.calls.empty());
}

TEST_F(PinnedInventoryTest, AnAdoptedPeerLinkIsKeptAndNotMadeAgain) {
  add_to_host(7, "veth7", kIdA);
  left_counting_veth7("eth0");
  counters_.left_at_peer.insert(7);
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(counters_.calls, std::vector<std::string>{"adopt veth7"});
  EXPECT_TRUE(counters_.at_peer(7));
  EXPECT_TRUE(counters_.peer_calls.empty());
}

TEST_F(PinnedInventoryTest, APairAdoptedWithoutItsPeerLinkIsHookedAtItsPeer) {
  add_to_host(7, "veth7", kIdA);
  left_counting_veth7("eth0");
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(counters_.peer_calls.size(), 1u);
  EXPECT_TRUE(counters_.at_peer(7));
}

// --expedite-attach, on a knob that is a file of the test's: which attaches ran with expedited
// grace periods.
class ExpeditedInventoryTest : public InventoryTest {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/psnictest-expedite-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    counters_.knob = dir_ + "/rcu_expedited";
    std::ofstream(counters_.knob) << "0\n";
    grace_periods_.emplace(counters_.knob, dir_ + "/record");
    expedite_ = &*grace_periods_;
  }
  void TearDown() override {
    inventory_.reset();
    grace_periods_.reset();
    std::filesystem::remove_all(dir_);
  }
  void add_veths(uint32_t first, uint32_t count) {
    for (uint32_t i = first; i < first + count; ++i) add_to_host(i, "veth" + std::to_string(i), "");
  }
  // How many attaches saw the knob at `value`.
  size_t attaches_at(const std::string& value) const {
    return static_cast<size_t>(
        std::count(counters_.knob_at_attach.begin(), counters_.knob_at_attach.end(), value));
  }
  bool recorded() const { return std::filesystem::is_symlink(dir_ + "/record"); }

  std::string dir_;
  std::optional<ExpeditedGracePeriods> grace_periods_;
};

TEST_F(ExpeditedInventoryTest, AColdStartAboveTheThresholdIsAttachedExpeditedThenRestored) {
  add_veths(1, kExpediteAbove + 1);
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(inventory.attached(), kExpediteAbove + 1);
  EXPECT_EQ(attaches_at("1"), kExpediteAbove + 1);
  EXPECT_EQ(counters_.read_knob(), "0");
  EXPECT_FALSE(recorded());
}

// The peers' links are TCX attaches too: a cold start's are hooked with the knob held, which goes
// back once they are all hooked, also when they are hooked a slice at a time.
TEST_F(ExpeditedInventoryTest, ThePeersOfAColdStartAreHookedExpeditedThenRestored) {
  for (uint32_t i = 1; i <= kExpediteAbove + 1; ++i)
    add_to_host(i, "veth" + std::to_string(i), kIdA);
  counters_.attach_cost = 1ms;
  Inventory& inventory = make();
  inventory.reconcile(100ms);
  while (inventory.backlog() > 0 || inventory.peers_waiting() > 0) {
    EXPECT_EQ(counters_.read_knob(), "1");
    inventory.attach_backlog(now_ + 100ms);
  }
  EXPECT_EQ(counters_.at_peers.size(), kExpediteAbove + 1);
  EXPECT_EQ(std::count(counters_.knob_at_peer.begin(), counters_.knob_at_peer.end(), "1"),
            static_cast<long>(kExpediteAbove + 1));
  EXPECT_EQ(counters_.read_knob(), "0");
  EXPECT_FALSE(recorded());
}

// A cold start in slices, whose owners are named by the identification that follows the
// backlog (no process in their namespaces during the pass): the knob is set once and held from
// the first host attach to the last peer's, not given back in between (one set, one restore).
TEST_F(ExpeditedInventoryTest, AColdStartsHostSideAndPeersAreOneExpeditedStretch) {
  const uint32_t n = kExpediteAbove + 10;
  add_veths(1, n);
  counters_.attach_cost = 5ms;
  test::CapturedStderr stderr_;
  Inventory& inventory = make();
  inventory.reconcile(100ms);  // a slice of the host backlog
  ASSERT_GT(inventory.backlog(), 0u);
  while (inventory.backlog() > 0) {
    EXPECT_EQ(counters_.read_knob(), "1");
    inventory.attach_backlog(now_ + 100ms);
  }
  // Their processes are there now; the naming due at once finds them and queues the peers.
  for (uint32_t i = 1; i <= n; ++i) {
    remove_from_host(i);
    add_to_host(i, "veth" + std::to_string(i), kIdA);
  }
  EXPECT_EQ(counters_.read_knob(), "1");
  ASSERT_LE(inventory.next_deadline(), now_);
  inventory.identify_pending();
  EXPECT_EQ(inventory.peers_waiting(), n);
  while (inventory.peers_waiting() > 0) {
    EXPECT_EQ(counters_.read_knob(), "1");
    inventory.attach_backlog(now_ + 100ms);
  }
  EXPECT_EQ(counters_.at_peers.size(), n);
  EXPECT_EQ(attaches_at("1"), n);
  EXPECT_EQ(std::count(counters_.knob_at_peer.begin(), counters_.knob_at_peer.end(), "1"),
            static_cast<long>(n));
  EXPECT_EQ(counters_.read_knob(), "0");
  const std::string printed = stderr_.read();
  auto count_of = [&](const std::string& text) {
    size_t c = 0;
    for (size_t at = printed.find(text); at != std::string::npos; at = printed.find(text, at + 1))
      ++c;
    return c;
  };
  EXPECT_EQ(count_of("set to 1"), 1u) << printed;
  EXPECT_EQ(count_of("restored to 0"), 1u) << printed;
}

TEST_F(ExpeditedInventoryTest, ABacklogAtTheThresholdIsNot) {
  add_veths(1, kExpediteAbove);
  Inventory& inventory = make();
  inventory.reconcile();
  EXPECT_EQ(inventory.attached(), kExpediteAbove);
  EXPECT_EQ(attaches_at("0"), kExpediteAbove);
}

// Attached in slices, the knob is held from the first slice until the backlog is empty, not
// given back and taken again between slices; a later pass with a small backlog leaves it alone.
TEST_F(ExpeditedInventoryTest, TheKnobIsHeldAcrossSlicesUntilTheBacklogIsEmpty) {
  add_veths(1, 80);
  counters_.attach_cost = 25ms;
  Inventory& inventory = make();
  inventory.reconcile(100ms);
  EXPECT_GT(inventory.backlog(), 0u);
  EXPECT_EQ(counters_.read_knob(), "1");
  EXPECT_TRUE(recorded());
  inventory.handle_all({added(200, "veth200")}, now_);  // one new link on the way: still held
  EXPECT_EQ(counters_.read_knob(), "1");
  while (inventory.backlog() > 0) inventory.attach_backlog(now_ + 100ms);
  EXPECT_EQ(attaches_at("1"), 81u);
  // Still held for the naming that follows (it queues the peers' links)...
  EXPECT_EQ(counters_.read_knob(), "1");
  EXPECT_EQ(inventory.next_deadline(), now_);
  // ...which finds no namespace for these: given back.
  inventory.identify_pending();
  EXPECT_EQ(counters_.read_knob(), "0");
  EXPECT_FALSE(recorded());

  add_veths(300, 3);
  counters_.knob_at_attach.clear();
  inventory.reconcile();
  EXPECT_EQ(attaches_at("0"), 3u);
}

TEST_F(ExpeditedInventoryTest, ABurstOfNewLinksIsAttachedExpedited) {
  Inventory& inventory = make();
  inventory.reconcile();
  std::vector<LinkEvent> burst;
  for (uint32_t i = 1; i <= kExpediteAbove + 1; ++i)
    burst.push_back(added(i, "veth" + std::to_string(i)));
  inventory.handle_all(burst, now_);
  EXPECT_EQ(attaches_at("1"), kExpediteAbove + 1);
  EXPECT_EQ(counters_.read_knob(), "0");
  // A few: not.
  counters_.knob_at_attach.clear();
  inventory.handle_all({added(500, "veth500"), added(501, "veth501")}, now_);
  EXPECT_EQ(attaches_at("0"), 2u);
}

// The backlog's links all deleted before their turn: nothing left to wait for, the knob goes
// back at once.
TEST_F(ExpeditedInventoryTest, ABacklogEmptiedByDeletionsGivesTheKnobBack) {
  add_veths(1, 60);
  counters_.attach_cost = 25ms;
  Inventory& inventory = make();
  inventory.reconcile(100ms);
  ASSERT_EQ(counters_.read_knob(), "1");
  std::vector<LinkEvent> gone;
  for (uint32_t i = 1; i <= 60; ++i) gone.push_back(deleted(i, "veth" + std::to_string(i)));
  inventory.handle_all(gone, now_);
  EXPECT_EQ(inventory.backlog(), 0u);
  EXPECT_EQ(counters_.read_knob(), "0");
}

// Stopped in the middle of a cold start (SIGTERM): the knob goes back with the inventory.
TEST_F(ExpeditedInventoryTest, StoppingMidBacklogRestoresTheKnob) {
  add_veths(1, 60);
  counters_.attach_cost = 25ms;
  make().reconcile(100ms);
  ASSERT_EQ(counters_.read_knob(), "1");
  inventory_.reset();
  EXPECT_EQ(counters_.read_knob(), "0");
  EXPECT_FALSE(recorded());
}

TEST_F(ExpeditedInventoryTest, AKnobSetByTheAdministratorIsLeftSet) {
  std::ofstream(counters_.knob) << "1\n";
  add_veths(1, 60);
  make().reconcile();
  EXPECT_EQ(attaches_at("1"), 60u);
  inventory_.reset();
  EXPECT_EQ(counters_.read_knob(), "1");
  EXPECT_FALSE(recorded());
}

}  // namespace
}  // namespace psnic
