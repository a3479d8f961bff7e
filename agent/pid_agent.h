#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/views.h"
#include "kernel/attach.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"
#include "resolver/resolver.h"

namespace psnic {

// `psnic-agent --pid`: counts the traffic of the host peers of given processes until it is
// stopped or every process has exited. Owns all mutable state; one thread.
class PidAgent {
 public:
  // `self` may be nullptr.
  PidAgent(const TrafficProgram& program, AttachMode mode, std::shared_ptr<LabelSnapshot> labels,
           std::shared_ptr<SelfReport> self);
  PidAgent(const PidAgent&) = delete;
  PidAgent& operator=(const PidAgent&) = delete;
  ~PidAgent();

  // Resolves a PID argument and attaches to its host peers. Problems go to stderr, one line
  // each, as psnic words them; returns psnic's status for it (0 attached, 1 no host peer, 2 bad
  // argument or error).
  int add(const std::string& pid_argument);

  size_t watched() const { return watched_.size(); }
  size_t attached() const { return counted_.size(); }

  // Runs until SIGINT/SIGTERM (which the caller has blocked) or until no process is left,
  // printing a rate table to `table` every `interval` unless it is null. Detaches everything
  // before returning. `heartbeat`, when given, is beaten at every turn of the loop; `reload`,
  // when given, is called at each SIGHUP.
  void run(std::chrono::milliseconds interval, std::FILE* table, LoopHeartbeat* heartbeat = nullptr,
           const std::function<void()>& reload = {});

 private:
  // One host interface, attached once however many watched processes share its namespace.
  struct Counted {
    CountedInterface interface;
    InterfaceLabels labels;  // from the first process that brought it
    pid_t pid = 0;           // that process, for the rate table
    size_t users = 0;        // watched processes whose namespace it serves
    psnic_traffic last{};    // for the rate table
  };
  struct Watched {
    pid_t pid = 0;
    Fd pidfd;
    std::vector<uint32_t> ifindexes;  // keys of counted_
  };

  void release(Watched& watched, const char* why);
  void publish_labels();
  void print_rates(std::FILE* table, double seconds);

  const TrafficProgram& program_;
  AttachMode mode_;
  std::shared_ptr<LabelSnapshot> labels_;
  std::shared_ptr<SelfReport> self_;
  TrafficMap map_;
  Resolver resolver_;
  std::vector<std::unique_ptr<Watched>> watched_;
  std::map<uint32_t, Counted> counted_;  // by host ifindex
  bool header_printed_ = false;
};

}  // namespace psnic
