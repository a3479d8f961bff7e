#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/counters.h"
#include "agent/owner_source.h"
#include "agent/views.h"
#include "kernel/expedite.h"
#include "resolver/netlink.h"
#include "resolver/resolver.h"

namespace psnic {

// Queues a question for a runtime (RuntimeWorker::ask): what a namespace's owner is called. The
// answer comes back later, or never, through Inventory::owners_described(). False when the
// question cannot be queued.
using AskOwner = std::function<bool(OwnerRequest request)>;

// A host link psnic counts: a veth or netkit whose peer lives in another namespace.
bool is_host_peer_candidate(const Link& link);

// The agent's decisions, free of the kernel: which host peers are counted, which wait in the
// backlog, whose owner is still to be named, which vanished interfaces are still exported and
// until when. It learns of the host through link events and passes of `discover` (the
// resolver), acts through `counters`, reads time from `now`, and publishes what the exporter
// reads. One thread; HostAgent's loop drives it.
class Inventory {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;
  // One pass over the host (Resolver::resolve_all). Throws Error.
  using Discover = std::function<BatchReport(const ResolveOptions& options)>;

  struct Options {
    std::chrono::milliseconds reconcile_interval{30000};
    std::chrono::milliseconds retire_after{120000};
    // How long a newly counted interface's series waits for its owner to be named (found in
    // /proc, and its runtime's answer) before it is exported with what is known then. Counting
    // starts at once either way; a hung daemon delays the series, never the counts.
    std::chrono::milliseconds name_wait{2000};
    // --expedite-attach: held while more than kExpediteAbove interfaces wait to be counted (a
    // cold start, a reconcile's backlog, a burst of new links) or to be hooked at their peers,
    // until none waits. Null: never.
    // Must outlive the inventory.
    ExpeditedGracePeriods* expedite = nullptr;
    // Whether a counted interface's receive moves to its container-side peer's ingress once its
    // namespace is known (--receive-at peer), or stays at the host interface's egress (host).
    bool receive_at_peer = true;
  };

  // `self`, `owners` and `ask` may be null (no runtime: owners are named by the resolver
  // alone, at once). `counters` must outlive the inventory.
  Inventory(Counters& counters, Discover discover, Options options,
            std::shared_ptr<LabelSnapshot> labels, std::shared_ptr<RetiredSnapshot> retired,
            std::shared_ptr<SelfReport> self, AskOwner ask, Now now = Clock::now,
            std::shared_ptr<OwnerSnapshot> owners = nullptr);
  Inventory(const Inventory&) = delete;
  Inventory& operator=(const Inventory&) = delete;
  // Publishes empty views: what the counters do with the interfaces is theirs to decide. Gives
  // back expedited grace periods if it holds them.
  ~Inventory();

  // A full pass: count every host peer not counted (or whose hooks another tool removed), name
  // owners, retire what is gone. Counting stops after `budget`; the rest waits in the backlog.
  // (TCX attaches one link per RCU grace period: a cold start with a thousand veths takes
  // seconds, and the loop must go on hearing of new links and stop signals meanwhile.) A pinned
  // agent's first pass adopts what an earlier agent left.
  void reconcile(std::chrono::milliseconds budget = std::chrono::milliseconds::max());
  // Counts what reconcile() left in the backlog, then hooks the container-side peers waiting,
  // until `until`.
  void attach_backlog(Clock::time_point until);
  // Link notifications received at `seen`, in order; new host peers are counted together.
  void handle_all(const std::vector<LinkEvent>& events, Clock::time_point seen);
  // Names the owners of interfaces counted before they were known (one pass), and backs off
  // while some stay unknown.
  void identify_pending();
  // Drops retired series whose grace period is over.
  void expire_retired(Clock::time_point now);
  // A runtime says these containers started or were renamed: their interfaces are named again
  // by the next identify_pending(), due now.
  void owners_changed(const std::vector<std::string>& container_ids);
  // The runtime's answers to questions asked: each names the interfaces still waiting for it
  // (an answer to a question since asked again, or about interfaces since gone, names nobody).
  void owners_described(const std::vector<OwnerAnswer>& answers);
  // Series whose owner is still not named after Options::name_wait are exported with what is
  // known.
  void export_overdue(Clock::time_point now);

  // When the next timed step is due: a reconcile, an identification, an overdue series, an
  // expiry; now while the backlog is not empty.
  Clock::time_point next_deadline() const;
  bool reconcile_due(Clock::time_point now) const { return now >= next_reconcile_; }
  bool identify_due(Clock::time_point now) const {
    return next_identify_ != Clock::time_point{} && now >= next_identify_;
  }

  size_t attached() const { return tracked_.size(); }
  // Counted interfaces whose owner is not named yet: not found, or its runtime not answered.
  size_t pending() const;
  // Counted interfaces whose series is not exported yet (waiting for their owner's name).
  size_t unexported() const;
  size_t retired() const { return retired_.size(); }
  size_t backlog() const { return backlog_.size(); }
  // Counted interfaces whose container-side peer is to be hooked (PeerLink), by attach_backlog.
  size_t peers_waiting() const { return peer_backlog_.size(); }

 private:
  // A counted interface. Its series is exported once its owner is named (or at `export_by`
  // with what is known then); from then on its labels are fixed: Prometheus tells series apart
  // by their labels, so a label learned late would split one container's counts in two. Only a
  // rename (of the container, or of either interface) or an owner that is another container
  // changes them.
  struct Tracked {
    InterfaceLabels labels;         // its series' labels
    OwnerFacts owner;               // what is known of its owner now (psnic_container_info)
    bool identified = false;        // its owner found (by the resolver)
    bool exported = false;          // its series is published
    bool named = false;             // its owner logged by this agent (an adopted series' too)
    bool kept_logged = false;       // said once that it keeps its labels though more is known now
    Clock::time_point export_by{};  // while not exported: when it is, named or not
    // While a runtime's answer is awaited: the question's ticket, and what is known without it.
    uint64_t asked = 0;
    InterfaceLabels known;
    // Where its receive is counted: at its container-side peer's ingress once hooked there;
    // until then (and for good once that failed for a lasting cause) at the host egress.
    bool at_peer = false;
    bool peer_given_up = false;
  };
  struct Retired {
    RetiredSeries series;
    OwnerFacts owner;
    Clock::time_point expires;
  };

  // Counts `requests`; logs and counts each failure. Whether any is counted.
  bool count(const std::vector<AttachRequest>& requests, const Clock::time_point* seen);
  void track(const AttachRequest& request);
  std::vector<AttachRequest> adopt_pinned(const std::vector<AttachRequest>& candidates);
  // The counter's last values, read before it goes; nullopt when absent or unreadable.
  std::optional<TrafficCounts> final_values(uint32_t ifindex);
  void retire(uint32_t ifindex, Clock::time_point now);
  // Exports the counter an earlier agent left for an interface that is no longer the one it
  // counted, under the labels that agent stored, for the grace period; then drops it.
  void retire_left_behind(uint32_t ifindex, Clock::time_point now);
  void name_owner(const NetnsReport& owner, const InterfacePair& pair);
  // Queues a counted interface's receive to move to its container-side peer, now that its
  // namespace is known (PeerLink: bpf_redirect_peer traffic skips the host egress).
  void count_at_peer(const NetnsReport& owner, const InterfacePair& pair);
  // Hooks the peers queued, until `until` (each is a TCX attach: an RCU grace period). A failure
  // leaves the interface at the host egress, logged once per cause; a namespace that cannot be
  // opened now is tried again by the next pass. True when any was hooked.
  bool hook_peers(Clock::time_point until);
  // Asks the runtime about `owner` for `tracked` (joining a question about it already out).
  // False when it cannot be asked.
  bool ask_about(const NetnsReport& owner, const InterfaceLabels& known, Tracked& tracked);
  // What is known of `tracked`'s owner now: exports its series with these labels if it is not
  // exported yet, else relabels it only if they rename it or name another owner.
  void settle(Tracked& tracked, uint32_t ifindex, OwnerFacts facts);
  // Gives `tracked` these labels, logging and storing them when they changed.
  void relabel(Tracked& tracked, uint32_t ifindex, InterfaceLabels labels);
  size_t unidentified() const;
  // Expedited grace periods while more than kExpediteAbove interfaces are about to be counted or
  // hooked at their peers (`waiting`); given back once both backlogs are empty.
  void expedite_for(size_t waiting);
  void expedite_done();
  void identify_now();
  void publish();

  Counters& counters_;
  Discover discover_;
  Options options_;
  std::shared_ptr<LabelSnapshot> labels_;
  std::shared_ptr<RetiredSnapshot> retired_snapshot_;
  std::shared_ptr<SelfReport> self_;
  AskOwner ask_;
  Now now_;
  std::shared_ptr<OwnerSnapshot> owners_;

  std::map<uint32_t, Tracked> tracked_;    // by host ifindex
  std::vector<AttachRequest> backlog_;     // host peers found by a reconcile, not yet counted
  std::vector<PeerRequest> peer_backlog_;  // counted interfaces whose peer is to be hooked
  std::vector<Retired> retired_;
  std::set<std::string> peer_causes_logged_;  // why receives stay at the host egress, said once
  std::map<std::string, uint64_t> asking_;    // owner key -> ticket of the question out about it
  uint64_t last_ticket_ = 0;
  bool first_pass_ = true;
  // An expedited backlog just worked off: the knob stays held until the naming that follows
  // has queued the interfaces' peers (identify_pending, or the pass's own naming).
  bool expedite_through_naming_ = false;
  Clock::time_point next_reconcile_{};
  Clock::time_point next_identify_{};
  std::chrono::milliseconds identify_backoff_{20};
};

}  // namespace psnic
