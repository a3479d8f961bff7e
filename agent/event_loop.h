#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "resolver/namespace.h"

namespace psnic {

// What an agent loop waits on: the stop signals (SIGINT, SIGTERM: the caller blocks them before
// any thread starts, so that only this signalfd sees them), one timer, and the fds it adds.
class EventLoop {
 public:
  // Tags of the two built-in sources; fds the caller adds take any other tag.
  static constexpr uint64_t kStop = UINT64_MAX;
  static constexpr uint64_t kTimer = UINT64_MAX - 1;

  EventLoop();  // throws Error

  void watch(int fd, uint64_t tag);
  void unwatch(int fd);
  // Fires once after `delay` (at least 1 ms), or every `delay` when `repeat`.
  void arm(std::chrono::nanoseconds delay, bool repeat);

  // Blocks until something is ready; returns the tags. The stop signal and the timer are read
  // here: stop_signal() then names the signal ("SIGINT"), timer_expirations() counts firings.
  std::vector<uint64_t> wait();
  const std::string& stop_signal() const { return stop_signal_; }
  uint64_t timer_expirations() const { return expirations_; }

 private:
  Fd signals_;
  Fd timer_;
  Fd epoll_;
  std::string stop_signal_;
  uint64_t expirations_ = 0;
};

}  // namespace psnic
