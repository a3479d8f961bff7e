#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct traffic_bpf;

namespace psnic {

// What the counters are split by (psnic-agent --split): nothing, or the protocol of each packet
// (tcp, udp, icmp, other), which counts each interface's traffic four times over.
enum class Split { none, protocol };
// "none", "protocol"; nullopt for any other text.
std::optional<Split> parse_split(std::string_view text);

// The loaded counter: one program pair and its map, shared by every interface psnic counts.
// Per-interface state is a map key, not a program. Unsplit, psnic_ingress/psnic_egress count into
// the traffic map (psnic_traffic values); split by protocol, psnic_split_in/psnic_split_eg count
// into traffic_proto (psnic_traffic_split values). Both maps exist either way. A container-side
// device (kernel/peer.h) gets the peer program of the same setting (psnic_peer_ingress or
// psnic_peer_split), which reads two more maps, pinned beside the traffic map (peers,
// received_at_peer); it is loaded only where the kernel has the bpf_cast_to_kern_ctx kfunc,
// elsewhere peer_ingress_fd() is negative.
class TrafficProgram {
 public:
  // Opens and loads the skeleton with the pair `split` names (the other pair is not loaded).
  // With `map_pin` and `split_map_pin`, the maps pinned there are reused (the counting one's
  // counters continue), or pinned there when absent. The map the other setting counts into is
  // emptied: its counters stopped when its programs were replaced, and an agent that comes back
  // to that setting must start them anew rather than continue stale ones. Throws Error; without
  // the privilege to load BPF the message says what is missing, and a pinned map of another
  // layout is named.
  static TrafficProgram load(const std::string& map_pin = {}, Split split = Split::none,
                             const std::string& split_map_pin = {});

  Split split() const { return split_; }
  int ingress_fd() const;
  int egress_fd() const;
  // The map the loaded pair counts into: traffic, or traffic_proto when split.
  int map_fd() const;
  // The other one, which counts nothing.
  int idle_map_fd() const;
  // The peer program of the loaded setting, or negative when this kernel could not load it.
  int peer_ingress_fd() const;
  int peers_fd() const;
  int received_at_peer_fd() const;

  // What the kernel calls the loaded objects, read once at load: their ids, and the programs'
  // tags (a hash of their code: the same code loaded twice has the same tag).
  using Tag = std::array<uint8_t, 8>;
  struct Ids {
    uint32_t map = 0, ingress = 0, egress = 0, peer_ingress = 0;  // peer_ingress 0: not loaded
    uint32_t idle_map = 0;  // idle_map_fd()'s: an earlier agent's programs may write it
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
  TrafficProgram(traffic_bpf* skeleton, Split split) : skeleton_(skeleton), split_(split) {}

  std::unique_ptr<traffic_bpf, Destroy> skeleton_;
  Split split_;
  Ids ids_;
};

}  // namespace psnic
