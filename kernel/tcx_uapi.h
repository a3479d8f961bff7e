// What TCX's uapi says, for tcx.cpp and peer.cpp: Debian 12's headers (Linux 6.1) predate TCX
// (Linux 6.6), so the values are copied from linux/bpf.h. Private to the kernel layer.
#pragma once

#include <bpf/bpf.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace psnic {

constexpr int kBpfTcxIngress = 46;         // BPF_TCX_INGRESS
constexpr int kBpfTcxEgress = 47;          // BPF_TCX_EGRESS
constexpr uint32_t kBpfFBefore = 1U << 3;  // BPF_F_BEFORE: with no relative program, the head
constexpr uint32_t kBpfLinkTypeTcx = 11;   // BPF_LINK_TYPE_TCX

// bpf_link_info as the kernel fills it for a TCX link: the same header as every link, then
// tcx.ifindex (0 once the interface is gone or the link was detached) and tcx.attach_type.
struct TcxLinkInfo {
  uint32_t type = 0;
  uint32_t id = 0;
  uint32_t prog_id = 0;
  uint32_t padding = 0;
  uint32_t ifindex = 0;
  uint32_t attach_type = 0;
  std::array<uint8_t, sizeof(bpf_link_info)> rest{};  // room for what newer kernels add
};
static_assert(offsetof(TcxLinkInfo, ifindex) == offsetof(bpf_link_info, xdp.ifindex));

}  // namespace psnic
