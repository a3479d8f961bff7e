#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "base/text.h"

namespace psnic {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kLogfmt};
std::atomic<LogLevel> g_level{LogLevel::kInfo};

// logfmt writes a value bare unless it is empty or holds a space, '=', '"', '\', a control
// character or a byte that is not UTF-8.
bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (size_t i = 0; i < value.size();) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    const size_t n = utf8_sequence(value.substr(i));
    if (n == 0 || c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7F) return true;
    i += n;
  }
  return false;
}

void append_logfmt(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  if (!needs_quotes(value)) {
    out += value;
    return;
  }
  out += '"';
  append_escaped(out, value);
  out += '"';
}

void append_json(std::string& out, std::string_view key, std::string_view value) {
  out += out.empty() ? "{\"" : ",\"";
  out += key;
  out += "\":\"";
  append_escaped(out, value);
  out += '"';
}

// RFC 3339 in UTC with milliseconds: 2026-11-27T10:51:02.123Z.
std::string timestamp(std::chrono::system_clock::time_point when) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buffer;
}

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view text) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError})
    if (text == level_name(level)) return level;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view text) {
  if (text == "logfmt") return LogFormat::kLogfmt;
  if (text == "json") return LogFormat::kJson;
  return std::nullopt;
}

std::string format_log_line(LogFormat format, std::chrono::system_clock::time_point when,
                            LogLevel level, std::string_view message, LogFields fields) {
  const auto append = format == LogFormat::kJson ? append_json : append_logfmt;
  std::string line;
  line.reserve(64 + message.size());
  append(line, "ts", timestamp(when));
  append(line, "level", level_name(level));
  append(line, "msg", message);
  for (const LogField& field : fields) append(line, field.key, field.value);
  if (format == LogFormat::kJson) line += '}';
  line += '\n';
  return line;
}

void configure_log(LogFormat format, LogLevel level) {
  g_format.store(format);
  g_level.store(level);
}

namespace {

// One write per line, so that lines of several threads never interleave; a closed stderr loses
// the line, never the process.
void write_line(std::string_view line) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void log(LogLevel level, std::string_view message, LogFields fields) {
  if (level < g_level.load(std::memory_order_relaxed)) return;
  write_line(format_log_line(g_format.load(std::memory_order_relaxed),
                             std::chrono::system_clock::now(), level, message, fields));
}

void print_plain_line(std::string_view program, std::string_view message) {
  std::string line;
  line.reserve(program.size() + message.size() + 3);
  line.append(program).append(": ").append(message).append("\n");
  write_line(line);
}

}  // namespace psnic
