#include "kernel/tcx.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <utility>

#include "base/error.h"
#include "program_facts.h"
#include "tcx_uapi.h"

namespace psnic {
namespace {

int attach_type(bool ingress) { return ingress ? kBpfTcxIngress : kBpfTcxEgress; }

// A TCX link at the head of the interface's chain, so that no program before psnic's can
// redirect or drop traffic unseen. Returns the link fd or -errno.
int create_link(int prog_fd, uint32_t ifindex, bool ingress) {
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = kBpfFBefore);
  int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex),
                           static_cast<bpf_attach_type>(attach_type(ingress)), &opts);
  return fd < 0 ? -errno : fd;
}

// A pinned TCX link still attached to `ifindex` on the hook of `ingress`, with its program's id;
// an invalid Fd when the pin is missing or its link no longer attached there.
Fd live_pinned_link(const PinDir& pins, uint32_t ifindex, bool ingress, uint32_t& link_prog) {
  Fd link = pins.pinned_link(ifindex, ingress);
  if (!link.valid()) return link;
  TcxLinkInfo info;
  uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(link.get(), &info, &length) != 0 || info.type != kBpfLinkTypeTcx ||
      info.ifindex != ifindex || info.attach_type != static_cast<uint32_t>(attach_type(ingress)))
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
bool in_chain(uint32_t ifindex, bool ingress, uint32_t id) {
  uint32_t ids[64] = {};
  uint32_t count = 64;
  uint32_t flags = 0;
  if (bpf_prog_query(static_cast<int>(ifindex), static_cast<bpf_attach_type>(attach_type(ingress)),
                     0, &flags, ids, &count) < 0)
    return false;
  for (uint32_t i = 0; i < count; ++i)
    if (ids[i] == id) return true;
  return false;
}

}  // namespace

TcxLinks TcxLinks::attach(const TrafficProgram& program, uint32_t ifindex, const std::string& name,
                          const PinDir* pins) {
  TcxLinks links(ifindex);
  int ingress = create_link(program.ingress_fd(), ifindex, true);
  if (ingress < 0) throw system_error(name + ": tcx ingress link", -ingress);
  links.ingress_ = Fd(ingress);
  int egress = create_link(program.egress_fd(), ifindex, false);
  if (egress < 0) throw system_error(name + ": tcx egress link", -egress);
  links.egress_ = Fd(egress);
  links.ingress_prog_ = program.ids().ingress;
  links.egress_prog_ = program.ids().egress;
  if (pins != nullptr) {
    links.pins_ = pins;  // so that a failing pin unpins what was pinned
    pins->pin_link(links.ingress_.get(), ifindex, true);
    pins->pin_link(links.egress_.get(), ifindex, false);
  }
  return links;
}

std::optional<TcxLinks> TcxLinks::adopt(const TrafficProgram& program, uint32_t ifindex,
                                        const std::string& name, const PinDir& pins) {
  TcxLinks links(ifindex);
  links.ingress_ = live_pinned_link(pins, ifindex, true, links.ingress_prog_);
  links.egress_ = live_pinned_link(pins, ifindex, false, links.egress_prog_);
  if (!links.ingress_.valid() || !links.egress_.valid()) {
    links.release();  // someone else's to clean up: remove_remnants()
    return std::nullopt;
  }
  links.pins_ = &pins;
  const TrafficProgram::Ids& ours = program.ids();
  run_program_on_link(links.ingress_.get(), links.ingress_prog_, program.ingress_fd(), ours.ingress,
                      ours.ingress_tag, name + ": tcx ingress link");
  run_program_on_link(links.egress_.get(), links.egress_prog_, program.egress_fd(), ours.egress,
                      ours.egress_tag, name + ": tcx egress link");
  return links;
}

bool TcxLinks::supported(const TrafficProgram& program) {
  // No interface has ifindex 0: a kernel that knows TCX answers "no such device", one that does
  // not rejects the attach type itself.
  int fd = create_link(program.ingress_fd(), 0, true);
  if (fd >= 0) {
    Fd unexpected(fd);
    return true;
  }
  return fd == -ENODEV;
}

TcxLinks::TcxLinks(TcxLinks&& other) noexcept { *this = std::move(other); }

TcxLinks& TcxLinks::operator=(TcxLinks&& other) noexcept {
  if (this != &other) {
    detach();
    ifindex_ = other.ifindex_;
    pins_ = std::exchange(other.pins_, nullptr);
    ingress_ = std::move(other.ingress_);
    egress_ = std::move(other.egress_);
    ingress_prog_ = other.ingress_prog_;
    egress_prog_ = other.egress_prog_;
  }
  return *this;
}

bool TcxLinks::intact() const {
  return ingress_.valid() && in_chain(ifindex_, true, ingress_prog_) &&
         in_chain(ifindex_, false, egress_prog_);
}

void TcxLinks::detach() {
  if (pins_ != nullptr) {
    pins_->unpin_link(ifindex_, true);
    pins_->unpin_link(ifindex_, false);
    pins_ = nullptr;
  }
  ingress_ = Fd();
  egress_ = Fd();
}

void TcxLinks::release() {
  pins_ = nullptr;
  ingress_ = Fd();
  egress_ = Fd();
}

}  // namespace psnic
