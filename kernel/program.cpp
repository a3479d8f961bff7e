#include "kernel/program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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
  for (auto [map, pin] : {std::pair{opened->maps.traffic, &map_pin},
                          std::pair{opened->maps.traffic_proto, &split_map_pin}}) {
    if (pin->empty()) continue;
    int err = bpf_map__set_pin_path(map, pin->c_str());
    if (err < 0) throw system_error(*pin, -err);
  }
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
  for (bool ingress : {true, false}) {
    bpf_prog_info info{};
    uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(ingress ? program.ingress_fd() : program.egress_fd(), &info,
                               &length) != 0)
      throw system_error("bpf program", errno);
    (ingress ? program.ids_.ingress : program.ids_.egress) = info.id;
    std::memcpy((ingress ? program.ids_.ingress_tag : program.ids_.egress_tag).data(), info.tag,
                sizeof info.tag);
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
