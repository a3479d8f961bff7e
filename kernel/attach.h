#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/error.h"
#include "kernel/pins.h"
#include "kernel/program.h"
#include "kernel/tc_filter.h"
#include "kernel/tcx.h"

namespace psnic {

class PeerEntries;

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

// The program pair on one host interface, in either mode: TcxLinks or TcFilters, each knowing
// how to attach, adopt, check, detach and leave itself; callers never branch on the mode.
// Detached (only what psnic attached) on destruction. Move-only.
class Attachment {
 public:
  // Attaches ingress then egress; on failure nothing stays attached. With `pins`, TCX links are
  // pinned there and tc filters take the pinned agent's handle: both outlive the agent. Throws
  // Error naming the interface.
  static Attachment attach(const TrafficProgram& program, uint32_t ifindex, const std::string& name,
                           AttachMode mode, const PinDir* pins = nullptr);
  // Takes over the pair an earlier pinned agent left on the interface in this mode: both TCX
  // links pinned in `pins` and still attached there, or both tc filters at psnic's handle running
  // programs that write one of `program`'s maps. Those have counted all along, so the counter
  // continues, unless the pair is the other --split setting's: its counter was emptied at load,
  // and starts anew. A pair running other code than `program`'s is switched to it in place.
  // nullopt when there is no such pair.
  static std::optional<Attachment> adopt(const TrafficProgram& program, uint32_t ifindex,
                                         const std::string& name, AttachMode mode,
                                         const PinDir& pins);

  uint32_t ifindex() const { return ifindex_; }
  const std::string& name() const { return name_; }
  AttachMode mode() const { return hooks_.index() == 0 ? AttachMode::tcx : AttachMode::tc; }
  // Detaches now (and removes TCX link pins); further calls do nothing.
  void detach();
  // Leaves the programs attached (and pinned) for the next agent to adopt; further calls do
  // nothing.
  void release();
  // Whether psnic's programs are still in place on both hooks: another tool may have detached
  // a TCX link or deleted a filter.
  bool intact() const;

 private:
  using Hooks = std::variant<TcxLinks, TcFilters>;
  Attachment(uint32_t ifindex, std::string name, Hooks hooks)
      : ifindex_(ifindex), name_(std::move(name)), hooks_(std::move(hooks)) {}

  uint32_t ifindex_;
  std::string name_;
  Hooks hooks_;
};

// Removes what an earlier pinned agent left on one interface that cannot be adopted (half a
// pair, a pair of the other mode): its link pins (the peer's included, with its map entries) and
// its tc filters (those running a program that writes either of `program`'s maps). Another
// tool's and another psnic's programs stay. `peers`: the peers map read beforehand, for many
// interfaces (PeerLink::remove_remnants); null: read here.
void remove_remnants(const TrafficProgram& program, uint32_t ifindex, const PinDir& pins,
                     PeerEntries* peers = nullptr);

// An interface psnic counts: its counter (the traffic map's key) and the program pair that feeds
// it, made and dropped together, so that no interface is hooked without a counter nor counted
// without hooks. Stops counting on destruction: hooks detached, then the key removed. Move-only.
class CountedInterface {
 public:
  // Inserts the key (an existing counter continues) and attaches; on failure neither stays.
  // Throws Error naming the interface.
  static CountedInterface attach(const TrafficProgram& program, uint32_t ifindex,
                                 const std::string& name, AttachMode mode,
                                 const PinDir* pins = nullptr);
  // Takes over an earlier pinned agent's pair and its counter (Attachment::adopt), inserting
  // the key should someone have deleted it. nullopt when there is no pair to adopt.
  static std::optional<CountedInterface> adopt(const TrafficProgram& program, uint32_t ifindex,
                                               const std::string& name, AttachMode mode,
                                               const PinDir& pins);

  CountedInterface(CountedInterface&& other) noexcept
      : program_(std::exchange(other.program_, nullptr)),
        attachment_(std::move(other.attachment_)) {}
  CountedInterface& operator=(CountedInterface&& other) noexcept;
  CountedInterface(const CountedInterface&) = delete;
  CountedInterface& operator=(const CountedInterface&) = delete;
  ~CountedInterface() { stop(); }

  uint32_t ifindex() const { return attachment_.ifindex(); }
  const std::string& name() const { return attachment_.name(); }
  AttachMode mode() const { return attachment_.mode(); }
  bool intact() const { return attachment_.intact(); }
  // Hooks the pair again after another tool removed it; the counter continues. Throws Error.
  void reattach(const PinDir* pins);
  // Detaches, then removes the key; further calls do nothing.
  void stop();
  // Leaves both, counting, for the next agent to adopt; further calls do nothing.
  void release();

 private:
  CountedInterface(const TrafficProgram& program, Attachment attachment)
      : program_(&program), attachment_(std::move(attachment)) {}

  const TrafficProgram* program_;  // null once stopped or released
  Attachment attachment_;
};

// Counts many interfaces. One after another: the kernel serialises TCX attach and detach under
// the RTNL lock, each waiting for an RCU grace period (~12 ms per link on this project's test
// kernel), so threads were measured to gain nothing. Failures come back as Errors in place of
// counted interfaces; nothing is thrown.
struct AttachRequest {
  uint32_t ifindex = 0;
  std::string name;
};
struct AttachResult {
  std::optional<CountedInterface> counted;
  std::optional<Error> error;
};
std::vector<AttachResult> attach_all(const TrafficProgram& program,
                                     const std::vector<AttachRequest>& requests, AttachMode mode,
                                     const PinDir* pins = nullptr);

}  // namespace psnic
