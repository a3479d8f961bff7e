#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/fd.h"
#include "kernel/pins.h"
#include "kernel/program.h"

namespace psnic {

// psnic's program pair on one interface as two TCX links (kernel >= 6.6), each at the head of
// its chain. The links are the attachment: closing the last fd of a link detaches it, and a
// pinned link (PIN_DIR/links/<ifindex>_ingress|_egress) outlives the agent. Detaches (and
// unpins) on destruction. Move-only.
class TcxLinks {
 public:
  // Attaches ingress then egress; on failure nothing stays attached or pinned. With `pins`, the
  // links are pinned there. Throws Error naming the interface.
  static TcxLinks attach(const TrafficProgram& program, uint32_t ifindex, const std::string& name,
                         const PinDir* pins);
  // Both links an earlier agent pinned in `pins`, still attached to the interface; a link
  // running other code than `program`'s is switched to it in place. nullopt when either is
  // missing. Throws Error when switching fails.
  static std::optional<TcxLinks> adopt(const TrafficProgram& program, uint32_t ifindex,
                                       const std::string& name, const PinDir& pins);
  // Whether the kernel takes TCX links at all. Probes without touching any interface.
  static bool supported(const TrafficProgram& program);

  TcxLinks(TcxLinks&& other) noexcept;
  TcxLinks& operator=(TcxLinks&& other) noexcept;
  TcxLinks(const TcxLinks&) = delete;
  TcxLinks& operator=(const TcxLinks&) = delete;
  ~TcxLinks() { detach(); }

  // Whether both programs are still in the interface's chains.
  bool intact() const;
  // Detaches now and removes the pins; further calls do nothing.
  void detach();
  // Leaves both links attached and pinned for the next agent; further calls do nothing.
  void release();

 private:
  explicit TcxLinks(uint32_t ifindex) : ifindex_(ifindex) {}

  uint32_t ifindex_ = 0;
  const PinDir* pins_ = nullptr;  // where the links are pinned, if they are
  Fd ingress_;
  Fd egress_;
  uint32_t ingress_prog_ = 0;  // the programs' ids, for intact()
  uint32_t egress_prog_ = 0;
};

}  // namespace psnic
