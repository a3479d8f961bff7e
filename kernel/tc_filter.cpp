#include "kernel/tc_filter.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "base/error.h"
#include "program_facts.h"

namespace psnic {
namespace {

bpf_tc_attach_point point(bool ingress) { return ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS; }

bpf_tc_hook tc_hook(uint32_t ifindex, bool ingress) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = point(ingress));
  return hook;
}

// Attaches one filter with psnic's `handle` and priority; returns the program id.
uint32_t attach_filter(int prog_fd, uint32_t ifindex, bool ingress, const std::string& name,
                       uint32_t handle) {
  bpf_tc_hook hook = tc_hook(ifindex, ingress);
  int err = bpf_tc_hook_create(&hook);
  if (err < 0 && err != -EEXIST) throw system_error(name + ": clsact qdisc", -err);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = handle, .priority = kTcPriority);
  err = bpf_tc_attach(&hook, &opts);
  if (err == -EEXIST) {
    // A filter outlives its agent (kill -9): one at psnic's handle that runs a program of
    // psnic's own name is an earlier psnic's, and is replaced. Anything else there is left alone.
    LIBBPF_OPTS(bpf_tc_opts, query, .handle = handle, .priority = kTcPriority);
    if (bpf_tc_query(&hook, &query) < 0 ||
        program_facts(query.prog_id).name != program_facts_of(prog_fd).name) {
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
uint32_t filter_prog(uint32_t ifindex, bool ingress, uint32_t handle) {
  bpf_tc_hook hook = tc_hook(ifindex, ingress);
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = handle, .priority = kTcPriority);
  return bpf_tc_query(&hook, &query) == 0 ? query.prog_id : 0;
}

// Removes psnic's filter from one hook, only if it is still there and still runs program
// `prog_id`: a filter someone else put at the same handle and priority stays.
void detach_filter(uint32_t ifindex, bool ingress, uint32_t handle, uint32_t prog_id) {
  if (prog_id == 0 || filter_prog(ifindex, ingress, handle) != prog_id) return;
  bpf_tc_hook hook = tc_hook(ifindex, ingress);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = kTcPriority);
  bpf_tc_detach(&hook, &opts);
}

}  // namespace

TcFilters TcFilters::attach(const TrafficProgram& program, uint32_t ifindex,
                            const std::string& name, bool pinned) {
  TcFilters filters(ifindex, pinned ? kTcHandle : kTcEphemeralHandle);
  filters.attached_ = true;  // so that a failing egress attach removes the ingress filter
  filters.ingress_prog_ = attach_filter(program.ingress_fd(), ifindex, true, name, filters.handle_);
  filters.egress_prog_ = attach_filter(program.egress_fd(), ifindex, false, name, filters.handle_);
  return filters;
}

std::optional<TcFilters> TcFilters::adopt(const TrafficProgram& program, uint32_t ifindex,
                                          const std::string& name) {
  TcFilters filters(ifindex, kTcHandle);
  for (bool ingress : {true, false}) {
    ProgramFacts facts = program_facts(filter_prog(ifindex, ingress, kTcHandle));
    // Either map: filters an agent of the other --split setting left are adopted too, and
    // switched to this pair below (their code differs).
    if (!facts.writes_map(program.ids().map) && !facts.writes_map(program.ids().idle_map))
      return std::nullopt;
    (ingress ? filters.ingress_prog_ : filters.egress_prog_) = facts.id;
  }
  filters.attached_ = true;
  for (bool ingress : {true, false}) {
    const int fd = ingress ? program.ingress_fd() : program.egress_fd();
    uint32_t& id = ingress ? filters.ingress_prog_ : filters.egress_prog_;
    const TrafficProgram::Tag& tag = ingress ? program.ids().ingress_tag : program.ids().egress_tag;
    if (program_facts(id).tag != tag) id = attach_filter(fd, ifindex, ingress, name, kTcHandle);
  }
  return filters;
}

TcFilters::TcFilters(TcFilters&& other) noexcept { *this = std::move(other); }

TcFilters& TcFilters::operator=(TcFilters&& other) noexcept {
  if (this != &other) {
    detach();
    ifindex_ = other.ifindex_;
    handle_ = other.handle_;
    attached_ = std::exchange(other.attached_, false);
    ingress_prog_ = other.ingress_prog_;
    egress_prog_ = other.egress_prog_;
  }
  return *this;
}

bool TcFilters::intact() const {
  return attached_ && filter_prog(ifindex_, true, handle_) == ingress_prog_ &&
         filter_prog(ifindex_, false, handle_) == egress_prog_;
}

void TcFilters::detach() {
  if (!std::exchange(attached_, false)) return;
  detach_filter(ifindex_, true, handle_, ingress_prog_);
  detach_filter(ifindex_, false, handle_, egress_prog_);
}

void TcFilters::release() { attached_ = false; }

size_t remove_tc_filters_of_map(uint32_t ifindex, uint32_t map_id) {
  size_t removed = 0;
  for (bool ingress : {true, false}) {
    const uint32_t id = filter_prog(ifindex, ingress, kTcHandle);
    if (id != 0 && program_facts(id).writes_map(map_id)) {
      detach_filter(ifindex, ingress, kTcHandle, id);
      ++removed;
    }
  }
  return removed;
}

}  // namespace psnic
