// Bytes from containers and the kernel (interface, container, pod names) made safe where psnic
// writes them (base/text.h, base/log.h): valid_utf8 gives valid UTF-8, leaves valid text as it
// is and is idempotent; append_escaped leaves no control byte and is exactly the JSON string of
// valid_utf8(input); a log line is one line in either format, and a JSON one reads back.
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/text.h"
#include "fuzz_check.h"

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
  const auto decoded = nlohmann::json::parse("\"" + escaped + "\"", nullptr, false);
  PSNIC_FUZZ_CHECK(decoded.is_string() && decoded.get<std::string>() == valid);

  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
  for (psnic::LogFormat format : {psnic::LogFormat::kLogfmt, psnic::LogFormat::kJson}) {
    const std::string line =
        psnic::format_log_line(format, when, psnic::LogLevel::kWarn, text, {{"interface", text}});
    PSNIC_FUZZ_CHECK(is_utf8(line));
    PSNIC_FUZZ_CHECK(!line.empty() && line.find('\n') == line.size() - 1);
    if (format == psnic::LogFormat::kJson) {
      const auto doc = nlohmann::json::parse(line, nullptr, false);
      PSNIC_FUZZ_CHECK(doc.is_object());
      PSNIC_FUZZ_CHECK(doc.value("msg", "") == valid && doc.value("interface", "") == valid);
    }
  }
  return 0;
}
