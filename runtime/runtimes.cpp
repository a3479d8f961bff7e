#include "runtime/runtimes.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/error.h"
#include "base/log.h"
#include "resolver/cgroup.h"
#include "runtime/pods.h"

namespace psnic {

RuntimeHealth::State& RuntimeHealth::state_of(const RuntimeSource& runtime) {
  for (auto& [known, state] : states_)
    if (known == &runtime) return state;
  return states_.emplace_back(&runtime, State::kUnknown).second;
}

void RuntimeHealth::up(const RuntimeSource& runtime) {
  {
    std::lock_guard lock(mutex_);
    State& state = state_of(runtime);
    if (state == State::kUp) return;
    state = State::kUp;
  }
  if (self_) self_->set_runtime_up(runtime.runtime(), runtime.endpoint(), true);
  log_info("following " + runtime.runtime() + " on " + runtime.endpoint(),
           {{"runtime", runtime.runtime()}, {"socket", runtime.endpoint()}});
}

void RuntimeHealth::down(const RuntimeSource& runtime, const std::string& cause) {
  State was;
  {
    std::lock_guard lock(mutex_);
    State& state = state_of(runtime);
    was = state;
    if (state == State::kDown) return;
    state = State::kDown;
  }
  if (self_) self_->set_runtime_up(runtime.runtime(), runtime.endpoint(), false);
  const std::string about = runtime.runtime() + " on " + runtime.endpoint();
  // A runtime that is simply not installed is no warning.
  if (was == State::kUnknown && cause.ends_with("no such socket"))
    log_info("no " + about + "; naming its containers without it",
             {{"runtime", runtime.runtime()}, {"socket", runtime.endpoint()}});
  else
    log_warn(about + ": " + cause + "; naming its containers without it",
             {{"runtime", runtime.runtime()}, {"socket", runtime.endpoint()}});
}

RuntimeOwners::RuntimeOwners(std::vector<RuntimeSource*> runtimes, RuntimeHealth& health,
                             std::string pods_dir)
    : runtimes_(std::move(runtimes)),
      health_(health),
      pods_dir_(std::move(pods_dir)),
      failed_until_(runtimes_.size()) {}

void RuntimeOwners::abort() {
  for (RuntimeSource* runtime : runtimes_) runtime->abort();
}

void RuntimeOwners::describe(const NetnsReport& owner, OwnerFacts& facts) {
  InterfaceLabels& labels = facts.labels;
  const ContainerIdentity& identity = owner.identity;
  // The `ip netns` name names only a namespace with no container identity: a podman container's
  // namespace is a named one (netns-<uuid>), and podman names it.
  labels.container_name = identity.id.empty() ? owner.netns_name : "";
  bool pod_from_cgroup = true;
  const auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < runtimes_.size(); ++i) {
    RuntimeSource& runtime = *runtimes_[i];
    if (!runtime.claims(owner)) continue;
    if (now < failed_until_[i]) break;  // failed lately: named without it meanwhile
    OwnerFacts answer = facts;
    std::string why;
    Verdict verdict;
    try {
      verdict = runtime.describe(owner, answer, why);
    } catch (const Error& e) {
      if (e.errnum() == ECANCELED) throw;
      failed_until_[i] = std::chrono::steady_clock::now() + kRetryAfter;
      health_.down(runtime, e.what());
      break;
    }
    health_.up(runtime);
    if (verdict == Verdict::kNamed) {
      facts = std::move(answer);
      break;
    }
    if (verdict == Verdict::kContradicted) {
      if (contradicted_.size() >= 65536) contradicted_.clear();  // bounds the memory only
      if (contradicted_.emplace(owner.netns_inode, identity.id).second)
        log_warn("the cgroup of pid " + std::to_string(owner.pid) + " names container " +
                     identity.id + " (" + runtime.runtime() + "), but " + why +
                     ": its network namespace " + std::to_string(owner.netns_inode) +
                     " is not exported as that container",
                 {{"pid", std::to_string(owner.pid)},
                  {"container_id", identity.id},
                  {"netns", owner.netns_name.empty() ? std::to_string(owner.netns_inode)
                                                     : owner.netns_name}});
      labels.container_id.clear();
      labels.container_name = owner.netns_name;
      labels.pod.clear();
      labels.namespace_name.clear();
      pod_from_cgroup = false;  // the same forged path may name a pod
      break;
    }
  }
  if (pod_from_cgroup && labels.pod.empty() && !identity.pod_uid.empty()) {
    if (std::optional<PodRef> pod = find_pod(pods_dir_, identity.pod_uid)) {
      labels.pod = pod->name;
      labels.namespace_name = pod->namespace_name;
    }
  }
}

RuntimeEvents::RuntimeEvents(std::vector<Stream> streams, RuntimeHealth& health)
    : streams_(std::move(streams)),
      health_(health),
      epoll_(epoll_create1(EPOLL_CLOEXEC)),
      retry_timer_(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
      watched_(streams_.size(), -1) {
  if (!epoll_.valid() || !retry_timer_.valid()) throw system_error("runtime events", errno);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = streams_.size();  // past the streams: the timer
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, retry_timer_.get(), &event) != 0)
    throw system_error("runtime events", errno);
}

void RuntimeEvents::abort() {
  for (Stream& stream : streams_)
    if (stream.events) stream.events->abort();
}

void RuntimeEvents::arm_retry() {
  itimerspec when{};
  when.it_value.tv_sec = kRetryAfter.count();
  timerfd_settime(retry_timer_.get(), 0, &when, nullptr);
}

bool RuntimeEvents::connect() {
  bool any = false;
  bool missing = false;
  for (size_t i = 0; i < streams_.size(); ++i) {
    Stream& stream = streams_[i];
    if (!stream.events) {
      if (stream.runtime->reachable())
        health_.up(*stream.runtime);
      else
        health_.down(*stream.runtime, stream.runtime->endpoint() + ": no such socket");
      continue;
    }
    if (watched_[i] >= 0) {
      any = true;
      continue;
    }
    if (!stream.events->connect()) {
      health_.down(*stream.runtime, stream.events->last_error());
      missing = true;
      continue;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stream.events->fd(), &event) != 0) {
      health_.down(*stream.runtime, system_error(name(), errno).what());
      missing = true;
      continue;
    }
    watched_[i] = stream.events->fd();
    health_.up(*stream.runtime);
    any = true;
  }
  if (missing && any) arm_retry();
  return any;
}

std::vector<std::string> RuntimeEvents::drain(bool& closed) {
  std::vector<std::string> changed;
  epoll_event ready[8];
  const int n = epoll_wait(epoll_.get(), ready, 8, 0);
  for (int k = 0; k < n; ++k) {
    const size_t i = ready[k].data.u64;
    if (i >= streams_.size()) {
      uint64_t expirations;
      (void)!read(retry_timer_.get(), &expirations, sizeof expirations);
      closed = true;  // a stream to subscribe to again: the agent calls connect()
      continue;
    }
    Stream& stream = streams_[i];
    if (watched_[i] < 0) continue;
    bool ended = false;
    std::string cause = stream.events->name() + " ended";
    try {
      std::vector<std::string> ids = stream.events->drain(ended);
      changed.insert(changed.end(), ids.begin(), ids.end());
    } catch (const Error& e) {
      ended = true;
      cause = e.what();
    }
    if (ended) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watched_[i], nullptr);
      watched_[i] = -1;
      health_.down(*stream.runtime, cause);
      closed = true;
    }
  }
  return changed;
}

std::string RuntimeEvents::name() const {
  std::string text = "runtime events (";
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (!streams_[i].events) continue;
    if (text.back() != '(') text += ", ";
    text += streams_[i].runtime->runtime() + " on " + streams_[i].runtime->endpoint();
  }
  return text + ")";
}

}  // namespace psnic
