#include "agent/inventory.h"

#include <algorithm>
#include <cerrno>
#include <set>

#include "base/error.h"
#include "base/log.h"
#include "base/text.h"

namespace psnic {
namespace {

constexpr std::chrono::milliseconds kFirstIdentifyDelay{20};

// netns-<uuid>, as podman (netavark, CNI) names the namespaces it makes in /run/netns.
bool is_podman_netns_name(std::string_view name) {
  constexpr std::string_view kPrefix = "netns-";
  if (!name.starts_with(kPrefix) || name.size() != kPrefix.size() + 36) return false;
  name.remove_prefix(kPrefix.size());
  for (size_t i = 0; i < name.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = name[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
constexpr std::chrono::milliseconds kMaxIdentifyBackoff{5000};
// Counted a few at a time, so that a slice ends close to its deadline even at 25 ms per TCX
// interface.
constexpr size_t kChunk = 4;

}  // namespace

bool is_host_peer_candidate(const Link& link) {
  return (link.kind == "veth" || link.kind == "netkit") && link.link_netnsid &&
         *link.link_netnsid >= 0;
}

Inventory::Inventory(Counters& counters, Discover discover, Options options,
                     std::shared_ptr<LabelSnapshot> labels,
                     std::shared_ptr<RetiredSnapshot> retired, std::shared_ptr<SelfReport> self,
                     AskOwner ask, Now now, std::shared_ptr<OwnerSnapshot> owners)
    : counters_(counters),
      discover_(std::move(discover)),
      options_(options),
      labels_(std::move(labels)),
      retired_snapshot_(std::move(retired)),
      self_(std::move(self)),
      ask_(std::move(ask)),
      now_(std::move(now)),
      owners_(std::move(owners)) {}

Inventory::~Inventory() {
  if (options_.expedite) options_.expedite->end();
  tracked_.clear();
  retired_.clear();
  publish();
}

size_t Inventory::pending() const {
  return static_cast<size_t>(std::count_if(tracked_.begin(), tracked_.end(), [](const auto& t) {
    return !t.second.identified || (t.second.asked != 0 && !t.second.exported);
  }));
}

size_t Inventory::unexported() const {
  return static_cast<size_t>(std::count_if(tracked_.begin(), tracked_.end(),
                                           [](const auto& t) { return !t.second.exported; }));
}

size_t Inventory::unidentified() const {
  return static_cast<size_t>(std::count_if(tracked_.begin(), tracked_.end(),
                                           [](const auto& t) { return !t.second.identified; }));
}

bool Inventory::count(const std::vector<AttachRequest>& requests, const Clock::time_point* seen) {
  const std::string mode = attach_mode_name(counters_.mode());
  std::vector<std::optional<Error>> errors = counters_.attach(requests);
  bool any = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    const AttachRequest& request = requests[i];
    if (errors[i]) {
      // A link deleted before psnic got to it is an ordinary race (a container that lived for
      // milliseconds), not a failure.
      if (errors[i]->errnum() == ENODEV) continue;
      if (self_) self_->count_error(ErrorOp::kAttach);
      log_warn(errors[i]->what(), {{"interface", request.name}});
      continue;
    }
    track(request);
    log_info("attached " + request.name + " (" + mode + ")",
             {{"interface", request.name}, {"mode", mode}});
    if (seen && self_)
      self_->observe_attach_latency(std::chrono::duration<double>(now_() - *seen).count());
    any = true;
  }
  return any;
}

void Inventory::track(const AttachRequest& request) {
  Tracked tracked;
  tracked.labels.host_interface = request.name;
  tracked.export_by = now_() + options_.name_wait;
  tracked_.insert_or_assign(request.ifindex, std::move(tracked));
  if (next_identify_ == Clock::time_point{}) {
    identify_backoff_ = kFirstIdentifyDelay;
    next_identify_ = now_() + identify_backoff_;
  }
}

std::vector<AttachRequest> Inventory::adopt_pinned(const std::vector<AttachRequest>& candidates) {
  const std::string mode = attach_mode_name(counters_.mode());
  const Clock::time_point now = now_();
  std::vector<AttachRequest> fresh;
  for (const AttachRequest& request : candidates) {
    bool adopted = false;
    try {
      adopted = counters_.adopt(request);
    } catch (const Error& e) {
      if (self_) self_->count_error(ErrorOp::kAttach);
      log_warn(e.what(), {{"interface", request.name}});
    }
    if (adopted) {
      track(request);
      tracked_.at(request.ifindex).at_peer = counters_.at_peer(request.ifindex);
      // An adopted series goes on with the labels it was exported with.
      std::optional<InterfaceLabels> stored = counters_.stored_labels(request.ifindex);
      if (stored && stored->host_interface == request.name) {
        Tracked& tracked = tracked_.at(request.ifindex);
        tracked.labels = std::move(*stored);
        tracked.owner.labels = tracked.labels;
        tracked.exported = true;
      }
      log_info("adopted " + request.name + " (" + mode + ")",
               {{"interface", request.name}, {"mode", mode}});
      continue;
    }
    // Half a pair, the other mode's pair, or none: what is there goes, and a counter left
    // there (an earlier interface's with the same ifindex, say) is retired.
    counters_.remove_remnants(request.ifindex);
    retire_left_behind(request.ifindex, now);
    fresh.push_back(request);
  }
  // Pins of links whose interface went (the kernel detached them), and counters without an
  // interface: their final values are exported for the grace period.
  for (uint32_t ifindex : counters_.pinned())
    if (!tracked_.count(ifindex)) counters_.unpin(ifindex);
  size_t gone = 0;
  for (uint32_t ifindex : counters_.counted())
    if (!tracked_.count(ifindex)) {
      retire_left_behind(ifindex, now);
      ++gone;
    }
  log_info("adopted " + counted(tracked_.size(), "counting interface") + " from " +
           *counters_.pin_path() + "; " + std::to_string(fresh.size()) + " to attach; " +
           std::to_string(gone) + " gone while no agent ran");
  return fresh;
}

std::optional<TrafficCounts> Inventory::final_values(uint32_t ifindex) {
  try {
    return counters_.read(ifindex);
  } catch (const Error&) {
    if (self_) self_->count_error(ErrorOp::kReadMap);
    return std::nullopt;
  }
}

void Inventory::retire(uint32_t ifindex, Clock::time_point now) {
  auto it = tracked_.find(ifindex);
  if (it == tracked_.end()) return;
  const InterfaceLabels& labels = it->second.labels;
  // The last values are read before the counter goes, and exported for the grace period.
  std::optional<TrafficCounts> final = final_values(ifindex);
  counters_.detach(ifindex);
  // A series gone within its wait is exported now, retired, with what is known of its owner:
  // what it counted is not lost.
  if (!it->second.exported && it->second.identified) it->second.labels = it->second.known;
  if (final) retired_.push_back({{labels, *final}, it->second.owner, now + options_.retire_after});
  log_info("detached " + labels.host_interface + " (gone" +
               (labels.container_id.empty() ? "" : ", " + labels.container_id) + ")",
           {{"interface", labels.host_interface}, {"container_id", labels.container_id}});
  const uint64_t asked = it->second.asked;
  tracked_.erase(it);
  std::erase_if(peer_backlog_, [&](const PeerRequest& r) { return r.host_ifindex == ifindex; });
  // A question nobody waits for any more is not joined by a later interface (a namespace inode
  // or an ifindex used again): that one asks anew.
  if (asked != 0 && std::none_of(tracked_.begin(), tracked_.end(),
                                 [&](const auto& t) { return t.second.asked == asked; }))
    std::erase_if(asking_, [&](const auto& out) { return out.second == asked; });
}

void Inventory::retire_left_behind(uint32_t ifindex, Clock::time_point now) {
  std::optional<TrafficCounts> final = final_values(ifindex);
  std::optional<InterfaceLabels> labels = counters_.stored_labels(ifindex);
  if (final && labels && !labels->host_interface.empty()) {
    retired_.push_back({{*labels, *final}, {*labels, "", ""}, now + options_.retire_after});
    log_info("retired " + labels->host_interface + " (gone while no agent ran" +
                 (labels->container_id.empty() ? "" : ", " + labels->container_id) + ")",
             {{"interface", labels->host_interface}, {"container_id", labels->container_id}});
  }
  counters_.forget(ifindex);
}

void Inventory::name_owner(const NetnsReport& owner, const InterfacePair& pair) {
  auto it = tracked_.find(pair.host_ifindex);
  if (it == tracked_.end()) return;
  // podman names a container's namespace netns-<uuid> and makes it before the container's first
  // process, whose cgroup says which container it is: such a namespace with no process in it yet
  // is given a while for one before it is named by its name alone. Other named namespaces
  // (`ip netns add NAME`) are named at once.
  // Half the name wait from its attach: named by its name before the wait ends, if no process
  // comes.
  if (owner.pid == 0 && is_podman_netns_name(owner.netns_name) && !it->second.exported &&
      now_() < it->second.export_by - options_.name_wait / 2)
    return;
  InterfaceLabels known;
  known.container_id = owner.identity.id;
  known.interface = pair.name;
  known.host_interface = pair.host_name;
  // A namespace made with `ip netns add NAME` is named NAME, unless it is a container's (podman
  // names its containers' namespaces netns-UUID, new at each start): that one is named by its
  // runtime.
  if (owner.identity.id.empty()) known.container_name = owner.netns_name;
  Tracked& tracked = it->second;
  tracked.identified = true;
  tracked.owner.runtime = owner.identity.runtime;
  // A runtime is asked only about what it may know: a container, or a pod. Counting goes on
  // meanwhile; the series waits for the answer (until its export_by), or keeps the labels it has.
  // containerd's (ctr) container ids are not hex: its cgroup names none, its shim does, so a
  // process's namespace without an `ip netns` name is asked about too.
  const bool runtimes_know = !owner.identity.id.empty() || !owner.identity.pod_uid.empty() ||
                             (owner.pid > 0 && owner.netns_name.empty());
  if (ask_ && runtimes_know && ask_about(owner, known, tracked)) return;
  settle(tracked, pair.host_ifindex, {known, "", owner.identity.runtime});
}

void Inventory::count_at_peer(const NetnsReport& owner, const InterfacePair& pair) {
  if (!options_.receive_at_peer) return;
  auto it = tracked_.find(pair.host_ifindex);
  if (it == tracked_.end() || it->second.at_peer || it->second.peer_given_up) return;
  if (std::any_of(peer_backlog_.begin(), peer_backlog_.end(),
                  [&](const PeerRequest& r) { return r.host_ifindex == pair.host_ifindex; }))
    return;
  peer_backlog_.push_back({pair.host_ifindex, it->second.labels.host_interface, owner.netns_inode,
                           owner.pid, owner.netns_name, pair.ifindex, pair.kind, pair.name});
}

bool Inventory::hook_peers(Clock::time_point until) {
  bool hooked = false;
  while (!peer_backlog_.empty() && now_() < until) {
    const PeerRequest request = peer_backlog_.front();
    peer_backlog_.erase(peer_backlog_.begin());
    auto it = tracked_.find(request.host_ifindex);
    if (it == tracked_.end() || it->second.at_peer || it->second.peer_given_up) continue;
    Tracked& tracked = it->second;
    const std::string& name = tracked.labels.host_interface;
    try {
      counters_.count_at_peer(request);
      tracked.at_peer = true;
      hooked = true;
      log_info(name + ": receive counted at its peer " + request.name + "'s ingress",
               {{"interface", name}});
    } catch (const Error& e) {
      const int errnum = e.errnum();
      // Not here by design (tc mode, the kernel, the peer's kind), or a namespace that cannot be
      // opened now (its last process gone, a new one may come): no error of psnic's.
      const bool by_design = errnum == ENOTSUP || errnum == EOPNOTSUPP;
      const bool for_now = errnum == ESRCH || errnum == ENOENT || errnum == ENODEV;
      if (!for_now) tracked.peer_given_up = true;
      if (!by_design && !for_now && self_) self_->count_error(ErrorOp::kAttach);
      // Said once per cause, not once per interface and pass: the cause is the message without
      // the interface's name.
      std::string cause = e.what();
      if (cause.starts_with(name + ": ")) cause.erase(0, name.size() + 2);
      if (peer_causes_logged_.insert(cause).second)
        log_warn(std::string(e.what()) +
                     "; receive counted at the host interface's egress, which traffic moved with "
                     "bpf_redirect_peer skips (said once for this cause)",
                 {{"interface", name}});
    }
  }
  return hooked;
}

bool Inventory::ask_about(const NetnsReport& owner, const InterfaceLabels& known,
                          Tracked& tracked) {
  tracked.known = known;
  // The namespace is part of the key: two namespaces whose cgroups name one container (one of
  // them forged) get an answer each.
  std::string key = owner.identity.id.empty()
                        ? "netns:" + std::to_string(owner.netns_inode)
                        : owner.identity.id + " netns:" + std::to_string(owner.netns_inode);
  if (auto out = asking_.find(key); out != asking_.end()) {
    tracked.asked = out->second;
    return true;
  }
  OwnerRequest request{last_ticket_ + 1, key, owner, known};
  request.owner.interfaces.clear();
  if (!ask_(std::move(request))) {
    if (self_) self_->count_error(ErrorOp::kDescribe);
    log_warn(
        known.host_interface + ": too many questions for the runtime waiting; named without it",
        {{"interface", known.host_interface}});
    tracked.asked = 0;
    return false;
  }
  tracked.asked = ++last_ticket_;
  asking_.emplace(std::move(key), tracked.asked);
  return true;
}

namespace {

// Whether an exported series' labels `now` are to be given up for `next`: its container was
// renamed (docker rename), either interface was, or the interface is another owner's now (its
// container-side peer moved to another container). Not when `next` only knows more (a container
// id, a name or a pod learned late) or less (a runtime that stopped answering).
bool renamed(const InterfaceLabels& now, const OwnerFacts& facts) {
  const InterfaceLabels& next = facts.labels;
  if (facts.disowned) return !now.container_id.empty();
  if (next.container_id != now.container_id)
    return !now.container_id.empty() && !next.container_id.empty();
  if (!now.interface.empty() && !next.interface.empty() && next.interface != now.interface)
    return true;
  return !now.container_id.empty() && !now.container_name.empty() && !next.container_name.empty() &&
         next.container_name != now.container_name;
}

}  // namespace

void Inventory::settle(Tracked& tracked, uint32_t ifindex, OwnerFacts facts) {
  // The host interface is the link's own name, which link notifications keep up to date.
  facts.labels.host_interface = tracked.labels.host_interface;
  if (!tracked.exported || renamed(tracked.labels, facts)) {
    if (tracked.exported)
      log_info(tracked.labels.host_interface +
                   " relabelled (a rename, or another owner's now): a new series",
               {{"interface", tracked.labels.host_interface}});
    relabel(tracked, ifindex, facts.labels);
    tracked.exported = true;
    tracked.kept_logged = false;
  } else if (!tracked.named) {
    relabel(tracked, ifindex, tracked.labels);  // an adopted series: its owner, logged once
  }
  if (tracked.exported && facts.labels != tracked.labels && !tracked.kept_logged) {
    const InterfaceLabels& next = facts.labels;
    log_info(tracked.labels.host_interface +
                 " keeps the labels it was first exported with; its owner is now known as " +
                 (next.container_name.empty() ? "" : next.container_name + " ") +
                 (next.container_id.empty() ? "(no container id)" : next.container_id),
             {{"interface", tracked.labels.host_interface}, {"container_id", next.container_id}});
    tracked.kept_logged = true;
  }
  // psnic_container_info follows what is known now, under the series' own container id.
  facts.labels.container_id = tracked.labels.container_id;
  tracked.owner = std::move(facts);
}

void Inventory::relabel(Tracked& tracked, uint32_t ifindex, InterfaceLabels labels) {
  if (!tracked.named || tracked.labels != labels) {
    log_info(labels.host_interface + " is " + labels.interface + " of " +
                 (labels.container_name.empty() ? "" : labels.container_name + " ") +
                 (labels.container_id.empty() ? "(no container id)" : labels.container_id),
             {{"interface", labels.host_interface},
              {"container_id", labels.container_id},
              {"container_name", labels.container_name}});
  }
  if (!tracked.exported || tracked.labels != labels) counters_.store_labels(ifindex, labels);
  tracked.labels = std::move(labels);
  tracked.named = true;
}

void Inventory::owners_described(const std::vector<OwnerAnswer>& answers) {
  bool changed = false;
  for (const OwnerAnswer& answer : answers) {
    std::erase_if(asking_, [&](const auto& out) { return out.second == answer.ticket; });
    const InterfaceLabels& said = answer.facts.labels;
    if (!answer.error.empty()) {
      if (self_) self_->count_error(ErrorOp::kDescribe);
      log_warn("describing the owner of " + said.host_interface + " (" +
                   (said.container_id.empty() ? said.container_name : said.container_id) +
                   ") failed: " + answer.error,
               {{"interface", said.host_interface}});
    }
    for (auto& [ifindex, tracked] : tracked_) {
      if (tracked.asked != answer.ticket) continue;
      tracked.asked = 0;
      // A runtime failing says nothing: the series is exported with what is known without it
      // (at once, rather than at its export_by), or keeps what it has.
      OwnerFacts facts{tracked.known, "", tracked.owner.runtime};
      if (answer.error.empty()) {
        facts = answer.facts;
        facts.labels.interface = tracked.known.interface;
        facts.labels.host_interface = tracked.known.host_interface;
      }
      settle(tracked, ifindex, std::move(facts));
      changed = true;
    }
  }
  if (changed) publish();
}

void Inventory::export_overdue(Clock::time_point now) {
  bool changed = false;
  for (auto& [ifindex, tracked] : tracked_) {
    if (tracked.exported || tracked.export_by > now) continue;
    log_info(tracked.labels.host_interface + ": its owner not named within " +
                 std::to_string(options_.name_wait.count()) + " ms; exported with what is known",
             {{"interface", tracked.labels.host_interface}});
    // The answer, when it comes, adds to psnic_container_info, and renames only by a rename.
    settle(tracked, ifindex,
           {tracked.identified ? tracked.known : tracked.labels, "", tracked.owner.runtime});
    changed = true;
  }
  if (changed) publish();
}

void Inventory::expedite_for(size_t waiting) {
  if (options_.expedite && waiting > kExpediteAbove) options_.expedite->begin();
}

void Inventory::expedite_done() {
  if (options_.expedite && backlog_.empty() && peer_backlog_.empty() && !expedite_through_naming_)
    options_.expedite->end();
}

void Inventory::attach_backlog(Clock::time_point until) {
  bool counted = false;
  while (!backlog_.empty() && now_() < until) {
    const auto n = static_cast<long>(std::min(kChunk, backlog_.size()));
    std::vector<AttachRequest> chunk(backlog_.begin(), backlog_.begin() + n);
    backlog_.erase(backlog_.begin(), backlog_.begin() + n);
    counted |= count(chunk, nullptr);
  }
  if (counted && backlog_.empty()) {
    // All counted: name their owners now rather than at the end of a long backoff, and keep
    // grace periods expedited (if they are) for the peers' links that naming queues: one
    // set-and-restore for a cold start, not one for the host side and one for the peers.
    identify_backoff_ = kFirstIdentifyDelay;
    next_identify_ = now_();
    expedite_through_naming_ = true;
  }
  const bool hooked = hook_peers(until);
  expedite_done();
  if (counted || hooked) publish();
}

void Inventory::reconcile(std::chrono::milliseconds budget) {
  const Clock::time_point start = now_();
  try {
    ResolveOptions options;
    options.identity = true;
    options.host_network_containers = true;
    const BatchReport batch = discover_(options);
    if (self_)
      self_->set_host_network_containers(static_cast<double>(batch.host_network_containers));
    std::set<uint32_t> live;
    std::vector<AttachRequest> missing;
    for (const Link& link : batch.host_links) {
      if (!is_host_peer_candidate(link)) continue;
      live.insert(link.ifindex);
      if (!tracked_.count(link.ifindex)) {
        missing.push_back({link.ifindex, link.name});
      } else if (!counters_.intact(link.ifindex)) {
        // Another tool removed psnic's program: put it back, counters continue in the map.
        log_warn(link.name + ": psnic's program was removed; attaching again",
                 {{"interface", link.name}});
        try {
          counters_.reattach(link.ifindex);
        } catch (const Error& e) {
          if (self_) self_->count_error(ErrorOp::kAttach);
          log_warn(e.what(), {{"interface", link.name}});
        }
        // A peer link removed hands the receive back to the host egress: hooked anew below.
        Tracked& tracked = tracked_.at(link.ifindex);
        if (tracked.at_peer && !counters_.at_peer(link.ifindex)) tracked.at_peer = false;
      }
    }
    if (first_pass_ && counters_.pin_path() != nullptr) missing = adopt_pinned(missing);
    first_pass_ = false;
    // This pass's view replaces the backlog's: a link gone since is not counted.
    backlog_ = std::move(missing);
    const bool budgeted = budget != std::chrono::milliseconds::max();
    if (backlog_.size() > 100 && budgeted)
      log_info("attaching " + std::to_string(backlog_.size()) + " interfaces (" +
               attach_mode_name(counters_.mode()) + ")");
    expedite_for(backlog_.size());
    attach_backlog(budgeted ? start + budget : Clock::time_point::max());

    // Links that vanished without a notification reaching psnic (an overrun socket).
    std::vector<uint32_t> gone;
    for (const auto& [ifindex, tracked] : tracked_)
      if (!live.count(ifindex)) gone.push_back(ifindex);
    for (uint32_t ifindex : gone) retire(ifindex, start);

    for (const NetnsReport& owner : batch.namespaces)
      for (const InterfacePair& pair : owner.interfaces)
        if (pair.placement == Placement::host_peer) {
          count_at_peer(owner, pair);
          name_owner(owner, pair);
        }
    expedite_through_naming_ = false;    // this pass named what it could
    expedite_for(peer_backlog_.size());  // each peer is a TCX attach too
    hook_peers(budgeted ? start + budget : Clock::time_point::max());
    expedite_done();
    if (unidentified() == 0) next_identify_ = {};  // all found by this pass: no lookup is due
  } catch (const Error& e) {
    if (self_) self_->count_error(ErrorOp::kReconcile);
    log_error("reconcile: " + std::string(e.what()));
  }
  publish();
  next_reconcile_ = now_() + options_.reconcile_interval;
  if (self_) self_->observe_reconcile(std::chrono::duration<double>(now_() - start).count());
}

void Inventory::handle_all(const std::vector<LinkEvent>& events, Clock::time_point seen) {
  // New host peers are counted once the whole batch is read: a link added and deleted within
  // one batch is never attached.
  std::vector<AttachRequest> fresh;
  bool changed = false;
  for (const LinkEvent& event : events) {
    const Link& link = event.link;
    auto it = tracked_.find(link.ifindex);
    auto queued = std::find_if(fresh.begin(), fresh.end(),
                               [&](const AttachRequest& r) { return r.ifindex == link.ifindex; });
    // A link reconcile() found and left for later is now either gone or due at once.
    std::erase_if(backlog_, [&](const AttachRequest& r) { return r.ifindex == link.ifindex; });
    if (event.deleted) {
      if (queued != fresh.end()) fresh.erase(queued);
      if (it != tracked_.end()) {
        retire(link.ifindex, seen);
        changed = true;
      }
    } else if (it == tracked_.end()) {
      if (queued == fresh.end() && is_host_peer_candidate(link))
        fresh.push_back({link.ifindex, link.name});
      else if (queued != fresh.end())
        queued->name = link.name;
    } else if (it->second.labels.host_interface != link.name) {  // renamed
      it->second.labels.host_interface = link.name;
      counters_.store_labels(link.ifindex, it->second.labels);
      changed = true;
    }
  }
  if (!fresh.empty()) {
    expedite_for(fresh.size());
    count(fresh, &seen);
    changed = true;
  }
  expedite_done();  // also when these notifications took the backlog's last links out of it
  if (changed) publish();
}

void Inventory::identify_pending() {
  if (unidentified() > 0) identify_now();
  expedite_through_naming_ = false;  // what this naming found is queued
  expedite_done();
  // Retry with backoff until a process shows up in every pending namespace.
  if (unidentified() == 0) {
    next_identify_ = {};
  } else {
    identify_backoff_ = std::min(identify_backoff_ * 2, kMaxIdentifyBackoff);
    next_identify_ = now_() + identify_backoff_;
  }
}

void Inventory::identify_now() {
  try {
    ResolveOptions options;
    options.identity = true;
    for (const NetnsReport& owner : discover_(options).namespaces)
      for (const InterfacePair& pair : owner.interfaces)
        if (pair.placement == Placement::host_peer) {
          auto it = tracked_.find(pair.host_ifindex);
          if (it == tracked_.end() || it->second.identified) continue;
          count_at_peer(owner, pair);
          name_owner(owner, pair);
        }
    expedite_for(peer_backlog_.size());  // hooked by the loop's next turns (attach_backlog)
  } catch (const Error& e) {
    if (self_) self_->count_error(ErrorOp::kIdentify);
    log_error("identify: " + std::string(e.what()));
  }
  publish();
}

void Inventory::expire_retired(Clock::time_point now) {
  auto end = std::remove_if(retired_.begin(), retired_.end(),
                            [&](const Retired& r) { return r.expires <= now; });
  if (end == retired_.end()) return;
  retired_.erase(end, retired_.end());
  publish();
}

void Inventory::owners_changed(const std::vector<std::string>& container_ids) {
  if (container_ids.empty()) return;
  for (auto& [ifindex, tracked] : tracked_)
    if (std::find(container_ids.begin(), container_ids.end(), tracked.labels.container_id) !=
        container_ids.end())
      tracked.identified = false;
  // What the runtime says of them from now on is asked anew: an answer to a question asked
  // before the change names nobody.
  for (const std::string& id : container_ids)
    std::erase_if(asking_, [&](const auto& out) { return out.first.starts_with(id + " "); });
  // A started container's veth may still be waiting for its first process to be named.
  if (unidentified() > 0) {
    identify_backoff_ = kFirstIdentifyDelay;
    next_identify_ = now_();
  }
}

Inventory::Clock::time_point Inventory::next_deadline() const {
  if (!backlog_.empty() || !peer_backlog_.empty()) return now_();
  Clock::time_point next = next_reconcile_;
  if (next_identify_ != Clock::time_point{}) next = std::min(next, next_identify_);
  for (const Retired& r : retired_) next = std::min(next, r.expires);
  for (const auto& [ifindex, tracked] : tracked_)
    if (!tracked.exported) next = std::min(next, tracked.export_by);
  return next;
}

void Inventory::publish() {
  auto table = std::make_shared<LabelTable>();
  // psnic_container_info: one per container with a series, live or retired; the live one's
  // facts when both are there.
  auto owners = std::make_shared<OwnerTable>();
  std::set<std::string> described;
  auto describe = [&](const OwnerFacts& facts) {
    const std::string& id = facts.labels.container_id;
    if (!id.empty() && described.insert(id).second) owners->push_back(facts);
  };
  for (const auto& [ifindex, tracked] : tracked_) {
    if (!tracked.exported) continue;
    table->emplace(ifindex, tracked.labels);
    describe(tracked.owner);
  }
  // A retired series whose labels a live one has again (a namespace made anew with the same
  // names) would be a duplicate series: the live one wins. Of two retired alike, the newer.
  auto gone = std::make_shared<RetiredTable>();
  for (auto r = retired_.rbegin(); r != retired_.rend(); ++r) {
    auto same = [&](const InterfaceLabels& l) { return l == r->series.labels; };
    bool shadowed = std::any_of(table->begin(), table->end(),
                                [&](const auto& entry) { return same(entry.second); }) ||
                    std::any_of(gone->begin(), gone->end(),
                                [&](const RetiredSeries& s) { return same(s.labels); });
    if (shadowed) continue;
    gone->push_back(r->series);
    describe(r->owner);
  }
  if (self_) {
    const bool tcx = counters_.mode() == AttachMode::tcx;
    self_->set_attached("tcx", tcx ? static_cast<double>(table->size()) : 0);
    self_->set_attached("tc", tcx ? 0 : static_cast<double>(table->size()));
    self_->set_pending_owners(static_cast<double>(pending()));
    self_->set_received_at_peer(static_cast<double>(std::count_if(
        tracked_.begin(), tracked_.end(), [](const auto& entry) { return entry.second.at_peer; })));
  }
  labels_->publish(std::move(table));
  if (owners_) owners_->publish(std::move(owners));
  if (retired_snapshot_) retired_snapshot_->publish(std::move(gone));
}

}  // namespace psnic
