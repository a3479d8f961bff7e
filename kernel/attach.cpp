#include "kernel/attach.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <utility>

#include "base/error.h"

namespace psnic {
namespace {

// Debian 12's uapi headers (Linux 6.1) predate TCX (Linux 6.6); values from linux/bpf.h.
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

// What tells one loaded program from another: psnic's by name, an earlier pinned agent's by the
// map it writes, the same code by its tag.
struct ProgramFacts {
  uint32_t id = 0;
  std::string name;  // "psnic_ingress"
  std::array<uint8_t, BPF_TAG_SIZE> tag{};
  std::vector<uint32_t> map_ids;
};

ProgramFacts program_facts_of(int prog_fd) {
  ProgramFacts facts;
  std::array<uint32_t, 8> map_ids{};
  bpf_prog_info info{};
  info.nr_map_ids = map_ids.size();
  info.map_ids = reinterpret_cast<uintptr_t>(map_ids.data());
  uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &length) != 0) return facts;
  facts.id = info.id;
  facts.name = info.name;
  std::memcpy(facts.tag.data(), info.tag, facts.tag.size());
  facts.map_ids.assign(map_ids.begin(),
                       map_ids.begin() + std::min<size_t>(info.nr_map_ids, map_ids.size()));
  return facts;
}

ProgramFacts program_facts(uint32_t prog_id) {
  Fd fd(bpf_prog_get_fd_by_id(prog_id));
  return fd.valid() ? program_facts_of(fd.get()) : ProgramFacts{};
}

std::string program_name_of(int prog_fd) { return program_facts_of(prog_fd).name; }
std::string program_name(uint32_t prog_id) { return program_facts(prog_id).name; }

bool writes_map(const ProgramFacts& facts, uint32_t map_id) {
  return map_id != 0 &&
         std::find(facts.map_ids.begin(), facts.map_ids.end(), map_id) != facts.map_ids.end();
}

// Attaches one cls_bpf filter with psnic's `handle` and priority; returns the program id.
uint32_t attach_tc_filter(int prog_fd, uint32_t ifindex, bpf_tc_attach_point point,
                          const std::string& name, uint32_t handle) {
  bpf_tc_hook hook = tc_hook(ifindex, point);
  // Creates the clsact qdisc if the interface has none. psnic never deletes it: another tool
  // may have added filters to it since.
  int err = bpf_tc_hook_create(&hook);
  if (err < 0 && err != -EEXIST) throw system_error(name + ": clsact qdisc", -err);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = handle, .priority = kTcPriority);
  err = bpf_tc_attach(&hook, &opts);
  if (err == -EEXIST) {
    // A filter outlives its agent (kill -9): one at psnic's handle that runs a program of
    // psnic's own name is an earlier psnic's, and is replaced. Anything else there is left alone.
    LIBBPF_OPTS(bpf_tc_opts, query, .handle = handle, .priority = kTcPriority);
    if (bpf_tc_query(&hook, &query) < 0 ||
        program_name(query.prog_id) != program_name_of(prog_fd)) {
      char taken[64];
      std::snprintf(taken, sizeof taken, "handle 0x%x priority %u", handle, kTcPriority);
      throw Error(name + ": tc filter", EEXIST,
                  std::string(taken) + " is taken by a program that is not psnic's");
    }
    LIBBPF_OPTS(bpf_tc_opts, replace, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
                .handle = handle, .priority = kTcPriority);
    err = bpf_tc_attach(&hook, &replace);
    opts.prog_id = replace.prog_id;
  }
  if (err < 0) throw system_error(name + ": tc filter", -err);
  return opts.prog_id;
}

// The id of the program in psnic's filter at `handle` on one hook, 0 when there is no such
// filter.
uint32_t tc_filter_prog(uint32_t ifindex, bpf_tc_attach_point point, uint32_t handle) {
  bpf_tc_hook hook = tc_hook(ifindex, point);
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = handle, .priority = kTcPriority);
  return bpf_tc_query(&hook, &query) == 0 ? query.prog_id : 0;
}

// Removes psnic's filter from one hook, only if it is still there and still runs program
// `prog_id`: a filter someone else put at the same handle and priority stays.
void detach_tc_filter(uint32_t ifindex, bpf_tc_attach_point point, uint32_t handle,
                      uint32_t prog_id) {
  if (tc_filter_prog(ifindex, point, handle) != prog_id) return;
  bpf_tc_hook hook = tc_hook(ifindex, point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = kTcPriority);
  bpf_tc_detach(&hook, &opts);
}

bpf_tc_attach_point tc_point(bool ingress) { return ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS; }
int tcx_type(bool ingress) { return ingress ? kBpfTcxIngress : kBpfTcxEgress; }

// A pinned TCX link still attached to `ifindex` on the hook of `ingress`, with its program's id;
// an invalid Fd when the pin is missing or its link no longer attached there.
Fd live_pinned_link(const PinDir& pins, uint32_t ifindex, bool ingress, uint32_t& link_prog) {
  Fd link = pins.pinned_link(ifindex, ingress);
  if (!link.valid()) return link;
  TcxLinkInfo info;
  uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(link.get(), &info, &length) != 0 || info.type != kBpfLinkTypeTcx ||
      info.ifindex != ifindex || info.attach_type != static_cast<uint32_t>(tcx_type(ingress)))
    return Fd();
  link_prog = info.prog_id;
  return link;
}

// Runs the code of program `id` (tag `tag`, fd `program_fd`) on a link whose program may be an
// older psnic's. Switching programs waits for an RCU grace period in the kernel, so a link
// running the same code is left alone.
void run_program_on_link(int link_fd, uint32_t& link_prog, int program_fd, uint32_t id,
                         const TrafficProgram::Tag& tag, const std::string& what) {
  if (program_facts(link_prog).tag == tag) return;
  if (bpf_link_update(link_fd, program_fd, nullptr) < 0) throw system_error(what, errno);
  link_prog = id;
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
                              const std::string& name, AttachMode mode, const PinDir* pins) {
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
    a.ingress_prog_id_ = program.ids().ingress;
    a.egress_prog_id_ = program.ids().egress;
    if (pins != nullptr) {
      a.pins_ = pins;
      a.attached_ = true;  // so that a failing pin unpins what was pinned
      pins->pin_link(a.ingress_link_.get(), ifindex, true);
      pins->pin_link(a.egress_link_.get(), ifindex, false);
    }
  } else {
    a.tc_handle_ = pins != nullptr ? kTcHandle : kTcEphemeralHandle;
    a.ingress_prog_id_ =
        attach_tc_filter(program.ingress_fd(), ifindex, BPF_TC_INGRESS, name, a.tc_handle_);
    a.attached_ = true;  // so that a failing egress attach detaches the ingress filter
    a.egress_prog_id_ =
        attach_tc_filter(program.egress_fd(), ifindex, BPF_TC_EGRESS, name, a.tc_handle_);
  }
  a.attached_ = true;
  return a;
}

std::optional<Attachment> Attachment::adopt(const TrafficProgram& program, uint32_t ifindex,
                                            const std::string& name, AttachMode mode,
                                            const PinDir& pins) {
  Attachment a;
  a.ifindex_ = ifindex;
  a.name_ = name;
  a.mode_ = mode;
  if (mode == AttachMode::tcx) {
    a.ingress_link_ = live_pinned_link(pins, ifindex, true, a.ingress_prog_id_);
    a.egress_link_ = live_pinned_link(pins, ifindex, false, a.egress_prog_id_);
    if (!a.ingress_link_.valid() || !a.egress_link_.valid()) return std::nullopt;
    a.pins_ = &pins;
    a.attached_ = true;
    const TrafficProgram::Ids& ours = program.ids();
    run_program_on_link(a.ingress_link_.get(), a.ingress_prog_id_, program.ingress_fd(),
                        ours.ingress, ours.ingress_tag, name + ": tcx ingress link");
    run_program_on_link(a.egress_link_.get(), a.egress_prog_id_, program.egress_fd(), ours.egress,
                        ours.egress_tag, name + ": tcx egress link");
    return a;
  }
  for (bool ingress : {true, false}) {
    ProgramFacts facts = program_facts(tc_filter_prog(ifindex, tc_point(ingress), kTcHandle));
    if (!writes_map(facts, program.ids().map)) return std::nullopt;
    (ingress ? a.ingress_prog_id_ : a.egress_prog_id_) = facts.id;
  }
  a.tc_handle_ = kTcHandle;
  a.attached_ = true;
  // An older psnic's code is replaced in place: cls_bpf swaps the program atomically.
  for (bool ingress : {true, false}) {
    int fd = ingress ? program.ingress_fd() : program.egress_fd();
    uint32_t& id = ingress ? a.ingress_prog_id_ : a.egress_prog_id_;
    const TrafficProgram::Tag& tag = ingress ? program.ids().ingress_tag : program.ids().egress_tag;
    if (program_facts(id).tag != tag)
      id = attach_tc_filter(fd, ifindex, tc_point(ingress), name, kTcHandle);
  }
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
    pins_ = other.pins_;
    tc_handle_ = other.tc_handle_;
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
  return tc_filter_prog(ifindex_, BPF_TC_INGRESS, tc_handle_) == ingress_prog_id_ &&
         tc_filter_prog(ifindex_, BPF_TC_EGRESS, tc_handle_) == egress_prog_id_;
}

void Attachment::detach() {
  if (!attached_) {
    ingress_link_ = Fd();  // a half-made TCX attachment still closes its link
    egress_link_ = Fd();
    return;
  }
  attached_ = false;
  if (mode_ == AttachMode::tcx) {
    if (pins_ != nullptr) {
      pins_->unpin_link(ifindex_, true);
      pins_->unpin_link(ifindex_, false);
    }
    ingress_link_ = Fd();
    egress_link_ = Fd();
  } else {
    if (ingress_prog_id_ != 0)
      detach_tc_filter(ifindex_, BPF_TC_INGRESS, tc_handle_, ingress_prog_id_);
    if (egress_prog_id_ != 0)
      detach_tc_filter(ifindex_, BPF_TC_EGRESS, tc_handle_, egress_prog_id_);
  }
}

void Attachment::release() {
  attached_ = false;
  ingress_link_ = Fd();
  egress_link_ = Fd();
}

size_t remove_tc_filters_of_map(uint32_t ifindex, uint32_t map_id) {
  size_t removed = 0;
  for (bool ingress : {true, false}) {
    uint32_t id = tc_filter_prog(ifindex, tc_point(ingress), kTcHandle);
    if (id != 0 && writes_map(program_facts(id), map_id)) {
      detach_tc_filter(ifindex, tc_point(ingress), kTcHandle, id);
      ++removed;
    }
  }
  return removed;
}

void remove_remnants(const TrafficProgram& program, uint32_t ifindex, const PinDir& pins) {
  pins.unpin_link(ifindex, true);
  pins.unpin_link(ifindex, false);
  remove_tc_filters_of_map(ifindex, program.ids().map);
}

std::vector<AttachResult> attach_all(const TrafficProgram& program,
                                     const std::vector<AttachRequest>& requests, AttachMode mode,
                                     const PinDir* pins) {
  std::vector<AttachResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      program.track(requests[i].ifindex);
      results[i].attachment =
          Attachment::attach(program, requests[i].ifindex, requests[i].name, mode, pins);
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
