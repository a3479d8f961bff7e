#include "kernel/program.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "base/error.h"
#include "bpf/traffic.h"
#include "traffic.skel.h"

namespace psnic {

namespace {

uint32_t map_id(int fd) {
  bpf_map_info map{};
  uint32_t length = sizeof map;
  if (bpf_obj_get_info_by_fd(fd, &map, &length) != 0) throw system_error("traffic map", errno);
  return map.id;
}

// Deletes every key: the next key is asked for after each delete, from the start.
void empty_map(int fd) {
  uint32_t key = 0;
  while (bpf_map_get_next_key(fd, nullptr, &key) == 0)
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT)
      throw system_error("traffic map key " + std::to_string(key), errno);
}

}  // namespace

std::optional<Split> parse_split(std::string_view text) {
  if (text == "none") return Split::none;
  if (text == "protocol") return Split::protocol;
  return std::nullopt;
}

void TrafficProgram::Destroy::operator()(traffic_bpf* skeleton) const {
  traffic_bpf__destroy(skeleton);
}

namespace {

// Whether the running kernel has the kfunc psnic_peer_ingress calls (Linux >= 6.3), looked up in
// its BTF: a program calling a kfunc the kernel lacks fails the whole object's load.
bool kernel_has_kfunc(const char* name) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) return false;
  bool found = btf__find_by_name_kind(vmlinux, name, BTF_KIND_FUNC) > 0;
  btf__free(vmlinux);
  return found;
}

// A pin beside the traffic map's: same directory, its own name.
std::string sibling_pin(const std::string& map_pin, const char* name) {
  size_t slash = map_pin.find_last_of('/');
  return (slash == std::string::npos ? std::string() : map_pin.substr(0, slash + 1)) + name;
}

}  // namespace

TrafficProgram TrafficProgram::load(const std::string& map_pin, Split split,
                                    const std::string& split_map_pin) {
  // libbpf prints its own diagnostics; psnic reports one line of its own instead.
  libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; });
  traffic_bpf* opened = traffic_bpf__open();
  if (opened == nullptr) throw system_error("bpf program", errno);
  TrafficProgram program(opened, split);
  // Only the pair that counts is loaded (and verified).
  const bool split_on = split == Split::protocol;
  bpf_program__set_autoload(opened->progs.psnic_ingress, !split_on);
  bpf_program__set_autoload(opened->progs.psnic_egress, !split_on);
  bpf_program__set_autoload(opened->progs.psnic_split_in, split_on);
  bpf_program__set_autoload(opened->progs.psnic_split_eg, split_on);
  // libbpf reuses a map pinned at this path after checking its type, sizes and flags, or pins
  // the new one there.
  for (auto [map, pin] :
       {std::pair{opened->maps.traffic, map_pin},
        std::pair{opened->maps.traffic_proto, split_map_pin},
        std::pair{opened->maps.peers, map_pin.empty() ? map_pin : sibling_pin(map_pin, "peers")},
        std::pair{opened->maps.received_at_peer,
                  map_pin.empty() ? map_pin : sibling_pin(map_pin, "received_at_peer")}}) {
    if (pin.empty()) continue;
    int err = bpf_map__set_pin_path(map, pin.c_str());
    if (err < 0) throw system_error(pin, -err);
  }
  // One peer program, the one of the loaded pair's setting, and only where the kernel has its
  // kfunc.
  const bool peer = kernel_has_kfunc("bpf_cast_to_kern_ctx");
  bpf_program__set_autoload(opened->progs.psnic_peer_ingress, peer && split == Split::none);
  bpf_program__set_autoload(opened->progs.psnic_peer_split, peer && split == Split::protocol);
  int err = traffic_bpf__load(opened);
  if (err < 0) {
    err = -err;
    if (err == EPERM || err == EACCES)
      throw Error("bpf program", err,
                  "permission denied loading it (needs CAP_BPF and CAP_NET_ADMIN, or root)");
    for (const std::string* pin : {&map_pin, &split_map_pin})
      if (err == EINVAL && !pin->empty() && access(pin->c_str(), F_OK) == 0)
        throw Error(*pin, err,
                    "pinned by a psnic with another map layout (psnic-agent --cleanup removes "
                    "it)");
    throw system_error("bpf program", err);
  }
  program.ids_.map = map_id(program.map_fd());
  program.ids_.idle_map = map_id(program.idle_map_fd());
  empty_map(program.idle_map_fd());
  Ids& ids = program.ids_;
  for (auto [fd, id, tag] :
       {std::tuple{program.ingress_fd(), &ids.ingress, &ids.ingress_tag},
        std::tuple{program.egress_fd(), &ids.egress, &ids.egress_tag},
        std::tuple{program.peer_ingress_fd(), &ids.peer_ingress, &ids.peer_ingress_tag}}) {
    if (fd < 0) continue;  // the peer program, not loaded on this kernel
    bpf_prog_info info{};
    uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) throw system_error("bpf program", errno);
    *id = info.id;
    std::memcpy(tag->data(), info.tag, sizeof info.tag);
  }
  return program;
}

int TrafficProgram::ingress_fd() const {
  return bpf_program__fd(split_ == Split::protocol ? skeleton_->progs.psnic_split_in
                                                   : skeleton_->progs.psnic_ingress);
}
int TrafficProgram::egress_fd() const {
  return bpf_program__fd(split_ == Split::protocol ? skeleton_->progs.psnic_split_eg
                                                   : skeleton_->progs.psnic_egress);
}
int TrafficProgram::map_fd() const {
  return bpf_map__fd(split_ == Split::protocol ? skeleton_->maps.traffic_proto
                                               : skeleton_->maps.traffic);
}
int TrafficProgram::idle_map_fd() const {
  return bpf_map__fd(split_ == Split::protocol ? skeleton_->maps.traffic
                                               : skeleton_->maps.traffic_proto);
}
int TrafficProgram::peer_ingress_fd() const {
  return bpf_program__fd(split_ == Split::protocol ? skeleton_->progs.psnic_peer_split
                                                   : skeleton_->progs.psnic_peer_ingress);
}
int TrafficProgram::peers_fd() const { return bpf_map__fd(skeleton_->maps.peers); }
int TrafficProgram::received_at_peer_fd() const {
  return bpf_map__fd(skeleton_->maps.received_at_peer);
}

void TrafficProgram::track(uint32_t ifindex) const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw system_error("possible cpus", -cpus);
  // One zeroed value per CPU, of the counting map's value size.
  const size_t value_size =
      split_ == Split::protocol ? sizeof(psnic_traffic_split) : sizeof(psnic_traffic);
  std::vector<uint8_t> zero(static_cast<size_t>(cpus) * value_size);
  if (bpf_map_update_elem(map_fd(), &ifindex, zero.data(), BPF_NOEXIST) < 0 && errno != EEXIST)
    throw system_error("traffic map key " + std::to_string(ifindex), errno);
}

void TrafficProgram::untrack(uint32_t ifindex) const { bpf_map_delete_elem(map_fd(), &ifindex); }

std::vector<uint32_t> TrafficProgram::tracked() const {
  std::vector<uint32_t> keys;
  uint32_t key = 0;
  const uint32_t* previous = nullptr;
  while (bpf_map_get_next_key(map_fd(), previous, &key) == 0) {
    keys.push_back(key);
    previous = &keys.back();
  }
  return keys;
}

}  // namespace psnic
