#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/counters.h"
#include "agent/label_store.h"
#include "kernel/attach.h"
#include "kernel/peer.h"
#include "kernel/pins.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"

namespace psnic {

// Counters on the real kernel: one CountedInterface (counter and hooks) per interface, a
// PeerLink for those counted at their container-side peer (TCX mode only), the traffic map, and
// with a pin directory the labels stored beside the counters. When destroyed, an ephemeral one
// stops counting everything it counted; a pinned one leaves it all counting for the next agent to
// adopt.
class KernelCounters final : public Counters {
 public:
  // `pins` may be null (ephemeral); `program` and `pins` must outlive it. Throws Error.
  KernelCounters(const TrafficProgram& program, AttachMode mode, const PinDir* pins);
  KernelCounters(const KernelCounters&) = delete;
  KernelCounters& operator=(const KernelCounters&) = delete;
  ~KernelCounters() override;

  AttachMode mode() const override { return mode_; }
  const std::string* pin_path() const override { return pins_ ? &pins_->path() : nullptr; }
  std::vector<std::optional<Error>> attach(const std::vector<AttachRequest>& requests) override;
  void detach(uint32_t ifindex) override;
  bool intact(uint32_t ifindex) const override;
  void reattach(uint32_t ifindex) override;
  std::optional<TrafficCounts> read(uint32_t ifindex) const override {
    return map_.read_counts(ifindex);
  }
  void count_at_peer(const PeerRequest& peer) override;
  bool at_peer(uint32_t ifindex) const override { return peers_.count(ifindex) != 0; }
  bool adopt(const AttachRequest& request) override;
  void remove_remnants(uint32_t ifindex) override;
  std::vector<uint32_t> counted() const override { return program_.tracked(); }
  std::vector<uint32_t> pinned() const override;
  void unpin(uint32_t ifindex) override;
  void forget(uint32_t ifindex) override;
  std::optional<InterfaceLabels> stored_labels(uint32_t ifindex) const override;
  void store_labels(uint32_t ifindex, const InterfaceLabels& labels) override;
  // Stops counting every interface now (an ephemeral agent's exit): hooks detached, keys
  // removed. A pinned one's are left counting for the next agent all the same.
  void stop_all();

 private:
  const TrafficProgram& program_;
  AttachMode mode_;
  const PinDir* pins_;
  TrafficMap map_;
  std::optional<LabelStore> label_store_;  // pinned only
  std::map<uint32_t, CountedInterface> counting_;
  // The peers map as read for adopting and removing what an earlier agent pinned; dropped
  // once this agent changes the map itself.
  PeerEntries& peer_entries();
  std::optional<PeerEntries> peer_entries_;
  // By host ifindex: interfaces whose receive is counted at their container-side peer. Declared
  // last, so destroyed first: an interface's receive goes back to its host egress before that
  // egress hook goes.
  std::map<uint32_t, PeerLink> peers_;
};

}  // namespace psnic
