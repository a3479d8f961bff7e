#pragma once
// Command-line handling shared by psnic and psnic-agent (header-only: only mains include it).

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "base/log.h"

namespace psnic {

// Parses argv. --help and --version print and give 0; a usage error (including one `validate`
// throws as CLI::ValidationError) is one stderr line, "<app name>: <cause> (see --help)", and
// gives 2. nullopt: parsed, go on.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                             const std::function<void()>& validate = {}) {
  try {
    app.parse(argc, argv);
    if (validate) validate();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (!what.empty())
      what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
    print_plain_line(app.get_name(), what + " (see --help)");
    return 2;
  }
  return std::nullopt;
}

}  // namespace psnic
