#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/views.h"
#include "base/fd.h"

namespace psnic {

// What an agent loop waits on: the stop signals (SIGINT, SIGTERM) and SIGHUP (the caller blocks
// them before any thread starts, so that only this signalfd sees them), one timer, and the fds
// it adds.
// Each turn beats a heartbeat, when given one, for /healthz: wait() wakes at least every
// kIdleTurn even when nothing is ready, so an idle loop is told apart from a stuck one.
class EventLoop {
 public:
  // Tags of the built-in sources; fds the caller adds take any other tag.
  static constexpr uint64_t kStop = UINT64_MAX;
  static constexpr uint64_t kTimer = UINT64_MAX - 1;
  // SIGHUP: reload what can be (the web config).
  static constexpr uint64_t kReload = UINT64_MAX - 2;
  // The longest wait() sleeps between two beats.
  static constexpr std::chrono::seconds kIdleTurn{1};

  // `heartbeat` may be null; it must outlive the loop. Throws Error.
  explicit EventLoop(LoopHeartbeat* heartbeat = nullptr);

  void watch(int fd, uint64_t tag);
  void unwatch(int fd);
  // Fires once after `delay` (at least 1 ms), or every `delay` when `repeat`.
  void arm(std::chrono::nanoseconds delay, bool repeat);

  // Blocks until something is ready; returns the tags. The stop signal and the timer are read
  // here: stop_signal() then names the signal ("SIGINT"), timer_expirations() counts firings.
  // Beats the heartbeat on entry and every kIdleTurn while nothing is ready.
  std::vector<uint64_t> wait();
  const std::string& stop_signal() const { return stop_signal_; }
  uint64_t timer_expirations() const { return expirations_; }

 private:
  LoopHeartbeat* heartbeat_;
  Fd signals_;
  Fd timer_;
  Fd epoll_;
  std::string stop_signal_;
  uint64_t expirations_ = 0;
};

// What both agents do on SIGHUP: `reload` when there is one, else a line saying nothing is.
void reload_on_hangup(const std::function<void()>& reload);

}  // namespace psnic
