#include "agent/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/log.h"

namespace psnic {

EventLoop::EventLoop(LoopHeartbeat* heartbeat) : heartbeat_(heartbeat) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);
  signals_ = Fd(signalfd(-1, &stop, SFD_CLOEXEC));
  timer_ = Fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  epoll_ = Fd(epoll_create1(EPOLL_CLOEXEC));
  if (!signals_.valid() || !timer_.valid() || !epoll_.valid())
    throw system_error("agent event loop", errno);
  watch(signals_.get(), kStop);
  watch(timer_.get(), kTimer);
}

void EventLoop::watch(int fd, uint64_t tag) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = tag;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) < 0)
    throw system_error("agent event loop", errno);
}

void EventLoop::unwatch(int fd) { epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::arm(std::chrono::nanoseconds delay, bool repeat) {
  int64_t ns = std::max<int64_t>(delay.count(), 1000000);
  itimerspec when{};
  when.it_value.tv_sec = ns / 1000000000;
  when.it_value.tv_nsec = ns % 1000000000;
  if (repeat) when.it_interval = when.it_value;
  timerfd_settime(timer_.get(), 0, &when, nullptr);
}

std::vector<uint64_t> EventLoop::wait() {
  constexpr int kIdleTurnMs = std::chrono::milliseconds(kIdleTurn).count();
  epoll_event ready[16];
  int n;
  do {
    if (heartbeat_) heartbeat_->beat();
    n = epoll_wait(epoll_.get(), ready, 16, kIdleTurnMs);
  } while (n == 0 || (n < 0 && errno == EINTR));
  if (n < 0) throw system_error("agent event loop", errno);

  std::vector<uint64_t> tags;
  for (int i = 0; i < n; ++i) {
    uint64_t tag = ready[i].data.u64;
    if (tag == kStop) {
      signalfd_siginfo info{};
      if (read(signals_.get(), &info, sizeof info) != sizeof info) continue;
      if (info.ssi_signo == SIGHUP) {
        tags.push_back(kReload);
        continue;
      }
      const char* name = sigabbrev_np(static_cast<int>(info.ssi_signo));
      stop_signal_ = std::string("SIG") + (name ? name : "?");
    } else if (tag == kTimer) {
      if (read(timer_.get(), &expirations_, sizeof expirations_) != sizeof expirations_) continue;
    }
    tags.push_back(tag);
  }
  return tags;
}

void reload_on_hangup(const std::function<void()>& reload) {
  if (reload)
    reload();
  else
    log_info("SIGHUP, nothing to reload (no --web-config-file)");
}

}  // namespace psnic
