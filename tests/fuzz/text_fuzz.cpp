// Bytes from containers and the kernel (interface, container, pod names) made safe where psnic
// writes them (base/text.h, base/log.h): valid_utf8 gives valid UTF-8, leaves valid text as it
// is and is idempotent; append_escaped leaves no control byte and is exactly the JSON string of
// valid_utf8(input); a log line is one line in either format, and a JSON one reads back.
//
// The JSON is read back by the small reader below rather than nlohmann-json, which would make
// this the slowest harness of the fuzz build to compile.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/text.h"
#include "fuzz_check.h"

namespace {

// Reads one JSON string at `at` (its opening quote) per RFC 8259, moving `at` past its closing
// quote. \uXXXX escapes outside the surrogates only: psnic writes no others.
std::optional<std::string> read_json_string(std::string_view json, size_t& at) {
  if (at >= json.size() || json[at] != '"') return std::nullopt;
  std::string out;
  for (++at; at < json.size(); ++at) {
    const auto c = static_cast<unsigned char>(json[at]);
    if (c == '"') {
      ++at;
      return out;
    }
    if (c < 0x20) return std::nullopt;  // a raw control character: not JSON
    if (c != '\\') {
      out += static_cast<char>(c);
      continue;
    }
    if (++at >= json.size()) return std::nullopt;
    switch (json[at]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        if (at + 4 >= json.size()) return std::nullopt;
        unsigned code = 0;
        for (int i = 1; i <= 4; ++i) {
          const char h = json[at + i];
          const int digit = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
          if (digit < 0) return std::nullopt;
          code = code * 16 + static_cast<unsigned>(digit);
        }
        at += 4;
        if (code >= 0xD800 && code <= 0xDFFF) return std::nullopt;
        if (code < 0x80) {
          out += static_cast<char>(code);
        } else if (code < 0x800) {
          out += static_cast<char>(0xC0 | (code >> 6));
          out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (code >> 12));
          out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (code & 0x3F));
        }
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// A JSON object whose values are all strings, as psnic's JSON log lines are; nullopt otherwise.
std::optional<std::map<std::string, std::string>> read_json_object(std::string_view json) {
  std::map<std::string, std::string> object;
  size_t at = 0;
  if (json.empty() || json[at++] != '{') return std::nullopt;
  while (at < json.size() && json[at] != '}') {
    if (!object.empty() && json[at++] != ',') return std::nullopt;
    std::optional<std::string> key = read_json_string(json, at);
    if (!key || at >= json.size() || json[at++] != ':') return std::nullopt;
    std::optional<std::string> value = read_json_string(json, at);
    if (!value) return std::nullopt;
    object[*key] = *value;
  }
  if (at + 1 != json.size()) return std::nullopt;  // the closing brace ends the text
  return object;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using psnic::fuzz::is_utf8;

  const std::string valid = psnic::valid_utf8(text);
  PSNIC_FUZZ_CHECK(is_utf8(valid));
  PSNIC_FUZZ_CHECK(psnic::valid_utf8(valid) == valid);
  PSNIC_FUZZ_CHECK(!is_utf8(text) || valid == text);

  std::string escaped;
  psnic::append_escaped(escaped, text);
  PSNIC_FUZZ_CHECK(is_utf8(escaped));
  for (char c : escaped) {
    const auto u = static_cast<unsigned char>(c);
    PSNIC_FUZZ_CHECK(u >= 0x20 && u != 0x7f);
  }
  const std::string quoted = "\"" + escaped + "\"";
  size_t at = 0;
  const std::optional<std::string> decoded = read_json_string(quoted, at);
  PSNIC_FUZZ_CHECK(decoded && at == quoted.size() && *decoded == valid);

  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
  for (psnic::LogFormat format : {psnic::LogFormat::kLogfmt, psnic::LogFormat::kJson}) {
    const std::string line =
        psnic::format_log_line(format, when, psnic::LogLevel::kWarn, text, {{"interface", text}});
    PSNIC_FUZZ_CHECK(is_utf8(line));
    PSNIC_FUZZ_CHECK(!line.empty() && line.find('\n') == line.size() - 1);
    if (format == psnic::LogFormat::kJson) {
      const auto object = read_json_object(std::string_view(line).substr(0, line.size() - 1));
      PSNIC_FUZZ_CHECK(object && object->at("msg") == valid && object->at("interface") == valid);
    }
  }
  return 0;
}
