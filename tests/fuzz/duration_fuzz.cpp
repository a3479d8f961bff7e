// Durations (parse_duration), as the agent's flags take them. Anything that is not a duration is an
// Error(EINVAL), never another exception or a negative or overlong value; what parses reads back
// the same in milliseconds.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/duration.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr std::chrono::milliseconds kWeek = std::chrono::hours(24 * 7);
  std::chrono::milliseconds parsed;
  try {
    parsed = psnic::parse_duration(text);
  } catch (const psnic::Error& e) {
    PSNIC_FUZZ_CHECK(e.errnum() == EINVAL);
    return 0;
  }
  PSNIC_FUZZ_CHECK(parsed.count() >= 0 && parsed <= kWeek);
  PSNIC_FUZZ_CHECK(psnic::parse_duration(std::to_string(parsed.count()) + "ms") == parsed);
  if (parsed.count() % 1000 == 0)
    PSNIC_FUZZ_CHECK(psnic::parse_duration(std::to_string(parsed.count() / 1000)) == parsed);
  return 0;
}
