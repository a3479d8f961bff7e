#include "agent/kernel_counters.h"

#include <fcntl.h>

#include <cerrno>
#include <string>
#include <vector>

#include "base/error.h"
#include "resolver/namespace.h"

namespace psnic {

KernelCounters::KernelCounters(const TrafficProgram& program, AttachMode mode, const PinDir* pins)
    : program_(program), mode_(mode), pins_(pins), map_(program.map_fd()) {
  if (pins_ != nullptr) label_store_.emplace(LabelStore::open(*pins_));
}

KernelCounters::~KernelCounters() { stop_all(); }

void KernelCounters::stop_all() {
  if (pins_ != nullptr) {
    for (auto& [ifindex, peer] : peers_) peer.release();
    for (auto& [ifindex, counted] : counting_) counted.release();
  }
  peers_.clear();     // receive back at the host egress, then:
  counting_.clear();  // an ephemeral agent's stop counting here
}

std::vector<std::optional<Error>> KernelCounters::attach(
    const std::vector<AttachRequest>& requests) {
  std::vector<std::optional<Error>> errors;
  errors.reserve(requests.size());
  for (AttachResult& result : attach_all(program_, requests, mode_, pins_)) {
    if (result.counted) {
      const uint32_t ifindex = result.counted->ifindex();
      counting_.insert_or_assign(ifindex, std::move(*result.counted));
    }
    errors.push_back(std::move(result.error));
  }
  return errors;
}

void KernelCounters::detach(uint32_t ifindex) {
  peer_entries_.reset();
  peers_.erase(ifindex);
  counting_.erase(ifindex);
  if (label_store_) label_store_->erase(ifindex);
}

bool KernelCounters::intact(uint32_t ifindex) const {
  auto it = counting_.find(ifindex);
  if (it == counting_.end() || !it->second.intact()) return false;
  // A peer link gone while its host egress still skips the interface would miss its receive.
  auto peer = peers_.find(ifindex);
  return peer == peers_.end() || peer->second.intact();
}

void KernelCounters::reattach(uint32_t ifindex) {
  // A peer link another tool detached: the host egress counts the receive again (the inventory
  // may hook the peer anew).
  peer_entries_.reset();
  if (auto peer = peers_.find(ifindex); peer != peers_.end() && !peer->second.intact())
    peers_.erase(peer);
  auto it = counting_.find(ifindex);
  if (it != counting_.end() && !it->second.intact()) it->second.reattach(pins_);
}

namespace {

// The peer's namespace, opened again from what the resolver saw: by the PID that was in it or by
// its `ip netns` name, and only if it is still that namespace (same inode; a PID may have exited
// and been reused since).
Fd open_peer_netns(const PeerRequest& peer) {
  std::vector<std::string> paths;
  if (peer.pid > 0) paths.push_back("/proc/" + std::to_string(peer.pid) + "/ns/net");
  if (!peer.netns_name.empty()) paths.push_back("/run/netns/" + peer.netns_name);
  for (const std::string& path : paths) {
    Fd netns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (netns.valid() && netns_inode(netns.get()) == peer.netns_inode) return netns;
  }
  throw Error(peer.host_name + ": peer's namespace", ESRCH,
              "cannot be opened (no process in it and no ip netns name, or it is gone)");
}

}  // namespace

void KernelCounters::count_at_peer(const PeerRequest& peer) {
  if (!counting_.count(peer.host_ifindex)) throw Error(peer.host_name, ENODEV, "not counted");
  if (mode_ != AttachMode::tcx)
    throw Error(peer.host_name + ": peer's ingress", EOPNOTSUPP,
                "tc mode hooks host interfaces only");
  // netkit's peer has a TCX ingress of its own, but psnic is not tested on netkit (this
  // project's kernel lacks it): its receive stays at the host side.
  if (peer.kind != "veth")
    throw Error(peer.host_name + ": peer's ingress", EOPNOTSUPP,
                "a " + peer.kind + " peer is not hooked (only veth peers are)");
  if (!PeerLink::supported(program_))
    throw Error(peer.host_name + ": peer's ingress", ENOTSUP,
                "this kernel lacks the bpf_cast_to_kern_ctx kfunc");
  peer_entries_.reset();
  Fd netns = open_peer_netns(peer);
  PeerLink link = PeerLink::attach(program_, peer.host_ifindex, peer.host_name,
                                   {netns.get(), peer.ifindex}, pins_);
  peers_.insert_or_assign(peer.host_ifindex, std::move(link));
}

bool KernelCounters::adopt(const AttachRequest& request) {
  if (pins_ == nullptr) return false;
  // The peer link first: if the pair cannot be adopted, it goes with it (detached, its map
  // entries removed) and remove_remnants() finds nothing of it left.
  std::optional<PeerLink> peer;
  if (mode_ == AttachMode::tcx) {
    peer = PeerLink::adopt(program_, request.ifindex, request.name, *pins_, peer_entries());
  } else {
    PeerLink::remove_remnants(program_, request.ifindex, *pins_, peer_entries());
  }
  std::optional<CountedInterface> adopted =
      CountedInterface::adopt(program_, request.ifindex, request.name, mode_, *pins_);
  if (!adopted) return false;
  counting_.insert_or_assign(request.ifindex, std::move(*adopted));
  if (peer) peers_.insert_or_assign(request.ifindex, std::move(*peer));
  return true;
}

void KernelCounters::remove_remnants(uint32_t ifindex) {
  if (pins_ != nullptr) psnic::remove_remnants(program_, ifindex, *pins_, &peer_entries());
}

PeerEntries& KernelCounters::peer_entries() {
  // Read once for what a start adopts and removes, not once per interface; this agent's own
  // peer links change the map, and drop what was read (count_at_peer, detach, reattach).
  if (!peer_entries_) peer_entries_ = PeerEntries::read(program_);
  return *peer_entries_;
}

std::vector<uint32_t> KernelCounters::pinned() const {
  return pins_ ? pins_->pinned_ifindexes() : std::vector<uint32_t>{};
}

void KernelCounters::unpin(uint32_t ifindex) {
  if (pins_ == nullptr) return;
  pins_->unpin_link(ifindex, true);
  pins_->unpin_link(ifindex, false);
  PeerLink::remove_remnants(program_, ifindex, *pins_, peer_entries());
}

void KernelCounters::forget(uint32_t ifindex) {
  program_.untrack(ifindex);
  if (label_store_) label_store_->erase(ifindex);
}

std::optional<InterfaceLabels> KernelCounters::stored_labels(uint32_t ifindex) const {
  return label_store_ ? label_store_->get(ifindex) : std::nullopt;
}

void KernelCounters::store_labels(uint32_t ifindex, const InterfaceLabels& labels) {
  if (label_store_) label_store_->put(ifindex, labels);
}

}  // namespace psnic
