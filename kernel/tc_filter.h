#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "kernel/program.h"

namespace psnic {

// psnic's cls_bpf filters in tc mode, at priority 1 on both hooks: handle 0x5053 ("PS") for a
// pinned agent's, which outlive it, and 0x5054 for an ephemeral one's (--pid, --no-pin), so that
// the two kinds never take each other's place on one interface.
inline constexpr uint32_t kTcHandle = 0x5053;
inline constexpr uint32_t kTcEphemeralHandle = 0x5054;
inline constexpr uint32_t kTcPriority = 1;

// psnic's program pair on one interface as two cls_bpf filters on its clsact qdisc (which psnic
// creates when missing and never deletes: another tool may have added filters to it since).
// Filters outlive the process that made them, so a pinned agent's need no pin. Removes the
// filters on destruction, each only while it still runs psnic's program. Move-only.
class TcFilters {
 public:
  // Attaches ingress then egress at the pinned or the ephemeral handle; on failure nothing
  // stays. A filter at that handle running a program of psnic's name (an earlier psnic's) is
  // replaced; anything else there is refused (EEXIST). Throws Error naming the interface.
  static TcFilters attach(const TrafficProgram& program, uint32_t ifindex, const std::string& name,
                          bool pinned);
  // Both filters an earlier pinned agent left, running programs that write `program`'s map; an
  // older psnic's code is replaced in place (cls_bpf swaps atomically). nullopt when either is
  // missing. Throws Error when replacing fails.
  static std::optional<TcFilters> adopt(const TrafficProgram& program, uint32_t ifindex,
                                        const std::string& name);

  TcFilters(TcFilters&& other) noexcept;
  TcFilters& operator=(TcFilters&& other) noexcept;
  TcFilters(const TcFilters&) = delete;
  TcFilters& operator=(const TcFilters&) = delete;
  ~TcFilters() { detach(); }

  // Whether both filters are still there, running psnic's programs.
  bool intact() const;
  // Removes both filters now; further calls do nothing.
  void detach();
  // Leaves both filters for the next agent; further calls do nothing.
  void release();

 private:
  TcFilters(uint32_t ifindex, uint32_t handle) : ifindex_(ifindex), handle_(handle) {}

  uint32_t ifindex_ = 0;
  uint32_t handle_ = kTcEphemeralHandle;
  bool attached_ = false;
  // The programs' ids: a filter is removed only while it still runs psnic's.
  uint32_t ingress_prog_ = 0;
  uint32_t egress_prog_ = 0;
};

// Removes the filters at a pinned agent's handle whose program writes map `map_id`; returns how
// many.
size_t remove_tc_filters_of_map(uint32_t ifindex, uint32_t map_id);

}  // namespace psnic
