#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/views.h"
#include "base/fd.h"
#include "kernel/pins.h"

namespace psnic {

// The labels of each counted interface, kept beside the counters in the pin directory
// (PIN_DIR/labels, a BPF hash map only user space uses), so that the next agent can still name a
// counter: one whose interface went while no agent ran is exported with its final values for the
// grace period, and an adopted one keeps its labels before its owner is looked up again.
class LabelStore {
 public:
  // Each label is kept up to this many bytes; a longer one is cut.
  static constexpr size_t kMaxLabel = 256;

  // Opens PIN_DIR/labels, or makes and pins it. One of another layout (an older psnic's) is
  // replaced: labels are found again, counters are not. Throws Error.
  static LabelStore open(const PinDir& pins);

  // Never throws: the labels are a convenience for the next agent, not the counters themselves.
  void put(uint32_t ifindex, const InterfaceLabels& labels) const;
  std::optional<InterfaceLabels> get(uint32_t ifindex) const;
  void erase(uint32_t ifindex) const;

 private:
  explicit LabelStore(Fd map) : map_(std::move(map)) {}
  Fd map_;
};

}  // namespace psnic
