#pragma once

// The agent's one OwnerSource and one OwnerEvents over every container runtime psnic knows:
// each runtime is found by itself (its socket, its processes), asked only about the owners it
// claims (the cgroup identity's runtime), and followed while it is there.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "agent/owner_source.h"
#include "agent/views.h"
#include "base/fd.h"
#include "runtime/owner.h"
#include "runtime/runtime_source.h"

namespace psnic {

// Whether each runtime is up, said once per change: one log line when a runtime is first
// followed ("following docker on /var/run/docker.sock") or fails ("podman on
// /run/podman/podman.sock: <cause>; naming its containers without it"), however many containers
// it concerns, and psnic_runtime_up{runtime,socket} 1/0. Thread-safe.
class RuntimeHealth {
 public:
  explicit RuntimeHealth(std::shared_ptr<SelfReport> self = nullptr) : self_(std::move(self)) {}
  void up(const RuntimeSource& runtime);
  // `cause` says why ("no such socket" when the runtime is not on this host).
  void down(const RuntimeSource& runtime, const std::string& cause);

 private:
  enum class State { kUnknown, kUp, kDown };
  std::shared_ptr<SelfReport> self_;
  std::mutex mutex_;
  std::vector<std::pair<const RuntimeSource*, State>> states_;
  State& state_of(const RuntimeSource& runtime);
};

// The OwnerSource the agent uses: asks the runtime that claims the owner (the first that does),
// then kubelet's pod directories for a pod uid no runtime named, then the `ip netns` name for a
// namespace that has no container identity.
//
// The forged-cgroup rule: an owner's container id comes from a process's cgroup, which a process
// allowed to write cgroups can choose. When the runtime the cgroup names answers and contradicts
// it (the container is not in this namespace by the runtime's own facts, or does not exist), the
// namespace is not exported as that container: no container id, name or pod from that cgroup
// (its `ip netns` name if it has one). Logged once per namespace and id, at warn level.
//
// A runtime that fails (not the runtime, garbage, a hang up to its timeout, denied) is logged once
// (RuntimeHealth) and not asked again for kRetryAfter: its containers are named by what else
// applies meanwhile, so a hung daemon costs one timeout, not one per container.
class RuntimeOwners : public OwnerSource {
 public:
  static constexpr std::chrono::seconds kRetryAfter{10};

  // `runtimes` in the order they are asked; they and `health` must outlive this.
  RuntimeOwners(std::vector<RuntimeSource*> runtimes, RuntimeHealth& health,
                std::string pods_dir = "/var/log/pods");

  void describe(const NetnsReport& owner, OwnerFacts& facts) override;
  void abort() override;

 private:
  std::vector<RuntimeSource*> runtimes_;
  RuntimeHealth& health_;
  std::string pods_dir_;
  std::vector<std::chrono::steady_clock::time_point> failed_until_;  // per runtime
  std::set<std::pair<uint64_t, std::string>> contradicted_;          // logged: netns inode, id
};

// The OwnerEvents the agent uses: every runtime's event stream behind one fd (an epoll set).
// connect() subscribes to each stream not subscribed yet and succeeds when one is; a stream that
// ends, or could not be subscribed to, makes drain() report `closed` once its retry is due, so
// that the agent calls connect() again, which leaves the streams that run alone.
class RuntimeEvents : public OwnerEvents {
 public:
  struct Stream {
    RuntimeSource* runtime;
    // Null for a runtime without a stream (containerd): connect() only checks that it answers.
    EngineOwnerEvents* events;
  };
  static constexpr std::chrono::seconds kRetryAfter{30};

  RuntimeEvents(std::vector<Stream> streams, RuntimeHealth& health);

  bool connect() override;
  int fd() const override { return epoll_.get(); }
  std::vector<std::string> drain(bool& closed) override;
  std::string name() const override;
  void abort() override;

 private:
  void arm_retry();

  std::vector<Stream> streams_;
  RuntimeHealth& health_;
  Fd epoll_;
  Fd retry_timer_;            // a timerfd in the epoll set: a stream to subscribe again is due
  std::vector<int> watched_;  // per stream: the fd in the epoll set, -1 when not subscribed
};

}  // namespace psnic
