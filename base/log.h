// The agent's log: one line per event on stderr, with a timestamp and a level, in logfmt (as the
// Prometheus ecosystem's exporters log) or JSON. Process-wide; thread-safe.
//
//   ts=2026-11-27T10:51:02.123Z level=info msg="attached veth1a2b (tcx)"
//   {"ts":"2026-11-27T10:51:02.123Z","level":"info","msg":"attached veth1a2b (tcx)"}
//
// Values are escaped for their format, and bytes that are not UTF-8 (an interface or container
// name is whatever bytes its creator chose) become U+FFFD: a line is always one valid line.
// Usage errors before the agent starts are not log events: the mains print them as one plain
// "<program>: <cause>" line, the exit status contract README documents.
#pragma once

#include <chrono>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace psnic {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kLogfmt, kJson };

// "debug", "info", "warn", "error"; nullopt for anything else.
std::optional<LogLevel> parse_log_level(std::string_view text);
// "logfmt", "json"; nullopt for anything else.
std::optional<LogFormat> parse_log_format(std::string_view text);

// A key and its value, after the message: {"interface", "veth1a2b"}.
struct LogField {
  std::string_view key;
  std::string_view value;
};
using LogFields = std::initializer_list<LogField>;

// One line, newline included. Keys are written as given (psnic's own, [a-z_]).
std::string format_log_line(LogFormat format, std::chrono::system_clock::time_point when,
                            LogLevel level, std::string_view message, LogFields fields = {});

// Sets the format and the least level written, for the whole process. Defaults: logfmt, info.
void configure_log(LogFormat format, LogLevel level);
// Writes one line to stderr with one write(2), when `level` is at least the configured one.
void log(LogLevel level, std::string_view message, LogFields fields = {});

// A command's own line, not a log event: "<program>: <message>" on stderr whatever the log
// format, for usage errors, start-up failures that end the process and one-shot results, which
// scripts and people read (the exit status contract README documents).
void print_plain_line(std::string_view program, std::string_view message);

inline void log_debug(std::string_view message, LogFields fields = {}) {
  log(LogLevel::kDebug, message, fields);
}
inline void log_info(std::string_view message, LogFields fields = {}) {
  log(LogLevel::kInfo, message, fields);
}
inline void log_warn(std::string_view message, LogFields fields = {}) {
  log(LogLevel::kWarn, message, fields);
}
inline void log_error(std::string_view message, LogFields fields = {}) {
  log(LogLevel::kError, message, fields);
}

}  // namespace psnic
