#include "tests/support/agent_log.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace psnic::test {
namespace {

bool has_log_keys(const LogRecord& record) {
  return record.count("ts") && record.count("level") && record.count("msg");
}

// The inside of a double-quoted logfmt value from `at` (just past the opening quote) to the
// closing quote, unescaped; `at` ends past the closing quote. nullopt for a bad escape or no
// closing quote.
std::optional<std::string> quoted_value(std::string_view line, size_t& at) {
  std::string value;
  while (at < line.size()) {
    const char c = line[at++];
    if (c == '"') return value;
    if (c != '\\') {
      value += c;
      continue;
    }
    if (at >= line.size()) return std::nullopt;
    switch (const char escaped = line[at++]) {
      case '"':
      case '\\':
        value += escaped;
        break;
      case 'n':
        value += '\n';
        break;
      case 'r':
        value += '\r';
        break;
      case 't':
        value += '\t';
        break;
      case 'u': {
        // base/log writes \u00XX for the control characters it has no short escape for.
        if (at + 4 > line.size()) return std::nullopt;
        const std::string hex(line.substr(at, 4));
        if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
          return std::nullopt;
        const unsigned long code = std::stoul(hex, nullptr, 16);
        if (code > 0x7F) return std::nullopt;
        value += static_cast<char>(code);
        at += 4;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<LogRecord> parse_logfmt_line(std::string_view line) {
  LogRecord record;
  size_t at = 0;
  while (at < line.size()) {
    if (!record.empty() && (line[at++] != ' ' || at >= line.size())) return std::nullopt;
    const size_t equals = line.find('=', at);
    if (equals == std::string_view::npos || equals == at) return std::nullopt;
    std::string key(line.substr(at, equals - at));
    if (key.find_first_of(" \"\\") != std::string::npos) return std::nullopt;
    at = equals + 1;
    std::optional<std::string> value;
    if (at < line.size() && line[at] == '"') {
      ++at;
      value = quoted_value(line, at);
      if (at < line.size() && line[at] != ' ') return std::nullopt;
    } else {
      const size_t end = std::min(line.find(' ', at), line.size());
      value = std::string(line.substr(at, end - at));
      // base/log quotes an empty value and one holding any of these.
      if (value->empty() || value->find_first_of("=\"\\") != std::string::npos) return std::nullopt;
      at = end;
    }
    if (!value || !record.emplace(std::move(key), std::move(*value)).second) return std::nullopt;
  }
  if (!has_log_keys(record)) return std::nullopt;
  return record;
}

std::optional<LogRecord> parse_json_log_line(std::string_view line) {
  const nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) return std::nullopt;  // a parse error is "discarded", not an object
  LogRecord record;
  for (const auto& [key, value] : object.items()) {
    if (!value.is_string()) return std::nullopt;
    record.emplace(key, value.get<std::string>());
  }
  if (!has_log_keys(record)) return std::nullopt;
  return record;
}

std::vector<LogRecord> parse_log(std::string_view text) {
  std::vector<LogRecord> log;
  while (!text.empty()) {
    const size_t end = std::min(text.find('\n'), text.size());
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    std::optional<LogRecord> record =
        line.starts_with('{') ? parse_json_log_line(line) : parse_logfmt_line(line);
    if (record) log.push_back(std::move(*record));
  }
  return log;
}

bool has_fields(const LogRecord& record, const LogRecord& fields) {
  return std::all_of(fields.begin(), fields.end(), [&](const auto& field) {
    auto it = record.find(field.first);
    return it != record.end() && it->second == field.second;
  });
}

std::optional<LogRecord> find_logged(const std::vector<LogRecord>& log, std::string_view msg,
                                     const LogRecord& fields) {
  for (const LogRecord& record : log)
    if (record.at("msg") == msg && has_fields(record, fields)) return record;
  return std::nullopt;
}

std::vector<std::string> messages(const std::vector<LogRecord>& log) {
  std::vector<std::string> all;
  for (const LogRecord& record : log) all.push_back(record.at("msg"));
  return all;
}

}  // namespace psnic::test
