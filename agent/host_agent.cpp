#include "agent/host_agent.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "agent/event_loop.h"
#include "base/error.h"

namespace psnic {
namespace {

void log_line(const std::string& message) {
  std::fprintf(stderr, "psnic-agent: %s\n", message.c_str());
}

constexpr std::chrono::milliseconds kFirstIdentifyDelay{20};
constexpr std::chrono::milliseconds kMaxIdentifyBackoff{5000};

double seconds_since(HostAgent::Clock::time_point start) {
  return std::chrono::duration<double>(HostAgent::Clock::now() - start).count();
}

bool same_labels(const InterfaceLabels& a, const InterfaceLabels& b) {
  return a.container_id == b.container_id && a.container_name == b.container_name &&
         a.pod == b.pod && a.namespace_name == b.namespace_name && a.interface == b.interface &&
         a.host_interface == b.host_interface;
}

}  // namespace

bool is_host_peer_candidate(const Link& link) {
  return (link.kind == "veth" || link.kind == "netkit") && link.link_netnsid &&
         *link.link_netnsid >= 0;
}

HostAgent::HostAgent(const TrafficProgram& program, HostAgentOptions options,
                     std::shared_ptr<LabelSnapshot> labels,
                     std::shared_ptr<RetiredSnapshot> retired, std::shared_ptr<SelfReport> self,
                     DescribeOwner describe)
    : program_(program),
      options_(options),
      labels_(std::move(labels)),
      retired_snapshot_(std::move(retired)),
      self_(std::move(self)),
      describe_(std::move(describe)),
      map_(program.map_fd()) {
  if (options_.pins != nullptr) label_store_.emplace(LabelStore::open(*options_.pins));
}

HostAgent::~HostAgent() {
  if (options_.pins != nullptr) {
    for (auto& [ifindex, tracked] : tracked_) tracked.attachment.release();
  } else {
    std::vector<Attachment*> all;
    for (auto& [ifindex, tracked] : tracked_) all.push_back(&tracked.attachment);
    detach_all(all);
    for (const auto& [ifindex, tracked] : tracked_) program_.untrack(ifindex);
  }
  tracked_.clear();
  publish();
}

size_t HostAgent::pending() const {
  return static_cast<size_t>(std::count_if(tracked_.begin(), tracked_.end(),
                                           [](const auto& t) { return !t.second.identified; }));
}

bool HostAgent::adopt_result(const AttachRequest& request, AttachResult result) {
  if (!result.attachment) {
    // A link deleted before psnic got to it is an ordinary race (a container that lived for
    // milliseconds), not a failure.
    if (result.error && result.error->errnum() == ENODEV) return false;
    if (self_) self_->count_error(ErrorOp::kAttach);
    log_line(result.error ? result.error->what() : request.name + ": attach failed");
    return false;
  }
  track(request, std::move(*result.attachment));
  log_line("attached " + request.name + " (" + attach_mode_name(options_.mode) + ")");
  return true;
}

void HostAgent::track(const AttachRequest& request, Attachment attachment) {
  Tracked tracked{std::move(attachment), {}, false};
  tracked.labels.host_interface = request.name;
  tracked_.insert_or_assign(request.ifindex, std::move(tracked));
  if (next_identify_ == Clock::time_point{}) {
    identify_backoff_ = kFirstIdentifyDelay;
    next_identify_ = Clock::now() + identify_backoff_;
  }
}

std::vector<AttachRequest> HostAgent::adopt_pinned(const std::vector<AttachRequest>& candidates) {
  const PinDir& pins = *options_.pins;
  const Clock::time_point now = Clock::now();
  std::vector<AttachRequest> fresh;
  for (const AttachRequest& request : candidates) {
    std::optional<Attachment> adopted;
    try {
      adopted = Attachment::adopt(program_, request.ifindex, request.name, options_.mode, pins);
    } catch (const Error& e) {
      if (self_) self_->count_error(ErrorOp::kAttach);
      log_line(e.what());
    }
    if (adopted) {
      program_.track(request.ifindex);  // present already, unless someone deleted it
      track(request, std::move(*adopted));
      // Its series keeps its labels until its owner is looked up again.
      std::optional<InterfaceLabels> stored = label_store_->get(request.ifindex);
      if (stored && stored->host_interface == request.name)
        tracked_.at(request.ifindex).labels = std::move(*stored);
      log_line("adopted " + request.name + " (" + attach_mode_name(options_.mode) + ")");
      continue;
    }
    // Half a pair, the other mode's pair, or none: what is there goes, and a counter left
    // there (an earlier interface's with the same ifindex, say) is retired.
    remove_remnants(program_, request.ifindex, pins);
    retire_left_behind(request.ifindex, now);
    fresh.push_back(request);
  }
  size_t gone = 0;
  // Pins of links whose interface went (the kernel detached them), and counters without an
  // interface: their final values are exported for the grace period.
  for (uint32_t ifindex : pins.pinned_ifindexes())
    if (!tracked_.count(ifindex)) {
      pins.unpin_link(ifindex, true);
      pins.unpin_link(ifindex, false);
    }
  for (uint32_t ifindex : program_.tracked())
    if (!tracked_.count(ifindex)) {
      retire_left_behind(ifindex, now);
      ++gone;
    }
  log_line("adopted " + std::to_string(tracked_.size()) + " counting interface" +
           (tracked_.size() == 1 ? "" : "s") + " from " + pins.path() + "; " +
           std::to_string(fresh.size()) + " to attach; " + std::to_string(gone) +
           " gone while no agent ran");
  return fresh;
}

void HostAgent::retire(uint32_t ifindex, Clock::time_point now) {
  auto it = tracked_.find(ifindex);
  if (it == tracked_.end()) return;
  Tracked& tracked = it->second;
  // The last values are read before the map entry goes, and exported for the grace period.
  std::optional<psnic_traffic> final;
  try {
    final = map_.read(ifindex);
  } catch (const Error&) {
    if (self_) self_->count_error(ErrorOp::kReadMap);
  }
  tracked.attachment.detach();
  program_.untrack(ifindex);
  if (label_store_) label_store_->erase(ifindex);
  if (final) retired_.push_back({{tracked.labels, *final}, now + options_.retire_after});
  log_line("detached " + tracked.labels.host_interface + " (gone" +
           (tracked.labels.container_id.empty() ? "" : ", " + tracked.labels.container_id) + ")");
  tracked_.erase(it);
}

void HostAgent::name_owner(const NetnsReport& owner, const InterfacePair& pair) {
  auto it = tracked_.find(pair.host_ifindex);
  if (it == tracked_.end()) return;
  InterfaceLabels labels;
  labels.container_id = owner.identity.id;
  labels.interface = pair.name;
  labels.host_interface = pair.host_name;
  // A namespace made with `ip netns add NAME` is named NAME.
  labels.container_name = owner.netns_name;
  if (describe_) {
    try {
      describe_(owner, labels);
    } catch (const std::exception& e) {
      if (self_) self_->count_error(ErrorOp::kDescribe);
      log_line(pair.host_name + ": describing its owner " +
               (owner.identity.id.empty() ? owner.netns_name : owner.identity.id) +
               " failed: " + e.what());
    }
  }
  Tracked& tracked = it->second;
  if (!tracked.identified || !same_labels(tracked.labels, labels)) {
    log_line(pair.host_name + " is " + pair.name + " of " +
             (labels.container_name.empty() ? "" : labels.container_name + " ") +
             (labels.container_id.empty() ? "(no container id)" : labels.container_id));
  }
  if (label_store_ && !same_labels(tracked.labels, labels))
    label_store_->put(pair.host_ifindex, labels);
  tracked.labels = std::move(labels);
  tracked.identified = true;
}

void HostAgent::retire_left_behind(uint32_t ifindex, Clock::time_point now) {
  std::optional<psnic_traffic> final;
  try {
    final = map_.read(ifindex);
  } catch (const Error&) {
    if (self_) self_->count_error(ErrorOp::kReadMap);
  }
  std::optional<InterfaceLabels> labels = label_store_ ? label_store_->get(ifindex) : std::nullopt;
  if (final && labels && !labels->host_interface.empty()) {
    retired_.push_back({{*labels, *final}, now + options_.retire_after});
    log_line("retired " + labels->host_interface + " (gone while no agent ran" +
             (labels->container_id.empty() ? "" : ", " + labels->container_id) + ")");
  }
  program_.untrack(ifindex);
  if (label_store_) label_store_->erase(ifindex);
}

void HostAgent::attach_backlog(Clock::time_point until) {
  // A few at a time, so that a slice ends close to `until` even at 25 ms per TCX interface.
  constexpr size_t kChunk = 4;
  bool attached = false;
  while (!backlog_.empty() && Clock::now() < until) {
    const size_t n = std::min(kChunk, backlog_.size());
    std::vector<AttachRequest> chunk(backlog_.begin(), backlog_.begin() + static_cast<long>(n));
    backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<long>(n));
    std::vector<AttachResult> results = attach_all(program_, chunk, options_.mode, options_.pins);
    for (size_t i = 0; i < chunk.size(); ++i)
      attached |= adopt_result(chunk[i], std::move(results[i]));
  }
  if (!attached) return;
  if (backlog_.empty()) {
    // All attached: name their owners now rather than at the end of a long backoff.
    identify_backoff_ = kFirstIdentifyDelay;
    next_identify_ = Clock::now();
  }
  publish();
}

void HostAgent::reconcile(std::chrono::milliseconds budget) {
  Clock::time_point start = Clock::now();
  try {
    ResolveOptions options;
    options.identity = true;
    options.host_network_containers = true;
    BatchReport batch = resolver_.resolve_all(options);
    if (self_)
      self_->set_host_network_containers(static_cast<double>(batch.host_network_containers));
    std::set<uint32_t> live;
    std::vector<AttachRequest> missing;
    for (const Link& link : batch.host_links)
      if (is_host_peer_candidate(link)) {
        live.insert(link.ifindex);
        auto it = tracked_.find(link.ifindex);
        if (it == tracked_.end()) {
          missing.push_back({link.ifindex, link.name});
        } else if (!it->second.attachment.intact()) {
          // Another tool removed psnic's program: put it back, counters continue in the map.
          log_line(link.name + ": psnic's program was removed; attaching again");
          InterfaceLabels labels = it->second.labels;
          bool identified = it->second.identified;
          it->second.attachment.detach();
          try {
            it->second.attachment =
                Attachment::attach(program_, link.ifindex, link.name, options_.mode, options_.pins);
          } catch (const Error& e) {
            if (self_) self_->count_error(ErrorOp::kAttach);
            log_line(e.what());
          }
          it->second.labels = labels;
          it->second.identified = identified;
        }
      }
    if (first_pass_ && options_.pins != nullptr) missing = adopt_pinned(missing);
    first_pass_ = false;
    // This pass's view replaces the backlog's: a link gone since is not attached.
    backlog_ = std::move(missing);
    if (backlog_.size() > 100 && budget != std::chrono::milliseconds::max())
      log_line("attaching " + std::to_string(backlog_.size()) + " interfaces (" +
               attach_mode_name(options_.mode) + ")");
    attach_backlog(budget == std::chrono::milliseconds::max() ? Clock::time_point::max()
                                                              : start + budget);

    // Links that vanished without a notification reaching psnic (an overrun socket).
    std::vector<uint32_t> gone;
    for (const auto& [ifindex, tracked] : tracked_)
      if (!live.count(ifindex)) gone.push_back(ifindex);
    for (uint32_t ifindex : gone) retire(ifindex, start);

    for (const NetnsReport& owner : batch.namespaces)
      for (const InterfacePair& pair : owner.interfaces)
        if (pair.placement == Placement::host_peer) name_owner(owner, pair);
  } catch (const Error& e) {
    if (self_) self_->count_error(ErrorOp::kReconcile);
    log_line("reconcile: " + std::string(e.what()));
  }
  publish();
  next_reconcile_ = Clock::now() + options_.reconcile_interval;
  if (self_) self_->observe_reconcile(seconds_since(start));
}

void HostAgent::handle(const LinkEvent& event, Clock::time_point seen) {
  handle_all({event}, seen);
}

void HostAgent::handle_all(const std::vector<LinkEvent>& events, Clock::time_point seen) {
  // New host peers are attached once the whole batch is read: a link added and deleted within
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
      if (label_store_) label_store_->put(link.ifindex, it->second.labels);
      changed = true;
    }
  }
  if (!fresh.empty()) {
    std::vector<AttachResult> results = attach_all(program_, fresh, options_.mode, options_.pins);
    for (size_t i = 0; i < fresh.size(); ++i)
      if (adopt_result(fresh[i], std::move(results[i])) && self_)
        self_->observe_attach_latency(seconds_since(seen));
    changed = true;
  }
  if (changed) publish();
}

void HostAgent::identify_pending() {
  if (pending() == 0) {
    next_identify_ = {};
    return;
  }
  try {
    ResolveOptions options;
    options.identity = true;
    for (const NetnsReport& owner : resolver_.resolve_all(options).namespaces)
      for (const InterfacePair& pair : owner.interfaces)
        if (pair.placement == Placement::host_peer) {
          auto it = tracked_.find(pair.host_ifindex);
          if (it != tracked_.end() && !it->second.identified) name_owner(owner, pair);
        }
  } catch (const Error& e) {
    if (self_) self_->count_error(ErrorOp::kIdentify);
    log_line("identify: " + std::string(e.what()));
  }
  publish();
  // Retry with backoff until a process shows up in every pending namespace.
  if (pending() == 0) {
    next_identify_ = {};
  } else {
    identify_backoff_ = std::min(identify_backoff_ * 2, kMaxIdentifyBackoff);
    next_identify_ = Clock::now() + identify_backoff_;
  }
}

void HostAgent::expire_retired(Clock::time_point now) {
  auto end = std::remove_if(retired_.begin(), retired_.end(),
                            [&](const Retired& r) { return r.expires <= now; });
  if (end == retired_.end()) return;
  retired_.erase(end, retired_.end());
  publish();
}

void HostAgent::publish() {
  auto table = std::make_shared<LabelTable>();
  size_t tcx = 0;
  for (const auto& [ifindex, tracked] : tracked_) {
    table->emplace(ifindex, tracked.labels);
    if (tracked.attachment.mode() == AttachMode::tcx) ++tcx;
  }
  // A retired series whose labels a live one has again (a namespace made anew with the same
  // names) would be a duplicate series: the live one wins. Of two retired alike, the newer.
  auto gone = std::make_shared<RetiredTable>();
  for (auto r = retired_.rbegin(); r != retired_.rend(); ++r) {
    auto same = [&](const InterfaceLabels& l) { return same_labels(l, r->series.labels); };
    bool shadowed = std::any_of(table->begin(), table->end(),
                                [&](const auto& entry) { return same(entry.second); }) ||
                    std::any_of(gone->begin(), gone->end(),
                                [&](const RetiredSeries& s) { return same(s.labels); });
    if (!shadowed) gone->push_back(r->series);
  }
  if (self_) {
    self_->set_attached("tcx", static_cast<double>(tcx));
    self_->set_attached("tc", static_cast<double>(table->size() - tcx));
    self_->set_pending_owners(static_cast<double>(pending()));
  }
  labels_->publish(std::move(table));
  if (retired_snapshot_) retired_snapshot_->publish(std::move(gone));
}

void HostAgent::owners_changed(const std::vector<std::string>& container_ids) {
  if (container_ids.empty()) return;
  for (auto& [ifindex, tracked] : tracked_)
    if (std::find(container_ids.begin(), container_ids.end(), tracked.labels.container_id) !=
        container_ids.end())
      tracked.identified = false;
  // A started container's veth may still be waiting for its first process to be named.
  if (pending() > 0) {
    identify_backoff_ = kFirstIdentifyDelay;
    next_identify_ = Clock::now();
  }
}

HostAgent::Clock::time_point HostAgent::next_deadline() const {
  if (!backlog_.empty()) return Clock::now();
  Clock::time_point next = next_reconcile_;
  if (next_identify_ != Clock::time_point{}) next = std::min(next, next_identify_);
  if (next_owner_connect_ != Clock::time_point{}) next = std::min(next, next_owner_connect_);
  for (const Retired& r : retired_) next = std::min(next, r.expires);
  return next;
}

void HostAgent::run(OwnerEvents* owners) {
  EventLoop loop(options_.heartbeat);
  constexpr uint64_t kLinks = 0;
  constexpr uint64_t kOwners = 1;
  // Subscribing again after the runtime's stream ended: soon, then backing off to a minute while
  // it fails (a hung daemon costs the loop up to 2 s per try).
  constexpr std::chrono::seconds kOwnerRetry{5};
  constexpr std::chrono::seconds kMaxOwnerRetry{60};
  std::chrono::seconds owner_retry = kOwnerRetry;
  // The longest the loop attaches from the backlog before it looks at its other sources again.
  constexpr std::chrono::milliseconds kSlice{100};
  // Subscribe before the first full pass, so that nothing added meanwhile is missed.
  LinkEvents events = LinkEvents::open();
  loop.watch(events.fd(), kLinks);
  bool owners_connected = false;
  auto connect_owners = [&] {
    owners_connected = owners->connect();
    if (owners_connected) {
      loop.watch(owners->fd(), kOwners);
      next_owner_connect_ = {};
      owner_retry = kOwnerRetry;
      log_line("following " + owners->name());
    } else {
      next_owner_connect_ = Clock::now() + owner_retry;
      owner_retry = std::min(owner_retry * 2, kMaxOwnerRetry);
    }
    return owners_connected;
  };
  if (owners) connect_owners();
  reconcile(kSlice);

  for (;;) {
    // One timer for whichever comes first: reconcile, identification, a retirement.
    loop.arm(next_deadline() - Clock::now(), /*repeat=*/false);
    for (uint64_t tag : loop.wait()) {
      if (tag == EventLoop::kStop) {
        size_t count = tracked_.size();
        std::string interfaces = std::to_string(count) + " interface" + (count == 1 ? "" : "s");
        if (options_.pins != nullptr)
          log_line(loop.stop_signal() + ", leaving " + interfaces + " counting, pinned in " +
                   options_.pins->path() +
                   " for the next agent (psnic-agent --cleanup removes it)");
        else
          log_line(loop.stop_signal() + ", detaching " + interfaces);
        return;
      }
      if (tag == kLinks) {
        Clock::time_point seen = Clock::now();
        bool overrun = false;
        handle_all(events.drain(overrun), seen);
        if (overrun) {
          log_line("link notifications overran; reconciling");
          reconcile(kSlice);
        }
        continue;
      }
      if (tag == kOwners) {
        bool closed = false;
        std::vector<std::string> changed;
        try {
          changed = owners->drain(closed);
        } catch (const Error& e) {
          if (self_) self_->count_error(ErrorOp::kDescribe);
          log_line(e.what());
          closed = true;
        }
        owners_changed(changed);
        if (closed) {
          log_line(owners->name() + " ended; subscribing again in " +
                   std::to_string(owner_retry.count()) + " s");
          loop.unwatch(owners->fd());
          owners_connected = false;
          next_owner_connect_ = Clock::now() + owner_retry;
        }
        if (next_identify_ != Clock::time_point{} && next_identify_ <= Clock::now())
          identify_pending();
        continue;
      }
      Clock::time_point now = Clock::now();
      // Renames missed while the stream was down are caught by the next reconcile.
      if (owners && !owners_connected && now >= next_owner_connect_) connect_owners();
      if (now >= next_reconcile_) reconcile(kSlice);
      if (!backlog_.empty()) attach_backlog(Clock::now() + kSlice);
      if (next_identify_ != Clock::time_point{} && now >= next_identify_) identify_pending();
      expire_retired(now);
    }
  }
}

}  // namespace psnic
