#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/inventory.h"
#include "agent/kernel_counters.h"
#include "agent/views.h"
#include "kernel/attach.h"
#include "kernel/pins.h"
#include "kernel/program.h"
#include "resolver/netlink.h"
#include "resolver/resolver.h"

namespace psnic {

struct HostAgentOptions {
  AttachMode mode = AttachMode::tcx;
  // Pinned: TCX links are pinned here, the first reconcile adopts what an earlier agent left,
  // and stopping leaves every interface counting for the next agent. Null: ephemeral, everything
  // is detached when the agent stops. The program's map must be pinned in the same directory.
  const PinDir* pins = nullptr;
  std::chrono::milliseconds reconcile_interval{30000};
  std::chrono::milliseconds retire_after{120000};
  // Beaten at every turn of run()'s loop, for /healthz. May be null; must outlive run().
  LoopHeartbeat* heartbeat = nullptr;
  // Called on the loop's thread at each SIGHUP (the main reloads the web config). May be empty.
  std::function<void()> reload;
};

// A container runtime's event stream (Docker's): which owners started or were renamed, so that
// they are named at once rather than at the next retry or reconcile.
class OwnerEvents {
 public:
  virtual ~OwnerEvents() = default;
  // Subscribes anew; false when the runtime is not there or refuses. Never throws.
  virtual bool connect() = 0;
  // The subscription's fd, for epoll, while connected.
  virtual int fd() const = 0;
  // Reads what is there without blocking: the ids of containers that started or were renamed.
  // Sets `closed` when the stream ended or broke; connect() again later.
  virtual std::vector<std::string> drain(bool& closed) = 0;
  // What the stream is, for log lines: "docker events on /var/run/docker.sock".
  virtual std::string name() const = 0;
};

// `psnic-agent` on its own: counts every host peer (veth, netkit) on the host, follows links as
// they come and go, names their owners, and keeps the series of vanished interfaces for a grace
// period. The decisions are the Inventory's; this wires it to the kernel (KernelCounters), the
// resolver and the clock, and runs the loop that feeds it. One thread. When destroyed, an
// ephemeral agent stops counting everything it counted; a pinned one leaves it all counting,
// for the next agent to adopt.
class HostAgent {
 public:
  using Clock = Inventory::Clock;

  // `self` and `describe` may be null.
  HostAgent(const TrafficProgram& program, HostAgentOptions options,
            std::shared_ptr<LabelSnapshot> labels, std::shared_ptr<RetiredSnapshot> retired,
            std::shared_ptr<SelfReport> self, DescribeOwner describe);
  HostAgent(const HostAgent&) = delete;
  HostAgent& operator=(const HostAgent&) = delete;

  // The inventory's steps, on the real host (see Inventory): run() takes them as events and
  // timers come; the privileged tests take them one at a time.
  void reconcile(std::chrono::milliseconds budget = std::chrono::milliseconds::max()) {
    inventory_.reconcile(budget);
  }
  void handle_all(const std::vector<LinkEvent>& events, Clock::time_point seen) {
    inventory_.handle_all(events, seen);
  }
  void identify_pending() { inventory_.identify_pending(); }
  void expire_retired(Clock::time_point now) { inventory_.expire_retired(now); }

  // Runs until SIGINT/SIGTERM (which the caller has blocked, with SIGHUP): link notifications, the
  // runtime's events when `owners` is given, reconcile timer, owner identification with backoff,
  // retirement. Reconciles first.
  void run(OwnerEvents* owners = nullptr);

  size_t attached() const { return inventory_.attached(); }
  size_t pending() const { return inventory_.pending(); }

 private:
  HostAgentOptions options_;
  std::shared_ptr<SelfReport> self_;
  Resolver resolver_;
  KernelCounters counters_;
  Inventory inventory_;
};

}  // namespace psnic
