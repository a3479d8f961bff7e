#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/inventory.h"
#include "agent/kernel_counters.h"
#include "agent/owner_source.h"
#include "agent/runtime_worker.h"
#include "agent/views.h"
#include "kernel/attach.h"
#include "kernel/expedite.h"
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
  std::chrono::milliseconds name_wait{2000};  // Inventory::Options::name_wait
  // Beaten at every turn of run()'s loop, for /healthz. May be null; must outlive run().
  LoopHeartbeat* heartbeat = nullptr;
  // Called on the loop's thread at each SIGHUP (the main reloads the web config). May be empty.
  std::function<void()> reload;
  // --expedite-attach: expedited RCU grace periods while a large backlog is attached (see
  // Inventory::Options::expedite) and, for an ephemeral agent, while it detaches more than
  // kExpediteAbove interfaces as it goes. May be null; must outlive the agent.
  ExpeditedGracePeriods* expedite = nullptr;
  // --receive-at: Inventory::Options::receive_at_peer.
  bool receive_at_peer = true;
};

// `psnic-agent` on its own: counts every host peer (veth, netkit) on the host, follows links as
// they come and go, names their owners, and keeps the series of vanished interfaces for a grace
// period. The decisions are the Inventory's; this wires it to the kernel (KernelCounters), the
// resolver and the clock, and runs the loop that feeds it. One thread, which never waits for a
// container runtime: the runtimes are asked on a RuntimeWorker's. When destroyed, an
// ephemeral agent stops counting everything it counted; a pinned one leaves it all counting,
// for the next agent to adopt.
class HostAgent {
 public:
  using Clock = Inventory::Clock;

  // `self`, `owners` (who names owners), `events` (whose events say when to ask again) and
  // `facts` (what psnic_container_info shows) may be null; those given must outlive the agent.
  HostAgent(const TrafficProgram& program, HostAgentOptions options,
            std::shared_ptr<LabelSnapshot> labels, std::shared_ptr<RetiredSnapshot> retired,
            std::shared_ptr<SelfReport> self, OwnerSource* owners, OwnerEvents* events = nullptr,
            std::shared_ptr<OwnerSnapshot> facts = nullptr);
  HostAgent(const HostAgent&) = delete;
  HostAgent& operator=(const HostAgent&) = delete;
  // Ephemeral: detaches everything it counted (with expedited grace periods when there are more
  // than kExpediteAbove interfaces and options.expedite allows). Pinned: leaves it all counting.
  ~HostAgent();

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

  // Runs until SIGINT/SIGTERM (which the caller has blocked, with SIGHUP): link notifications,
  // the runtime's answers and events, reconcile timer, owner identification with backoff,
  // retirement. Reconciles first.
  void run();

  size_t attached() const { return inventory_.attached(); }
  size_t pending() const { return inventory_.pending(); }

 private:
  HostAgentOptions options_;
  std::shared_ptr<SelfReport> self_;
  OwnerEvents* events_;
  Resolver resolver_;
  KernelCounters counters_;
  // Before the inventory, which asks it: destroyed after it.
  std::optional<RuntimeWorker> worker_;
  Inventory inventory_;
};

}  // namespace psnic
