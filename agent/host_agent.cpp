#include "agent/host_agent.h"

#include <algorithm>

#include "agent/event_loop.h"
#include "base/error.h"
#include "base/log.h"
#include "base/text.h"

namespace psnic {
namespace {

// Only TCX waits for grace periods while attaching and detaching: a tc filter is freed after one
// (call_rcu()), not waiting for it, so expedited ones would cost the host for nothing.
HostAgentOptions expedited_in_tcx_only(HostAgentOptions options) {
  if (options.mode != AttachMode::tcx) options.expedite = nullptr;
  return options;
}

}  // namespace

HostAgent::HostAgent(const TrafficProgram& program, HostAgentOptions options,
                     std::shared_ptr<LabelSnapshot> labels,
                     std::shared_ptr<RetiredSnapshot> retired, std::shared_ptr<SelfReport> self,
                     OwnerSource* owners, OwnerEvents* events, std::shared_ptr<OwnerSnapshot> facts)
    : options_(expedited_in_tcx_only(std::move(options))),
      self_(self),
      events_(events),
      counters_(program, options_.mode, options_.pins),
      worker_(owners || events ? std::make_optional<RuntimeWorker>(owners, events) : std::nullopt),
      inventory_(
          counters_,
          [this](const ResolveOptions& resolve) { return resolver_.resolve_all(resolve); },
          Inventory::Options{options_.reconcile_interval, options_.retire_after, options_.name_wait,
                             options_.expedite, options_.receive_at_peer},
          std::move(labels), std::move(retired), std::move(self),
          owners
              ? AskOwner([this](OwnerRequest request) { return worker_->ask(std::move(request)); })
              : AskOwner(),
          Clock::now, std::move(facts)) {}

HostAgent::~HostAgent() {
  // An ephemeral agent's links go with it, two grace periods each under the RTNL lock: 1000
  // interfaces take 25-35 s unexpedited. Detached here, while the knob is held, rather than by
  // the counters' destructor after it.
  if (options_.pins != nullptr || options_.expedite == nullptr ||
      inventory_.attached() <= kExpediteAbove)
    return;
  options_.expedite->begin();
  counters_.stop_all();
  options_.expedite->end();
}

void HostAgent::run() {
  EventLoop loop(options_.heartbeat);
  constexpr uint64_t kLinks = 0;
  constexpr uint64_t kOwners = 1;
  constexpr uint64_t kAnswers = 2;
  OwnerEvents* owners = events_;
  // Subscribing again after the runtime's stream ended: soon, then backing off to a minute while
  // it fails (a hung daemon costs the worker up to 2 s per try).
  constexpr std::chrono::seconds kOwnerRetry{5};
  constexpr std::chrono::seconds kMaxOwnerRetry{60};
  std::chrono::seconds owner_retry = kOwnerRetry;
  Clock::time_point next_owner_connect{};  // while the runtime's stream is down
  // The longest the loop counts from the backlog before it looks at its other sources again.
  constexpr std::chrono::milliseconds kSlice{100};
  // Subscribe before the first full pass, so that nothing added meanwhile is missed.
  LinkEvents events = LinkEvents::open();
  loop.watch(events.fd(), kLinks);
  if (worker_) loop.watch(worker_->fd(), kAnswers);
  // The subscription is made on the worker's thread; meanwhile `owners` is the worker's.
  bool owners_connected = false;
  bool subscribing = false;
  auto connect_owners = [&] {
    worker_->subscribe();
    subscribing = true;
    next_owner_connect = {};
  };
  auto connected_owners = [&](bool connected) {
    subscribing = false;
    owners_connected = connected;
    if (owners_connected) {
      loop.watch(owners->fd(), kOwners);
      owner_retry = kOwnerRetry;
      // Which runtimes are followed is the source's to log, once per runtime.
      log_debug("subscribed to " + owners->name());
    } else {
      next_owner_connect = Clock::now() + owner_retry;
      owner_retry = std::min(owner_retry * 2, kMaxOwnerRetry);
    }
  };
  if (owners) connect_owners();
  inventory_.reconcile(kSlice);

  for (;;) {
    // One timer for whichever comes first: reconcile, identification, a retirement, a retry.
    Clock::time_point next = inventory_.next_deadline();
    if (next_owner_connect != Clock::time_point{}) next = std::min(next, next_owner_connect);
    loop.arm(next - Clock::now(), /*repeat=*/false);
    for (uint64_t tag : loop.wait()) {
      if (tag == EventLoop::kStop) {
        const size_t count = inventory_.attached();
        const std::string interfaces = counted(count, "interface");
        if (options_.pins != nullptr)
          log_info(loop.stop_signal() + ", leaving " + interfaces + " counting, pinned in " +
                   options_.pins->path() +
                   " for the next agent (psnic-agent --cleanup removes it)");
        else
          log_info(loop.stop_signal() + ", detaching " + interfaces);
        return;
      }
      if (tag == EventLoop::kReload) {
        reload_on_hangup(options_.reload);
        continue;
      }
      if (tag == kLinks) {
        const Clock::time_point seen = Clock::now();
        bool overrun = false;
        inventory_.handle_all(events.drain(overrun), seen);
        if (overrun) {
          log_warn("link notifications overran; reconciling");
          inventory_.reconcile(kSlice);
        }
        continue;
      }
      if (tag == kAnswers) {
        RuntimeWorker::Results results = worker_->take();
        inventory_.owners_described(results.answers);
        if (results.subscribed) connected_owners(*results.subscribed);
        continue;
      }
      if (tag == kOwners) {
        bool closed = false;
        std::vector<std::string> changed;
        try {
          changed = owners->drain(closed);
        } catch (const Error& e) {
          if (self_) self_->count_error(ErrorOp::kDescribe);
          log_warn(e.what());
          closed = true;
        }
        inventory_.owners_changed(changed);
        if (closed) {
          log_debug(owners->name() + ": subscribing again in " +
                    std::to_string(owner_retry.count()) + " s");
          loop.unwatch(owners->fd());
          owners_connected = false;
          next_owner_connect = Clock::now() + owner_retry;
        }
        if (inventory_.identify_due(Clock::now())) inventory_.identify_pending();
        continue;
      }
      const Clock::time_point now = Clock::now();
      // Renames missed while the stream was down are caught by the next reconcile.
      if (owners && !owners_connected && !subscribing && now >= next_owner_connect)
        connect_owners();
      if (inventory_.reconcile_due(now)) inventory_.reconcile(kSlice);
      if (inventory_.backlog() > 0 || inventory_.peers_waiting() > 0)
        inventory_.attach_backlog(Clock::now() + kSlice);
      if (inventory_.identify_due(now)) inventory_.identify_pending();
      inventory_.export_overdue(now);
      inventory_.expire_retired(now);
    }
  }
}

}  // namespace psnic
