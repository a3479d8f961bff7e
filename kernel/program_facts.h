// What the kernel says about a loaded program, for telling psnic's programs from others':
// psnic's by name, an earlier pinned agent's by the map it writes, the same code by its tag.
// Private to the kernel layer (not exposed by psnic_kernel).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernel/program.h"

namespace psnic {

struct ProgramFacts {
  uint32_t id = 0;
  std::string name;  // "psnic_ingress"
  TrafficProgram::Tag tag{};
  std::vector<uint32_t> map_ids;

  bool writes_map(uint32_t map_id) const;
};

// Empty facts (id 0) when the program cannot be looked at (gone, or no id).
ProgramFacts program_facts_of(int prog_fd);
ProgramFacts program_facts(uint32_t prog_id);

}  // namespace psnic
