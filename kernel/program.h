#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct traffic_bpf;

namespace psnic {

// The loaded counter: one program pair (psnic_ingress, psnic_egress) and the traffic map, shared
// by every interface psnic counts, and psnic_peer_ingress for container-side devices
// (kernel/peer.h) with its two maps. Per-interface state is a map key, not a program.
class TrafficProgram {
 public:
  // Opens and loads the skeleton. With `map_pin`, the traffic map pinned there is reused (its
  // counters continue), or pinned there when absent; so are the peer maps, beside it (peers,
  // received_at_peer). psnic_peer_ingress is loaded only where the kernel has what it needs (the
  // bpf_cast_to_kern_ctx kfunc); elsewhere peer_ingress_fd() is -1. Throws Error; without the
  // privilege to load BPF the message says what is missing, and a pinned map of another layout
  // is named.
  static TrafficProgram load(const std::string& map_pin = {});

  int ingress_fd() const;
  int egress_fd() const;
  int map_fd() const;
  // psnic_peer_ingress, or -1 when this kernel could not load it.
  int peer_ingress_fd() const;
  int peers_fd() const;
  int received_at_peer_fd() const;

  // What the kernel calls the loaded objects, read once at load: their ids, and the programs'
  // tags (a hash of their code: the same code loaded twice has the same tag).
  using Tag = std::array<uint8_t, 8>;
  struct Ids {
    uint32_t map = 0, ingress = 0, egress = 0, peer_ingress = 0;  // peer_ingress 0: not loaded
    Tag ingress_tag{}, egress_tag{}, peer_ingress_tag{};
  };
  const Ids& ids() const { return ids_; }

  // Inserts a zeroed counter for a host ifindex, so the program starts counting it; an existing
  // counter is left as it is. Throws Error.
  void track(uint32_t ifindex) const;
  // Removes the counter of a host ifindex, if there is one.
  void untrack(uint32_t ifindex) const;
  // The host ifindexes that have a counter.
  std::vector<uint32_t> tracked() const;

 private:
  struct Destroy {
    void operator()(traffic_bpf* skeleton) const;
  };
  explicit TrafficProgram(traffic_bpf* skeleton) : skeleton_(skeleton) {}

  std::unique_ptr<traffic_bpf, Destroy> skeleton_;
  Ids ids_;
};

}  // namespace psnic
