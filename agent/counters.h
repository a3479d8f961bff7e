// The kernel side of the agent's inventory, behind one interface: the inventory decides what to
// count, this does it. KernelCounters (agent/kernel_counters.h) is the real one, on the loaded
// program, its map and the pin directory; unit tests drive the inventory with a fake.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/views.h"
#include "base/error.h"
#include "bpf/traffic_counts.h"
#include "kernel/attach.h"

namespace psnic {

// A counted host interface's container-side peer, as the resolver found it: its namespace (to
// be opened again by PID or by `ip netns` name, and recognised by its inode) and its ifindex,
// kind and name there.
struct PeerRequest {
  uint32_t host_ifindex = 0;
  std::string host_name;
  uint64_t netns_inode = 0;
  pid_t pid = 0;
  std::string netns_name;
  uint32_t ifindex = 0;
  std::string kind;
  std::string name;
};

class Counters {
 public:
  virtual ~Counters() = default;

  // How interfaces are hooked: "tcx" or "tc".
  virtual AttachMode mode() const = 0;
  // Where a pinned agent keeps what outlives it; nullptr for an ephemeral agent, whose
  // interfaces all stop counting when it stops.
  virtual const std::string* pin_path() const = 0;

  // Starts counting each interface (its counter and its hooks, together). One result per
  // request, in order: nullopt when it counts, else why not; nothing half-made stays.
  virtual std::vector<std::optional<Error>> attach(const std::vector<AttachRequest>& requests) = 0;
  // Stops counting an interface: hooks detached, counter and stored labels dropped.
  virtual void detach(uint32_t ifindex) = 0;
  // Whether psnic's hooks are still in place (another tool may have removed them).
  virtual bool intact(uint32_t ifindex) const = 0;
  // Hooks an interface again after another tool removed its hooks; its counter continues.
  // Throws Error.
  virtual void reattach(uint32_t ifindex) = 0;
  // The interface's counter; nullopt when it has none. Throws Error when the map cannot be read.
  virtual std::optional<TrafficCounts> read(uint32_t ifindex) const = 0;

  // Counts a counted interface's receive at its container-side peer's ingress (PeerLink), on
  // the ordinary and the bpf_redirect_peer path alike, and no longer at the host egress. Throws
  // Error, whose errnum says why (ENOTSUP, EOPNOTSUPP: not here, by this agent's mode, kernel or
  // the peer's kind; ESRCH, ENOENT: the namespace cannot be opened now); the interface is
  // counted at the host egress then, as before.
  virtual void count_at_peer(const PeerRequest& peer) = 0;
  // Whether an interface's receive is counted at its peer (attached or adopted). An interface
  // whose peer link another tool removed is not intact(); reattach() hands its receive back to
  // the host egress.
  virtual bool at_peer(uint32_t ifindex) const = 0;

  // A pinned agent's first pass. Takes over what an earlier agent left counting on the
  // interface, its peer link included: true when it did (the counter continues). Throws Error.
  virtual bool adopt(const AttachRequest& request) = 0;
  // Removes what an earlier agent left on an interface that could not be adopted (half a pair,
  // the other mode's pair); the counter stays until forget().
  virtual void remove_remnants(uint32_t ifindex) = 0;
  // Interfaces with a counter, and interfaces with pinned links, whoever made them.
  virtual std::vector<uint32_t> counted() const = 0;
  virtual std::vector<uint32_t> pinned() const = 0;
  // Removes the pinned links of an interface that is gone (the kernel detached them).
  virtual void unpin(uint32_t ifindex) = 0;
  // Drops a counter psnic no longer hooks (an earlier agent's), and its stored labels.
  virtual void forget(uint32_t ifindex) = 0;

  // The labels stored beside a counter for the next agent (pinned agents; otherwise none).
  virtual std::optional<InterfaceLabels> stored_labels(uint32_t ifindex) const = 0;
  virtual void store_labels(uint32_t ifindex, const InterfaceLabels& labels) = 0;
};

}  // namespace psnic
