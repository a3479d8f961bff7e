#include "agent/pid_agent.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/event_loop.h"
#include "base/error.h"
#include "base/log.h"
#include "base/text.h"
#include "resolver/pid_lookup.h"

namespace psnic {
namespace {

// A PID argument's answer is psnic's line and status, not a log event: the run may end on it.
void complain(const std::string& message) { print_plain_line("psnic-agent", message); }

}  // namespace

PidAgent::PidAgent(const TrafficProgram& program, AttachMode mode,
                   std::shared_ptr<LabelSnapshot> labels, std::shared_ptr<SelfReport> self)
    : program_(program),
      mode_(mode),
      labels_(std::move(labels)),
      self_(std::move(self)),
      map_(program.map_fd()) {}

PidAgent::~PidAgent() {
  for (auto& watched : watched_) release(*watched, nullptr);
}

int PidAgent::add(const std::string& pid_argument) {
  ResolveOptions options;
  options.identity = true;
  PidLookup lookup = look_up_pid(resolver_, pid_argument, options);
  if (lookup.verdict != PidVerdict::kOk) {
    complain(lookup.message);
    return lookup.exit_status();
  }
  const NetnsReport& report = lookup.report;
  const pid_t pid = lookup.process.pid;
  auto watched = std::make_unique<Watched>();
  watched->pid = pid;
  // The pidfd the lookup opened and found alive after it: it tells when this process exits.
  watched->pidfd = std::move(lookup.process.pidfd);
  try {
    for (const InterfacePair& pair : report.interfaces) {
      if (pair.placement != Placement::host_peer) continue;
      watched->ifindexes.push_back(pair.host_ifindex);
      if (auto it = counted_.find(pair.host_ifindex); it != counted_.end()) {
        ++it->second.users;  // a namespace shared with a process already watched
        continue;
      }
      // Attach first so that counting starts at once.
      std::optional<CountedInterface> interface;
      try {
        interface = CountedInterface::attach(program_, pair.host_ifindex, pair.host_name, mode_);
      } catch (const Error&) {
        if (self_) self_->count_error(ErrorOp::kAttach);
        watched->ifindexes.pop_back();
        throw;
      }
      Counted counted{std::move(*interface), {}, pid, 1, {}};
      counted.labels.container_id = report.identity.id;
      counted.labels.interface = pair.name;
      counted.labels.host_interface = pair.host_name;
      if (std::optional<psnic_traffic> now = map_.read(pair.host_ifindex)) counted.last = *now;
      log_info(std::to_string(pid) + ": counting " + pair.name + " (" +
               (report.identity.id.empty() ? "no container id" : report.identity.id) + ") on " +
               pair.host_name + ", " + attach_mode_name(mode_));
      counted_.emplace(pair.host_ifindex, std::move(counted));
    }
    watched_.push_back(std::move(watched));
    publish_labels();
    return kExitFound;
  } catch (const Error& e) {
    release(*watched, nullptr);  // what this process's other interfaces got so far
    complain(e.what());
    return kExitTrouble;
  }
}

void PidAgent::release(Watched& watched, const char* why) {
  std::string names;
  for (uint32_t ifindex : watched.ifindexes) {
    auto it = counted_.find(ifindex);
    if (it == counted_.end() || --it->second.users > 0) continue;
    names += (names.empty() ? "" : ", ") + it->second.interface.name();
    counted_.erase(it);  // stops counting: hooks detached, counter dropped
  }
  watched.ifindexes.clear();
  if (why != nullptr)
    log_info(std::to_string(watched.pid) + ": " + why + ", released " +
             (names.empty() ? "nothing (its namespace is still watched)" : names));
}

void PidAgent::publish_labels() {
  auto table = std::make_shared<LabelTable>();
  size_t tcx = 0;
  for (const auto& [ifindex, counted] : counted_) {
    table->emplace(ifindex, counted.labels);
    if (counted.interface.mode() == AttachMode::tcx) ++tcx;
  }
  if (self_) {
    self_->set_attached("tcx", static_cast<double>(tcx));
    self_->set_attached("tc", static_cast<double>(table->size() - tcx));
  }
  labels_->publish(std::move(table));
}

void PidAgent::print_rates(std::FILE* table, double seconds) {
  if (!header_printed_) {
    std::fprintf(table, "%-8s %-16s %-16s %14s %14s %10s %10s\n", "PID", "INTERFACE",
                 "HOST_INTERFACE", "RX_BYTES/S", "TX_BYTES/S", "RX_PKTS/S", "TX_PKTS/S");
    header_printed_ = true;
  }
  for (auto& [ifindex, counted] : counted_) {
    std::optional<psnic_traffic> now;
    try {
      now = map_.read(ifindex);
    } catch (const Error&) {
      if (self_) self_->count_error(ErrorOp::kReadMap);
    }
    if (!now) continue;
    // The container's view: receive is the host peer's egress, transmit its ingress.
    auto rate = [&](uint64_t current, uint64_t last) {
      return static_cast<double>(current - last) / seconds;
    };
    std::fprintf(table, "%-8d %-16s %-16s %14.0f %14.0f %10.0f %10.0f\n", counted.pid,
                 counted.labels.interface.c_str(), counted.labels.host_interface.c_str(),
                 rate(now->egress.bytes, counted.last.egress.bytes),
                 rate(now->ingress.bytes, counted.last.ingress.bytes),
                 rate(now->egress.packets, counted.last.egress.packets),
                 rate(now->ingress.packets, counted.last.ingress.packets));
    counted.last = *now;
  }
  std::fflush(table);
}

void PidAgent::run(std::chrono::milliseconds interval, std::FILE* table, LoopHeartbeat* heartbeat,
                   const std::function<void()>& reload) {
  EventLoop loop(heartbeat);
  if (table != nullptr) loop.arm(interval, /*repeat=*/true);
  // A watched process's tag is its index in watched_.
  for (size_t i = 0; i < watched_.size(); ++i) loop.watch(watched_[i]->pidfd.get(), i);

  const double seconds = std::chrono::duration<double>(interval).count();
  size_t alive = watched_.size();
  while (alive > 0) {
    for (uint64_t tag : loop.wait()) {
      if (tag == EventLoop::kStop) {
        size_t count = attached();
        for (auto& watched : watched_) release(*watched, nullptr);
        publish_labels();
        log_info(loop.stop_signal() + ", detached " + counted(count, "interface"));
        return;
      }
      if (tag == EventLoop::kReload) {
        reload_on_hangup(reload);
        continue;
      }
      if (tag == EventLoop::kTimer) {
        print_rates(table, seconds * static_cast<double>(loop.timer_expirations()));
        continue;
      }
      Watched& watched = *watched_[tag];
      loop.unwatch(watched.pidfd.get());
      release(watched, "exited");
      publish_labels();
      --alive;
    }
  }
  log_info("no process left to watch");
}

}  // namespace psnic
