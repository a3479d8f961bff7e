#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "kernel/expedite.h"

namespace psnic {

// Where a pinned agent keeps what must outlive it, so that an agent started after SIGTERM or
// kill -9 adopts it (counters continue, nothing is attached twice):
//   PIN_DIR/traffic                          the traffic map
//   PIN_DIR/traffic_proto                    the traffic map split by protocol (--split protocol)
//   PIN_DIR/labels                           the labels of each counter (agent/label_store.h)
//   PIN_DIR/links/<ifindex>_ingress|_egress  the TCX links (tc filters outlive their agent anyway)
//   PIN_DIR/links/<ifindex>_peer             the TCX link on the peer's ingress (kernel/peer.h)
//   PIN_DIR/peers, PIN_DIR/received_at_peer  the maps that link's program reads
//   PIN_DIR/rcu_expedited                    while --expedite-attach holds the host's knob: its
//                                            value before (kernel/expedite.h)
// Only psnic writes there. The directory is locked while an agent or --cleanup uses it.
inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/psnic";
// Where a host's bpf filesystem belongs (systemd mounts it there at boot). The one place psnic
// mounts one, and only when nothing is mounted there: elsewhere a mount would surprise the host.
inline constexpr const char* kBpffsMountPoint = "/sys/fs/bpf";

class PinDir {
 public:
  // Opens PIN_DIR, creating it when missing, and locks it. When PIN_DIR lies under
  // `mount_point` (tests move it) and nothing is mounted there, a bpf filesystem is mounted on
  // `mount_point` itself, never anywhere else. Throws Error naming the directory: not on a bpf
  // filesystem, or in use by another psnic-agent.
  static PinDir open(const std::string& path, const std::string& mount_point = kBpffsMountPoint);
  // The same for a directory that must exist already; nullopt when it does not.
  static std::optional<PinDir> open_existing(const std::string& path);

  const std::string& path() const { return path_; }
  // Whether open() mounted a bpf filesystem (on its mount point) to make the directory.
  bool mounted_bpffs() const { return mounted_bpffs_; }
  std::string map_path() const { return path_ + "/traffic"; }
  std::string split_map_path() const { return path_ + "/traffic_proto"; }
  std::string labels_path() const { return path_ + "/labels"; }
  std::string rcu_expedited_record_path() const { return path_ + "/rcu_expedited"; }
  std::string link_path(uint32_t ifindex, bool ingress) const;

  // Pins a TCX link, replacing a stale pin of the same name. Throws Error.
  void pin_link(int link_fd, uint32_t ifindex, bool ingress) const;
  // The pinned TCX link, or an invalid Fd when there is none.
  Fd pinned_link(uint32_t ifindex, bool ingress) const;
  // Detaches a pinned link and removes its pin.
  void unpin_link(uint32_t ifindex, bool ingress) const;
  // The same for the link on the peer's ingress of host interface `ifindex`.
  std::string peer_link_path(uint32_t ifindex) const;
  void pin_peer_link(int link_fd, uint32_t ifindex) const;
  Fd pinned_peer_link(uint32_t ifindex) const;
  void unpin_peer_link(uint32_t ifindex) const;
  // The ifindexes that have a pinned link in either direction, in ascending order.
  std::vector<uint32_t> pinned_ifindexes() const;

 private:
  PinDir(std::string path, Fd lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  static PinDir lock(const std::string& path);

  std::string path_;
  Fd lock_;  // the directory itself, flock()ed
  bool mounted_bpffs_ = false;
};

// Whether `path` lies on a bpf filesystem.
bool on_bpffs(const std::string& path);

// What `psnic-agent --cleanup` removed.
struct CleanupReport {
  size_t links = 0;        // TCX link pins (the peers' included)
  size_t tc_filters = 0;   // cls_bpf filters running a program that writes the pinned map
  bool map = false;        // the traffic map's pin (the peer maps' go with it)
  bool split_map = false;  // the traffic_proto map's pin
  bool directory = false;  // PIN_DIR itself
  // The value given back to the RCU knob, which an agent that died while expediting grace
  // periods recorded there; nullopt when there was no record (or it could not be written back).
  std::optional<std::string> rcu_expedited;
};

// Removes everything a pinned agent left: its tc filters on the host's interfaces, its TCX link
// pins (which detaches the links), the map pin and the directory; and gives `rcu_knob` back the
// value an agent that died while expediting grace periods recorded. Refuses (Error EBUSY) while
// an agent runs on it. A missing directory is nothing to do.
CleanupReport cleanup_pins(const std::string& path,
                           const std::string& rcu_knob = kRcuExpeditedKnob);

}  // namespace psnic
