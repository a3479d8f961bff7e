#include "base/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "tests/support/captured_stderr.h"

namespace psnic {
namespace {

// 2026-11-27T10:51:02.123Z
const std::chrono::system_clock::time_point kWhen{std::chrono::milliseconds(1795776662123)};

TEST(Log, LogfmtQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(format_log_line(LogFormat::kLogfmt, kWhen, LogLevel::kInfo, "attached veth1 (tcx)",
                            {{"interface", "veth1"}, {"container", ""}}),
            "ts=2026-11-27T10:51:02.123Z level=info msg=\"attached veth1 (tcx)\" "
            "interface=veth1 container=\"\"\n");
  EXPECT_EQ(format_log_line(LogFormat::kLogfmt, kWhen, LogLevel::kWarn, "a=b \"c\" \\d"),
            "ts=2026-11-27T10:51:02.123Z level=warn msg=\"a=b \\\"c\\\" \\\\d\"\n");
  // Valid UTF-8 needs no quotes.
  EXPECT_EQ(format_log_line(LogFormat::kLogfmt, kWhen, LogLevel::kDebug, "caf\xC3\xA9"),
            "ts=2026-11-27T10:51:02.123Z level=debug msg=caf\xC3\xA9\n");
}

TEST(Log, JsonEscapesEveryString) {
  EXPECT_EQ(format_log_line(LogFormat::kJson, kWhen, LogLevel::kError, "line\nbreak\t\"q\"\x01",
                            {{"interface", "veth1"}}),
            "{\"ts\":\"2026-11-27T10:51:02.123Z\",\"level\":\"error\","
            "\"msg\":\"line\\nbreak\\t\\\"q\\\"\\u0001\",\"interface\":\"veth1\"}\n");
}

// A name is whatever bytes its creator chose: the line stays one valid UTF-8 line.
TEST(Log, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  const std::string replacement = "\xEF\xBF\xBD";
  for (LogFormat format : {LogFormat::kLogfmt, LogFormat::kJson}) {
    // A lone continuation byte, an overlong '/', a surrogate, a truncated sequence, and 0xFF.
    const std::string line = format_log_line(format, kWhen, LogLevel::kInfo,
                                             "a\x80"
                                             "b\xC0\xAF"
                                             "c\xED\xA0\x80"
                                             "d\xE2\x82"
                                             "e\xFF");
    EXPECT_NE(
        line.find("a" + replacement + "b" + replacement + replacement + "c" + replacement +
                  replacement + replacement + "d" + replacement + replacement + "e" + replacement),
        std::string::npos)
        << line;
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  }
}

TEST(Log, LevelsAndFormatsByName) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(parse_log_level("warn"), LogLevel::kWarn);
  EXPECT_EQ(parse_log_level("warning"), std::nullopt);
  EXPECT_EQ(parse_log_level("INFO"), std::nullopt);
  EXPECT_EQ(parse_log_format("json"), LogFormat::kJson);
  EXPECT_EQ(parse_log_format("logfmt"), LogFormat::kLogfmt);
  EXPECT_EQ(parse_log_format("text"), std::nullopt);
}

TEST(Log, WritesLinesAtOrAboveTheConfiguredLevel) {
  test::CapturedStderr err;
  configure_log(LogFormat::kJson, LogLevel::kWarn);
  log_info("not written");
  log_warn("written", {{"interface", "veth1"}});
  log_error("also written");
  const std::string out = err.read();
  EXPECT_EQ(out.find("not written"), std::string::npos) << out;
  EXPECT_NE(out.find("\"level\":\"warn\",\"msg\":\"written\",\"interface\":\"veth1\"}\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\"level\":\"error\",\"msg\":\"also written\"}\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace psnic
