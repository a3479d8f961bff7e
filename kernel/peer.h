#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "bpf/traffic.h"
#include "kernel/pins.h"
#include "kernel/program.h"

namespace psnic {

// The container's receive counted where every path into the container meets: the TCX ingress
// of the container-side device (a veth's or netkit's peer). The host veth's egress misses what a
// program on another device moves with bpf_redirect_peer (Cilium's BPF host routing): such a
// packet enters the peer without the host veth transmitting it. Counted into the host
// interface's egress counter, so the traffic map and its readers stay as they are; the host
// egress program leaves an interface counted here alone (no double count).
//
// The link is made from the host: a short-lived thread enters the container's network namespace
// for the attach alone (setns is per thread, and a TCX attach resolves its target ifindex in the
// caller's namespace). Pinned at PIN_DIR/links/<host ifindex>_peer. When the namespace goes, its
// device goes and the link with it becomes defunct (ifindex 0). Detaches (and unpins) on
// destruction. Move-only.
// The peers map read once, by host ifindex. Adopting a thousand pinned peer links asks it a
// thousand times: one walk of the map then, not one per interface (quadratic: minutes of
// syscalls at 1100 interfaces).
class PeerEntries {
 public:
  static PeerEntries read(const TrafficProgram& program);
  // The keys whose value is `host_ifindex` (normally one).
  const std::vector<psnic_peer_key>& of(uint32_t host_ifindex) const;
  void forget(uint32_t host_ifindex) { by_host_.erase(host_ifindex); }

 private:
  std::map<uint32_t, std::vector<psnic_peer_key>> by_host_;
};

class PeerLink {
 public:
  // Where the peer is: its namespace (an fd) and its ifindex there.
  struct Device {
    int netns_fd = -1;
    uint32_t ifindex = 0;
  };

  // Whether `program` loaded its peer program (TCX and the bpf_cast_to_kern_ctx kfunc).
  static bool supported(const TrafficProgram& program);
  // Attaches at the head of the peer's TCX ingress, enters the peer in the peers map, then marks
  // the host interface counted at its peer. With `pins`, the link is pinned there. Throws Error
  // naming the interface; nothing stays attached, entered or pinned then.
  static PeerLink attach(const TrafficProgram& program, uint32_t host_ifindex,
                         const std::string& name, const Device& peer, const PinDir* pins);
  // The link an earlier agent pinned for `host_ifindex`, still attached to a device, with its
  // peers entry; a link running other code than `program`'s is switched to it in place. nullopt
  // when there is none (the pin, a defunct link and the map entries of such a remnant are then
  // removed).
  static std::optional<PeerLink> adopt(const TrafficProgram& program, uint32_t host_ifindex,
                                       const std::string& name, const PinDir& pins);
  // The same with the peers map read beforehand (PeerEntries::read), for adopting many; the
  // entries of a remnant removed here are forgotten in `entries` too.
  static std::optional<PeerLink> adopt(const TrafficProgram& program, uint32_t host_ifindex,
                                       const std::string& name, const PinDir& pins,
                                       PeerEntries& entries);
  // Removes what an earlier agent left for `host_ifindex`: its pin (detaching the link) and the
  // map entries. Another tool's programs stay.
  static void remove_remnants(const TrafficProgram& program, uint32_t host_ifindex,
                              const PinDir& pins);
  // The same with the peers map read beforehand, for many; `entries` forgets them too.
  static void remove_remnants(const TrafficProgram& program, uint32_t host_ifindex,
                              const PinDir& pins, PeerEntries& entries);

  PeerLink(PeerLink&& other) noexcept;
  PeerLink& operator=(PeerLink&& other) noexcept;
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;
  ~PeerLink() { detach(); }

  const psnic_peer_key& key() const { return key_; }
  // Whether the link is still attached to a device (not detached by another tool, its device
  // not gone).
  bool intact() const;
  // Hands the host interface's receive back to its egress hook, then detaches and unpins;
  // further calls do nothing.
  void detach();
  // Leaves the link attached and pinned, and the map entries, for the next agent.
  void release();

 private:
  PeerLink(const TrafficProgram& program, uint32_t host_ifindex)
      : program_(&program), host_ifindex_(host_ifindex) {}

  const TrafficProgram* program_ = nullptr;  // null once detached or released
  uint32_t host_ifindex_ = 0;
  psnic_peer_key key_{};
  const PinDir* pins_ = nullptr;  // where the link is pinned, if it is
  Fd link_;
};

}  // namespace psnic
