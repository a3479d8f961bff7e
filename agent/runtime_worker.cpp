#include "agent/runtime_worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <utility>

#include "base/error.h"

namespace psnic {

RuntimeWorker::RuntimeWorker(OwnerSource* source, OwnerEvents* events, size_t max_queued)
    : source_(source),
      events_(events),
      max_queued_(max_queued),
      ready_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!ready_.valid()) throw system_error("runtime worker", errno);
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

RuntimeWorker::~RuntimeWorker() {
  thread_.request_stop();
  if (source_) source_->abort();
  if (events_) events_->abort();
  // std::jthread joins: at once when idle, else as soon as the aborted call returns.
}

bool RuntimeWorker::ask(OwnerRequest request) {
  if (!source_) return false;
  {
    std::lock_guard lock(mutex_);
    auto queued = std::find_if(queue_.begin(), queue_.end(),
                               [&](const OwnerRequest& r) { return r.key == request.key; });
    if (queued != queue_.end()) {
      *queued = std::move(request);
      return true;
    }
    if (queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(request));
  }
  wake_.notify_one();
  return true;
}

void RuntimeWorker::subscribe() {
  if (!events_) return;
  {
    std::lock_guard lock(mutex_);
    subscribe_ = true;
  }
  wake_.notify_one();
}

RuntimeWorker::Results RuntimeWorker::take() {
  uint64_t count;
  (void)!read(ready_.get(), &count, sizeof count);
  std::lock_guard lock(mutex_);
  return std::exchange(results_, Results{});
}

size_t RuntimeWorker::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void RuntimeWorker::finished() {
  const uint64_t one = 1;
  (void)!write(ready_.get(), &one, sizeof one);
}

void RuntimeWorker::run(std::stop_token stop) {
  for (;;) {
    std::unique_lock lock(mutex_);
    if (!wake_.wait(lock, stop, [&] { return subscribe_ || !queue_.empty(); })) return;
    if (subscribe_) {
      subscribe_ = false;
      lock.unlock();
      const bool connected = events_->connect();
      lock.lock();
      results_.subscribed = connected;
    } else {
      OwnerRequest request = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      OwnerAnswer answer{request.ticket, {request.labels, "", ""}, ""};
      try {
        source_->describe(request.owner, answer.facts);
      } catch (const std::exception& e) {
        answer.facts = {request.labels, "", ""};
        answer.error = e.what();
        if (answer.error.empty()) answer.error = "failed";
      }
      lock.lock();
      results_.answers.push_back(std::move(answer));
    }
    lock.unlock();
    finished();
  }
}

}  // namespace psnic
