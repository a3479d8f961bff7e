#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "kernel/pins.h"
#include "kernel/program.h"

namespace psnic {

// How the program pair is hooked to an interface.
enum class AttachMode {
  tcx,  // TCX links (kernel >= 6.6), at the head of each chain
  tc,   // clsact qdisc + cls_bpf filters with psnic's own handle and priority
};

const char* attach_mode_name(AttachMode mode);
// "tcx", "tc"; "auto" gives nullopt, anything else throws Error.
std::optional<AttachMode> parse_attach_mode(std::string_view text);

// TCX when the kernel has it, else tc. Probes without touching any interface.
AttachMode probe_attach_mode(const TrafficProgram& program);

// psnic's cls_bpf filters in tc mode, at priority 1 on both hooks: handle 0x5053 ("PS") for a
// pinned agent's, which outlive it, and 0x5054 for an ephemeral one's (--pid, --no-pin), so that
// the two kinds never take each other's place on one interface.
inline constexpr uint32_t kTcHandle = 0x5053;
inline constexpr uint32_t kTcEphemeralHandle = 0x5054;
inline constexpr uint32_t kTcPriority = 1;

// The program pair on one host interface, detached (only what psnic attached) on destruction.
// Move-only.
class Attachment {
 public:
  // Attaches ingress then egress; on failure nothing stays attached. With `pins`, TCX links are
  // pinned there and outlive the agent. Throws Error naming the interface.
  static Attachment attach(const TrafficProgram& program, uint32_t ifindex, const std::string& name,
                           AttachMode mode, const PinDir* pins = nullptr);
  // Takes over the pair an earlier pinned agent left on the interface in this mode: both TCX
  // links pinned in `pins` and still attached there, or both tc filters at psnic's handle running
  // programs that write `program`'s map. Those have counted all along, so the counter continues.
  // A pair running other code than `program`'s is switched to it in place. nullopt when there
  // is no such pair.
  static std::optional<Attachment> adopt(const TrafficProgram& program, uint32_t ifindex,
                                         const std::string& name, AttachMode mode,
                                         const PinDir& pins);

  Attachment(Attachment&& other) noexcept;
  Attachment& operator=(Attachment&& other) noexcept;
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;
  ~Attachment();

  uint32_t ifindex() const { return ifindex_; }
  const std::string& name() const { return name_; }
  AttachMode mode() const { return mode_; }
  // Detaches now (and removes TCX link pins); further calls do nothing.
  void detach();
  // Leaves the programs attached (and pinned) for the next agent to adopt; further calls do
  // nothing.
  void release();
  // Whether psnic's programs are still in place on both hooks: another tool may have detached
  // a TCX link or deleted a filter.
  bool intact() const;

 private:
  Attachment() = default;

  uint32_t ifindex_ = 0;
  std::string name_;
  AttachMode mode_ = AttachMode::tcx;
  bool attached_ = false;
  const PinDir* pins_ = nullptr;  // where the TCX links are pinned, if they are
  uint32_t tc_handle_ = kTcEphemeralHandle;
  // tcx: the links; closing a TCX link fd detaches it.
  Fd ingress_link_;
  Fd egress_link_;
  // The programs' ids: in tc mode detaching removes a filter only while it still runs psnic's;
  // in both modes intact() looks for them.
  uint32_t ingress_prog_id_ = 0;
  uint32_t egress_prog_id_ = 0;
};

// Removes what an earlier pinned agent left on one interface that cannot be adopted (half a
// pair, a pair of the other mode): its link pins and its tc filters (those running a program
// that writes `program`'s map). Another tool's and another psnic's programs stay.
void remove_remnants(const TrafficProgram& program, uint32_t ifindex, const PinDir& pins);

// Removes the tc filters at a pinned agent's handle whose program writes map `map_id`; returns
// how many.
size_t remove_tc_filters_of_map(uint32_t ifindex, uint32_t map_id);

// Attaches or detaches many interfaces. One after another: the kernel serialises TCX attach and
// detach under the RTNL lock, each waiting for an RCU grace period (~12 ms per link on this
// project's test kernel), so threads were measured to gain nothing. Failures come back as Errors
// in place of attachments; nothing is thrown.
struct AttachRequest {
  uint32_t ifindex = 0;
  std::string name;
};
struct AttachResult {
  std::optional<Attachment> attachment;
  std::optional<Error> error;
};
std::vector<AttachResult> attach_all(const TrafficProgram& program,
                                     const std::vector<AttachRequest>& requests, AttachMode mode,
                                     const PinDir* pins = nullptr);
void detach_all(std::vector<Attachment*>& attachments);

}  // namespace psnic
