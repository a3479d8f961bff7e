#include "agent/attach.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <utility>

#include "resolver/error.h"

namespace psnic {
namespace {

// Debian 12's uapi headers (Linux 6.1) predate TCX (Linux 6.6); values from linux/bpf.h.
constexpr int kBpfTcxIngress = 46;         // BPF_TCX_INGRESS
constexpr int kBpfTcxEgress = 47;          // BPF_TCX_EGRESS
constexpr uint32_t kBpfFBefore = 1U << 3;  // BPF_F_BEFORE: with no relative program, the head

// A TCX link at the head of the interface's chain, so that no program before psnic's can
// redirect or drop traffic unseen. Returns the link fd or -errno.
int create_tcx_link(int prog_fd, uint32_t ifindex, int attach_type) {
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = kBpfFBefore);
  int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex),
                           static_cast<bpf_attach_type>(attach_type), &opts);
  return fd < 0 ? -errno : fd;
}

bpf_tc_hook tc_hook(uint32_t ifindex, bpf_tc_attach_point point) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = point);
  return hook;
}

// A loaded program's name ("psnic_ingress"), "" when it cannot be read.
std::string program_name_of(int prog_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) return "";
  return info.name;
}

std::string program_name(uint32_t prog_id) {
  Fd fd(bpf_prog_get_fd_by_id(prog_id));
  return fd.valid() ? program_name_of(fd.get()) : "";
}

// Attaches one cls_bpf filter with psnic's handle and priority; returns the program id.
uint32_t attach_tc_filter(int prog_fd, uint32_t ifindex, bpf_tc_attach_point point,
                          const std::string& name) {
  bpf_tc_hook hook = tc_hook(ifindex, point);
  // Creates the clsact qdisc if the interface has none. psnic never deletes it: another tool
  // may have added filters to it since.
  int err = bpf_tc_hook_create(&hook);
  if (err < 0 && err != -EEXIST) throw system_error(name + ": clsact qdisc", -err);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = kTcHandle, .priority = kTcPriority);
  err = bpf_tc_attach(&hook, &opts);
  if (err == -EEXIST) {
    // A filter outlives its agent (kill -9): one at psnic's handle that runs a program of
    // psnic's own name is an earlier psnic's, and is replaced. Anything else there is left alone.
    LIBBPF_OPTS(bpf_tc_opts, query, .handle = kTcHandle, .priority = kTcPriority);
    if (bpf_tc_query(&hook, &query) < 0 || program_name(query.prog_id) != program_name_of(prog_fd))
      throw Error(name + ": tc filter", EEXIST,
                  "handle 0x5053 priority 1 is taken by a program that is not psnic's");
    LIBBPF_OPTS(bpf_tc_opts, replace, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
                .handle = kTcHandle, .priority = kTcPriority);
    err = bpf_tc_attach(&hook, &replace);
    opts.prog_id = replace.prog_id;
  }
  if (err < 0) throw system_error(name + ": tc filter", -err);
  return opts.prog_id;
}

// Removes psnic's filter from one hook, only if it is still there and still runs psnic's
// program: a filter someone else put at the same handle and priority stays.
// The id of the program in psnic's filter on one hook, 0 when there is no such filter.
uint32_t tc_filter_prog(uint32_t ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook hook = tc_hook(ifindex, point);
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = kTcHandle, .priority = kTcPriority);
  return bpf_tc_query(&hook, &query) == 0 ? query.prog_id : 0;
}

void detach_tc_filter(uint32_t ifindex, bpf_tc_attach_point point, uint32_t prog_id) {
  if (tc_filter_prog(ifindex, point) != prog_id) return;
  bpf_tc_hook hook = tc_hook(ifindex, point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  bpf_tc_detach(&hook, &opts);
}

uint32_t prog_id(int prog_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  return bpf_obj_get_info_by_fd(prog_fd, &info, &length) == 0 ? info.id : 0;
}

// Whether program `id` is on an interface's TCX hook.
bool in_tcx_chain(uint32_t ifindex, int attach_type, uint32_t id) {
  uint32_t ids[64] = {};
  uint32_t count = 64;
  uint32_t flags = 0;
  if (bpf_prog_query(static_cast<int>(ifindex), static_cast<bpf_attach_type>(attach_type), 0,
                     &flags, ids, &count) < 0)
    return false;
  for (uint32_t i = 0; i < count; ++i)
    if (ids[i] == id) return true;
  return false;
}

}  // namespace

const char* attach_mode_name(AttachMode mode) { return mode == AttachMode::tcx ? "tcx" : "tc"; }

std::optional<AttachMode> parse_attach_mode(std::string_view text) {
  if (text == "tcx") return AttachMode::tcx;
  if (text == "tc") return AttachMode::tc;
  if (text == "auto") return std::nullopt;
  throw Error("attach mode " + std::string(text), EINVAL, "not one of auto, tcx, tc");
}

AttachMode probe_attach_mode(const TrafficProgram& program) {
  // No interface has ifindex 0: a kernel that knows TCX answers "no such device", one that does
  // not rejects the attach type itself.
  int fd = create_tcx_link(program.ingress_fd(), 0, kBpfTcxIngress);
  if (fd >= 0) {
    Fd unexpected(fd);
    return AttachMode::tcx;
  }
  return fd == -ENODEV ? AttachMode::tcx : AttachMode::tc;
}

Attachment Attachment::attach(const TrafficProgram& program, uint32_t ifindex,
                              const std::string& name, AttachMode mode) {
  Attachment a;
  a.ifindex_ = ifindex;
  a.name_ = name;
  a.mode_ = mode;
  if (mode == AttachMode::tcx) {
    int ingress = create_tcx_link(program.ingress_fd(), ifindex, kBpfTcxIngress);
    if (ingress < 0) throw system_error(name + ": tcx ingress link", -ingress);
    a.ingress_link_ = Fd(ingress);
    int egress = create_tcx_link(program.egress_fd(), ifindex, kBpfTcxEgress);
    if (egress < 0) throw system_error(name + ": tcx egress link", -egress);
    a.egress_link_ = Fd(egress);
    a.ingress_prog_id_ = prog_id(program.ingress_fd());
    a.egress_prog_id_ = prog_id(program.egress_fd());
  } else {
    a.ingress_prog_id_ = attach_tc_filter(program.ingress_fd(), ifindex, BPF_TC_INGRESS, name);
    a.attached_ = true;  // so that a failing egress attach detaches the ingress filter
    a.egress_prog_id_ = attach_tc_filter(program.egress_fd(), ifindex, BPF_TC_EGRESS, name);
  }
  a.attached_ = true;
  return a;
}

Attachment::Attachment(Attachment&& other) noexcept { *this = std::move(other); }

Attachment& Attachment::operator=(Attachment&& other) noexcept {
  if (this != &other) {
    detach();
    ifindex_ = other.ifindex_;
    name_ = std::move(other.name_);
    mode_ = other.mode_;
    attached_ = std::exchange(other.attached_, false);
    ingress_link_ = std::move(other.ingress_link_);
    egress_link_ = std::move(other.egress_link_);
    ingress_prog_id_ = other.ingress_prog_id_;
    egress_prog_id_ = other.egress_prog_id_;
  }
  return *this;
}

Attachment::~Attachment() { detach(); }

bool Attachment::intact() const {
  if (!attached_) return false;
  if (mode_ == AttachMode::tcx)
    return in_tcx_chain(ifindex_, kBpfTcxIngress, ingress_prog_id_) &&
           in_tcx_chain(ifindex_, kBpfTcxEgress, egress_prog_id_);
  return tc_filter_prog(ifindex_, BPF_TC_INGRESS) == ingress_prog_id_ &&
         tc_filter_prog(ifindex_, BPF_TC_EGRESS) == egress_prog_id_;
}

void Attachment::detach() {
  if (!attached_) {
    ingress_link_ = Fd();  // a half-made TCX attachment still closes its link
    egress_link_ = Fd();
    return;
  }
  attached_ = false;
  if (mode_ == AttachMode::tcx) {
    ingress_link_ = Fd();
    egress_link_ = Fd();
  } else {
    if (ingress_prog_id_ != 0) detach_tc_filter(ifindex_, BPF_TC_INGRESS, ingress_prog_id_);
    if (egress_prog_id_ != 0) detach_tc_filter(ifindex_, BPF_TC_EGRESS, egress_prog_id_);
  }
}

std::vector<AttachResult> attach_all(const TrafficProgram& program,
                                     const std::vector<AttachRequest>& requests, AttachMode mode) {
  std::vector<AttachResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      program.track(requests[i].ifindex);
      results[i].attachment =
          Attachment::attach(program, requests[i].ifindex, requests[i].name, mode);
    } catch (const Error& e) {
      program.untrack(requests[i].ifindex);
      results[i].error = e;
    }
  }
  return results;
}

void detach_all(std::vector<Attachment*>& attachments) {
  for (Attachment* attachment : attachments) attachment->detach();
}

}  // namespace psnic
