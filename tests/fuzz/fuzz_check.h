// What every harness shares: an invariant check that holds in every build type, and the UTF-8
// check the invariants about text use.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/text.h"

// A violated invariant aborts, which libFuzzer reports as a crash and saves the input for.
#define PSNIC_FUZZ_CHECK(condition)                                                            \
  do {                                                                                         \
    if (!(condition)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

namespace psnic::fuzz {

inline bool is_utf8(std::string_view text) {
  while (!text.empty()) {
    const size_t n = utf8_sequence(text);
    if (n == 0) return false;
    text.remove_prefix(n);
  }
  return true;
}

}  // namespace psnic::fuzz
