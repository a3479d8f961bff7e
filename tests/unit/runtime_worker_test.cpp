// RuntimeWorker: the thread that asks container runtimes for the agent loop, with a source made
// up here that answers, fails, or hangs until it is aborted.
#include "agent/runtime_worker.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace psnic {
namespace {

using namespace std::chrono_literals;

// Names each owner "name-<key>"; fails for owners whose key starts with "fail"; with `gate`
// closed, waits (as a hung daemon does) until it opens or abort() is called.
class FakeSource : public OwnerSource {
 public:
  void describe(const NetnsReport& owner, OwnerFacts& facts) override {
    std::unique_lock lock(mutex_);
    asked.push_back(owner.identity.id);
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_ || aborted_; });
    if (aborted_) throw Error("fake.sock", ECANCELED, "given up");
    if (owner.identity.id.rfind("fail", 0) == 0) throw Error("fake.sock", ETIMEDOUT, "timed out");
    facts.labels.container_name = "name-" + owner.identity.id;
  }
  void abort() override {
    std::lock_guard lock(mutex_);
    aborted_ = true;
    changed_.notify_all();
  }
  void open(bool open) {
    std::lock_guard lock(mutex_);
    open_ = open;
    changed_.notify_all();
  }
  // Waits until `n` questions reached the source.
  bool wait_asked(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return asked.size() >= n; });
  }
  bool aborted() {
    std::lock_guard lock(mutex_);
    return aborted_;
  }

  std::vector<std::string> asked;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = true;
  bool aborted_ = false;
};

class FakeEvents : public OwnerEvents {
 public:
  bool connect() override { return ++connects == 1; }
  int fd() const override { return -1; }
  std::vector<std::string> drain(bool& closed) override {
    closed = true;
    return {};
  }
  std::string name() const override { return "fake events"; }
  void abort() override {}
  int connects = 0;
};

OwnerRequest question(uint64_t ticket, const std::string& key) {
  OwnerRequest request;
  request.ticket = ticket;
  request.key = key;
  request.owner.identity.id = key;
  request.labels.container_id = key;
  request.labels.host_interface = "veth" + std::to_string(ticket);
  return request;
}

// Takes results as the loop does (when fd() is readable) until `n` answers are in.
std::vector<OwnerAnswer> answers(RuntimeWorker& worker, size_t n) {
  std::vector<OwnerAnswer> all;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (all.size() < n && std::chrono::steady_clock::now() < deadline) {
    pollfd ready{worker.fd(), POLLIN, 0};
    if (poll(&ready, 1, 100) != 1) continue;
    for (OwnerAnswer& answer : worker.take().answers) all.push_back(std::move(answer));
  }
  return all;
}

std::vector<uint64_t> tickets(const std::vector<OwnerAnswer>& answers) {
  std::vector<uint64_t> t;
  for (const OwnerAnswer& a : answers) t.push_back(a.ticket);
  return t;
}

TEST(RuntimeWorkerTest, AnswersComeBackThroughItsFdInOrder) {
  FakeSource source;
  RuntimeWorker worker(&source, nullptr);
  ASSERT_TRUE(worker.ask(question(1, "a")));
  ASSERT_TRUE(worker.ask(question(2, "fail-b")));
  const std::vector<OwnerAnswer> got = answers(worker, 2);
  ASSERT_EQ(tickets(got), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(got[0].facts.labels.container_name, "name-a");
  EXPECT_EQ(got[0].facts.labels.host_interface, "veth1");  // the request's labels, filled in
  EXPECT_EQ(got[0].error, "");
  EXPECT_EQ(got[1].facts.labels.container_name, "");
  EXPECT_EQ(got[1].error, "fake.sock: timed out");
  pollfd ready{worker.fd(), POLLIN, 0};
  EXPECT_EQ(poll(&ready, 1, 0), 0);  // taken: no longer readable
}

TEST(RuntimeWorkerTest, AQuestionAboutAQueuedOwnerReplacesItAndTheQueueIsBounded) {
  FakeSource source;
  source.open(false);  // the daemon hangs on the first question
  RuntimeWorker worker(&source, nullptr, /*max_queued=*/2);
  ASSERT_TRUE(worker.ask(question(1, "a")));
  ASSERT_TRUE(source.wait_asked(1));
  EXPECT_TRUE(worker.ask(question(2, "b")));
  EXPECT_TRUE(worker.ask(question(3, "b")));  // replaces 2
  EXPECT_TRUE(worker.ask(question(4, "c")));
  EXPECT_EQ(worker.queued(), 2u);
  EXPECT_FALSE(worker.ask(question(5, "d")));  // full
  EXPECT_TRUE(worker.ask(question(6, "c")));   // a queued owner is still replaced
  source.open(true);
  EXPECT_EQ(tickets(answers(worker, 3)), (std::vector<uint64_t>{1, 3, 6}));
  EXPECT_EQ(source.asked, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(RuntimeWorkerTest, DestroyedWhileItsSourceHangsItAbortsTheCallAndReturns) {
  FakeSource source;
  source.open(false);
  std::optional<RuntimeWorker> worker(std::in_place, &source, nullptr);
  ASSERT_TRUE(worker->ask(question(1, "a")));
  ASSERT_TRUE(source.wait_asked(1));
  const auto start = std::chrono::steady_clock::now();
  worker.reset();
  EXPECT_TRUE(source.aborted());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(RuntimeWorkerTest, SubscribesOnItsThreadAndSaysHowItWent) {
  FakeEvents events;
  RuntimeWorker worker(nullptr, &events);
  EXPECT_FALSE(worker.ask(question(1, "a")));  // no source to ask
  worker.subscribe();
  std::optional<bool> subscribed;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!subscribed && std::chrono::steady_clock::now() < deadline) {
    pollfd ready{worker.fd(), POLLIN, 0};
    if (poll(&ready, 1, 100) == 1) subscribed = worker.take().subscribed;
  }
  EXPECT_EQ(subscribed, std::optional<bool>(true));
  EXPECT_EQ(events.connects, 1);
}

}  // namespace
}  // namespace psnic
