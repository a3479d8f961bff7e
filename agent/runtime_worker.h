#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "agent/owner_source.h"
#include "base/fd.h"

namespace psnic {

// The one thread that talks to container runtimes, so that the loop thread never waits for one:
// a daemon that accepts and never answers costs this thread its timeouts, never an attach or a
// link notification. The loop queues questions (ask(), subscribe()); the worker answers them in
// order and makes fd(), an eventfd in the loop's epoll, readable; the loop take()s the answers.
// Questions about an owner already queued replace the queued one (a reconcile asks about every
// owner again), and the queue is bounded: a hung daemon cannot make it grow without end.
// Destroying the worker aborts the call in progress (OwnerSource::abort, OwnerEvents::abort) and
// joins the thread: stopping never waits for a daemon.
class RuntimeWorker {
 public:
  static constexpr size_t kMaxQueued = 4096;

  // Either may be null; both must outlive the worker. Throws Error.
  RuntimeWorker(OwnerSource* source, OwnerEvents* events, size_t max_queued = kMaxQueued);
  RuntimeWorker(const RuntimeWorker&) = delete;
  RuntimeWorker& operator=(const RuntimeWorker&) = delete;
  ~RuntimeWorker();

  // Readable while results wait for take().
  int fd() const { return ready_.get(); }

  // Queues a question for the source. False, and nothing queued, when the queue is full or there
  // is no source.
  bool ask(OwnerRequest request);
  // Queues events->connect(), ahead of the questions. While it runs, the caller leaves `events`
  // alone; its result comes back through take().
  void subscribe();

  struct Results {
    std::vector<OwnerAnswer> answers;
    std::optional<bool> subscribed;  // what a subscribe() came to, when it did
  };
  // What was answered since the last take(), in order. Never blocks.
  Results take();

  size_t queued() const;

 private:
  void run(std::stop_token stop);
  void finished();

  OwnerSource* source_;
  OwnerEvents* events_;
  size_t max_queued_;
  Fd ready_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<OwnerRequest> queue_;
  bool subscribe_ = false;
  Results results_;
  // Last: it runs with the members above.
  std::jthread thread_;
};

}  // namespace psnic
