#include "kernel/program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "bpf/traffic.h"
#include "traffic.skel.h"

namespace psnic {

void TrafficProgram::Destroy::operator()(traffic_bpf* skeleton) const {
  traffic_bpf__destroy(skeleton);
}

TrafficProgram TrafficProgram::load(const std::string& map_pin) {
  // libbpf prints its own diagnostics; psnic reports one line of its own instead.
  libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; });
  traffic_bpf* opened = traffic_bpf__open();
  if (opened == nullptr) throw system_error("bpf program", errno);
  TrafficProgram program(opened);
  // libbpf reuses a map pinned at this path after checking its type, sizes and flags, or pins
  // the new one there.
  if (!map_pin.empty()) {
    int err = bpf_map__set_pin_path(opened->maps.traffic, map_pin.c_str());
    if (err < 0) throw system_error(map_pin, -err);
  }
  int err = traffic_bpf__load(opened);
  if (err < 0) {
    err = -err;
    if (err == EPERM || err == EACCES)
      throw Error("bpf program", err,
                  "permission denied loading it (needs CAP_BPF and CAP_NET_ADMIN, or root)");
    if (err == EINVAL && !map_pin.empty() && access(map_pin.c_str(), F_OK) == 0)
      throw Error(map_pin, err,
                  "pinned by a psnic with another map layout (psnic-agent --cleanup removes it)");
    throw system_error("bpf program", err);
  }
  bpf_map_info map{};
  uint32_t length = sizeof map;
  if (bpf_obj_get_info_by_fd(program.map_fd(), &map, &length) != 0)
    throw system_error("traffic map", errno);
  program.ids_.map = map.id;
  for (bool ingress : {true, false}) {
    bpf_prog_info info{};
    length = sizeof info;
    if (bpf_obj_get_info_by_fd(ingress ? program.ingress_fd() : program.egress_fd(), &info,
                               &length) != 0)
      throw system_error("bpf program", errno);
    (ingress ? program.ids_.ingress : program.ids_.egress) = info.id;
    std::memcpy((ingress ? program.ids_.ingress_tag : program.ids_.egress_tag).data(), info.tag,
                sizeof info.tag);
  }
  return program;
}

int TrafficProgram::ingress_fd() const { return bpf_program__fd(skeleton_->progs.psnic_ingress); }
int TrafficProgram::egress_fd() const { return bpf_program__fd(skeleton_->progs.psnic_egress); }
int TrafficProgram::map_fd() const { return bpf_map__fd(skeleton_->maps.traffic); }

void TrafficProgram::track(uint32_t ifindex) const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw system_error("possible cpus", -cpus);
  std::vector<psnic_traffic> zero(static_cast<size_t>(cpus));
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
