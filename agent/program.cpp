#include "agent/program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <vector>

#include "resolver/error.h"
#include "traffic.h"
#include "traffic.skel.h"

namespace psnic {

void TrafficProgram::Destroy::operator()(traffic_bpf* skeleton) const {
  traffic_bpf__destroy(skeleton);
}

TrafficProgram TrafficProgram::load() {
  // libbpf prints its own diagnostics; psnic reports one line of its own instead.
  libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; });
  traffic_bpf* skeleton = traffic_bpf__open_and_load();
  if (skeleton == nullptr) {
    int err = errno;
    if (err == EPERM || err == EACCES)
      throw Error("bpf program", err,
                  "permission denied loading it (needs CAP_BPF and CAP_NET_ADMIN, or root)");
    throw system_error("bpf program", err);
  }
  return TrafficProgram(skeleton);
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

}  // namespace psnic
