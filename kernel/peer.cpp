#include "kernel/peer.h"

#include <bpf/bpf.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.h"
#include "program_facts.h"
#include "resolver/namespace.h"
#include "tcx_uapi.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // Linux >= 5.14
#endif

namespace psnic {
namespace {

TcxLinkInfo link_info(int link_fd) {
  TcxLinkInfo info;
  uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(link_fd, &info, &length) != 0) return TcxLinkInfo{};
  return info;
}

// What the attach thread made inside the peer's namespace.
struct MadeInside {
  Fd link;
  uint64_t netns_cookie = 0;
  std::optional<Error> error;
};

// Inside the namespace of `peer`, on a thread of its own that enters it for this alone: the
// namespace's cookie (SO_NETNS_COOKIE of a socket made there: the value the kernel's struct net
// holds, as the program reads it) and a TCX link at the head of the device's ingress (the target
// ifindex is resolved in the caller's namespace).
MadeInside attach_inside(int prog_fd, const PeerLink::Device& peer, const std::string& name) {
  MadeInside made;
  auto make = [&] {
    try {
      EnteredNetns inside(peer.netns_fd);
      Fd socket_there(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      socklen_t length = sizeof made.netns_cookie;
      if (!socket_there.valid() || getsockopt(socket_there.get(), SOL_SOCKET, SO_NETNS_COOKIE,
                                              &made.netns_cookie, &length) < 0)
        throw system_error(name + ": peer's namespace cookie", errno);
      LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = kBpfFBefore);
      int fd = bpf_link_create(prog_fd, static_cast<int>(peer.ifindex),
                               static_cast<bpf_attach_type>(kBpfTcxIngress), &opts);
      if (fd < 0) throw system_error(name + ": tcx link on its peer's ingress", errno);
      made.link = Fd(fd);
    } catch (const Error& e) {
      made.error = e;
    }
  };
  try {
    std::thread(make).join();
  } catch (const std::system_error& e) {  // no thread to be had (a task limit)
    made.error = Error(name + ": peer's ingress", e.code().value(), "cannot start a thread");
  }
  return made;
}

// Hands `host_ifindex`'s receive back to its host egress, then removes its `keys` from the peers
// map, each only while it still names that interface.
void forget_peer(const TrafficProgram& program, uint32_t host_ifindex,
                 const std::vector<psnic_peer_key>& keys) {
  // The host egress counts again first: a packet in between is counted twice, never missed.
  bpf_map_delete_elem(program.received_at_peer_fd(), &host_ifindex);
  for (const psnic_peer_key& key : keys) {
    uint32_t value = 0;
    if (bpf_map_lookup_elem(program.peers_fd(), &key, &value) == 0 && value == host_ifindex)
      bpf_map_delete_elem(program.peers_fd(), &key);
  }
}

}  // namespace

PeerEntries PeerEntries::read(const TrafficProgram& program) {
  PeerEntries entries;
  psnic_peer_key key{}, next{};
  const psnic_peer_key* previous = nullptr;
  while (bpf_map_get_next_key(program.peers_fd(), previous, &next) == 0) {
    uint32_t host_ifindex = 0;
    if (bpf_map_lookup_elem(program.peers_fd(), &next, &host_ifindex) == 0)
      entries.by_host_[host_ifindex].push_back(next);
    key = next;
    previous = &key;
  }
  return entries;
}

const std::vector<psnic_peer_key>& PeerEntries::of(uint32_t host_ifindex) const {
  static const std::vector<psnic_peer_key> kNone;
  auto it = by_host_.find(host_ifindex);
  return it == by_host_.end() ? kNone : it->second;
}

bool PeerLink::supported(const TrafficProgram& program) { return program.peer_ingress_fd() >= 0; }

PeerLink PeerLink::attach(const TrafficProgram& program, uint32_t host_ifindex,
                          const std::string& name, const Device& peer, const PinDir* pins) {
  if (!supported(program))
    throw Error(name + ": peer's ingress", ENOTSUP,
                "this kernel lacks the bpf_cast_to_kern_ctx kfunc");
  MadeInside made = attach_inside(program.peer_ingress_fd(), peer, name);
  if (made.error) throw *made.error;
  PeerLink link(program, host_ifindex);
  link.link_ = std::move(made.link);
  link.key_.netns_cookie = made.netns_cookie;
  link.key_.ifindex = peer.ifindex;
  if (pins != nullptr) {
    link.pins_ = pins;  // so that a failure below unpins
    pins->pin_peer_link(link.link_.get(), host_ifindex);
  }
  // The peer counts from here, then the host egress stops: a packet in between is counted
  // twice, never missed.
  if (bpf_map_update_elem(program.peers_fd(), &link.key_, &host_ifindex, BPF_ANY) < 0)
    throw system_error(name + ": peers map", errno);
  const uint8_t yes = 1;
  if (bpf_map_update_elem(program.received_at_peer_fd(), &host_ifindex, &yes, BPF_ANY) < 0)
    throw system_error(name + ": received_at_peer map", errno);
  return link;
}

std::optional<PeerLink> PeerLink::adopt(const TrafficProgram& program, uint32_t host_ifindex,
                                        const std::string& name, const PinDir& pins) {
  PeerEntries entries = PeerEntries::read(program);
  return adopt(program, host_ifindex, name, pins, entries);
}

std::optional<PeerLink> PeerLink::adopt(const TrafficProgram& program, uint32_t host_ifindex,
                                        const std::string& name, const PinDir& pins,
                                        PeerEntries& entries) {
  Fd pinned = pins.pinned_peer_link(host_ifindex);
  if (!pinned.valid()) return std::nullopt;
  const TcxLinkInfo info = link_info(pinned.get());
  const std::vector<psnic_peer_key>& keys = entries.of(host_ifindex);
  if (!supported(program) || info.type != kBpfLinkTypeTcx || info.ifindex == 0 ||
      info.attach_type != static_cast<uint32_t>(kBpfTcxIngress) || keys.size() != 1 ||
      keys[0].ifindex != info.ifindex) {
    remove_remnants(program, host_ifindex, pins, entries);
    return std::nullopt;
  }
  PeerLink link(program, host_ifindex);
  link.link_ = std::move(pinned);
  link.key_ = keys[0];
  link.pins_ = &pins;
  if (program_facts(info.prog_id).tag != program.ids().peer_ingress_tag &&
      bpf_link_update(link.link_.get(), program.peer_ingress_fd(), nullptr) < 0)
    throw system_error(name + ": tcx link on its peer's ingress", errno);
  const uint8_t yes = 1;
  bpf_map_update_elem(program.received_at_peer_fd(), &host_ifindex, &yes, BPF_ANY);
  return link;
}

void PeerLink::remove_remnants(const TrafficProgram& program, uint32_t host_ifindex,
                               const PinDir& pins) {
  PeerEntries entries = PeerEntries::read(program);
  remove_remnants(program, host_ifindex, pins, entries);
}

void PeerLink::remove_remnants(const TrafficProgram& program, uint32_t host_ifindex,
                               const PinDir& pins, PeerEntries& entries) {
  forget_peer(program, host_ifindex, entries.of(host_ifindex));
  entries.forget(host_ifindex);
  pins.unpin_peer_link(host_ifindex);
}

PeerLink::PeerLink(PeerLink&& other) noexcept { *this = std::move(other); }

PeerLink& PeerLink::operator=(PeerLink&& other) noexcept {
  if (this != &other) {
    detach();
    program_ = std::exchange(other.program_, nullptr);
    host_ifindex_ = other.host_ifindex_;
    key_ = other.key_;
    pins_ = std::exchange(other.pins_, nullptr);
    link_ = std::move(other.link_);
  }
  return *this;
}

bool PeerLink::intact() const { return link_.valid() && link_info(link_.get()).ifindex != 0; }

void PeerLink::detach() {
  if (program_ != nullptr) forget_peer(*std::exchange(program_, nullptr), host_ifindex_, {key_});
  if (pins_ != nullptr) std::exchange(pins_, nullptr)->unpin_peer_link(host_ifindex_);
  if (link_.valid()) bpf_link_detach(link_.get());
  link_ = Fd();
}

void PeerLink::release() {
  program_ = nullptr;
  pins_ = nullptr;
  link_ = Fd();
}

}  // namespace psnic
