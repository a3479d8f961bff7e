#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace psnic {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kLogfmt};
std::atomic<LogLevel> g_level{LogLevel::kInfo};

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or 0 when it is not one.
size_t utf8_sequence(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  return n;
}

// Appends `value` escaped as the inside of a double-quoted logfmt or JSON string.
void append_escaped(std::string& out, std::string_view value) {
  static const char kHex[] = "0123456789abcdef";
  while (!value.empty()) {
    const unsigned char c = static_cast<unsigned char>(value[0]);
    const size_t n = utf8_sequence(value);
    if (n == 0) {
      out += kReplacement;
      value.remove_prefix(1);
      continue;
    }
    if (n > 1) {
      out.append(value.substr(0, n));
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
    value.remove_prefix(n);
  }
}

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
