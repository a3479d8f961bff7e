#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "agent/label_store.h"
#include "agent/views.h"
#include "kernel/attach.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"
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
};

// Fills what a namespace's owner is called (container_name, pod, namespace) into its labels,
// e.g. from the Docker Engine API. container_id and interface names are already set.
using DescribeOwner = std::function<void(const NetnsReport& owner, InterfaceLabels& labels)>;

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
// period. Owns all mutable state; one thread. When destroyed, an ephemeral agent detaches
// everything it attached; a pinned one leaves it all counting, for the next agent to adopt.
class HostAgent {
 public:
  using Clock = std::chrono::steady_clock;

  // `self` and `describe` may be null.
  HostAgent(const TrafficProgram& program, HostAgentOptions options,
            std::shared_ptr<LabelSnapshot> labels, std::shared_ptr<RetiredSnapshot> retired,
            std::shared_ptr<SelfReport> self, DescribeOwner describe);
  HostAgent(const HostAgent&) = delete;
  HostAgent& operator=(const HostAgent&) = delete;
  ~HostAgent();

  // A full pass: attach every host peer not attached (or no longer intact), name owners, retire
  // what is gone. Cost: one host link dump, and one query per namespace. Attaching stops after
  // `budget`; the rest waits in a backlog for attach_backlog(). (TCX attaches one link per RCU
  // grace period: a cold start with a thousand veths takes seconds, and the loop must go on
  // hearing of new links and stop signals meanwhile.)
  void reconcile(std::chrono::milliseconds budget = std::chrono::milliseconds::max());
  // Attaches what reconcile() left in the backlog, until `until`.
  void attach_backlog(Clock::time_point until);
  size_t backlog() const { return backlog_.size(); }
  // Link notifications received at `seen`, in order; new host peers are attached together.
  void handle_all(const std::vector<LinkEvent>& events, Clock::time_point seen);
  void handle(const LinkEvent& event, Clock::time_point seen);
  // Names the owners of interfaces attached before they were known (one batch lookup).
  void identify_pending();
  // Drops retired series whose grace period is over.
  void expire_retired(Clock::time_point now);

  // Runs until SIGINT/SIGTERM (which the caller has blocked): link notifications, the runtime's
  // events when `owners` is given, reconcile timer, owner identification with backoff,
  // retirement. Reconciles first.
  void run(OwnerEvents* owners = nullptr);
  // A runtime says these containers started or were renamed: their interfaces are named again
  // by the next identify_pending(), due now.
  void owners_changed(const std::vector<std::string>& container_ids);

  size_t attached() const { return tracked_.size(); }
  size_t pending() const;
  size_t retired() const { return retired_.size(); }

 private:
  struct Tracked {
    Attachment attachment;
    InterfaceLabels labels;
    bool identified = false;
  };
  struct Retired {
    RetiredSeries series;
    Clock::time_point expires;
  };

  // Takes an attach result into tracked_ (counting starts, labels come later), or logs and
  // counts its failure; whether it was attached.
  bool adopt_result(const AttachRequest& request, AttachResult result);
  void track(const AttachRequest& request, Attachment attachment);
  // First pass of a pinned agent: takes over what an earlier agent left on `candidates` and
  // returns the rest, whose remnants are removed and counters restarted; drops the pins and
  // counters of interfaces that went while no agent ran.
  std::vector<AttachRequest> adopt_pinned(const std::vector<AttachRequest>& candidates);
  void retire(uint32_t ifindex, Clock::time_point now);
  // Exports the counter an earlier agent left for an interface that is no longer the one it
  // counted, under the labels that agent stored, for the grace period; then drops it.
  void retire_left_behind(uint32_t ifindex, Clock::time_point now);
  void name_owner(const NetnsReport& owner, const InterfacePair& pair);
  void publish();
  Clock::time_point next_deadline() const;

  const TrafficProgram& program_;
  HostAgentOptions options_;
  std::shared_ptr<LabelSnapshot> labels_;
  std::shared_ptr<RetiredSnapshot> retired_snapshot_;
  std::shared_ptr<SelfReport> self_;
  DescribeOwner describe_;
  TrafficMap map_;
  Resolver resolver_;
  std::optional<LabelStore> label_store_;  // pinned agents only

  std::map<uint32_t, Tracked> tracked_;  // by host ifindex
  std::vector<AttachRequest> backlog_;   // host peers found by a reconcile, not yet attached
  std::vector<Retired> retired_;
  bool first_pass_ = true;
  Clock::time_point next_reconcile_{};
  Clock::time_point next_identify_{};
  Clock::time_point next_owner_connect_{};  // while the runtime's stream is down
  std::chrono::milliseconds identify_backoff_{20};
};

// A host link psnic counts: a veth or netkit whose peer lives in another namespace.
bool is_host_peer_candidate(const Link& link);

}  // namespace psnic
