#include "program_facts.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "base/fd.h"

namespace psnic {

static_assert(sizeof(TrafficProgram::Tag) == BPF_TAG_SIZE);

bool ProgramFacts::writes_map(uint32_t map_id) const {
  return map_id != 0 && std::find(map_ids.begin(), map_ids.end(), map_id) != map_ids.end();
}

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

}  // namespace psnic
