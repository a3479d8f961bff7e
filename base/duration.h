// Durations as the agent's flags take them. Header-only and free of the kernel, so that main
// checks them before anything touches the host and unit tests run them without root.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/error.h"

namespace psnic {

// "500ms", "30s", "2m", "1h", several of these largest unit first ("1m30s", "1h5m"), or a plain
// number of seconds ("1.5"). Throws Error("duration <text>", EINVAL, <cause>) when it is none of
// these, negative, or longer than a week.
inline std::chrono::milliseconds parse_duration(std::string_view text) {
  auto bad = [&](const char* why) { return Error("duration " + std::string(text), EINVAL, why); };
  constexpr const char* kForms = "not a duration such as 500ms, 30s, 2m, 1h or 1m30s";
  struct Unit {
    std::string_view name;
    double ms;
  };
  // Longest name first: "m" is a prefix of "ms".
  static constexpr Unit kUnits[] = {{"ms", 1}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
  double ms = 0;
  double last_unit = 0;  // 0: no part read yet
  if (text.empty()) throw bad(kForms);
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t unit_at = rest.find_first_not_of("0123456789.");
    std::string number(rest.substr(0, unit_at));
    if (number.find_first_of("0123456789") == std::string::npos ||
        number.find('.') != number.rfind('.'))
      throw bad(kForms);
    rest = unit_at == std::string_view::npos ? "" : rest.substr(unit_at);
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits)
      if (rest.substr(0, u.name.size()) == u.name) {
        unit = &u;
        break;
      }
    if (unit == nullptr) {
      if (!rest.empty()) throw bad("unknown unit, use ms, s, m or h");
      // A bare number is seconds, but only alone: "1m30" is a slip, not 1m30s.
      if (last_unit != 0) throw bad(kForms);
      ms = std::strtod(number.c_str(), nullptr) * 1000;
      break;
    }
    if (last_unit != 0 && unit->ms >= last_unit) throw bad("units go largest first, once each");
    last_unit = unit->ms;
    ms += std::strtod(number.c_str(), nullptr) * unit->ms;
    rest = rest.substr(unit->name.size());
  }
  if (ms > 7.0 * 24 * 3600 * 1000) throw bad("longer than a week");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

}  // namespace psnic
