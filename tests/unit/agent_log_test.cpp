// The tests' reader of the agent's log (tests/support/agent_log.h) against what base/log writes:
// the e2e, privileged and deploy tests find the agent's lines with it, and cannot be run here.
#include "tests/support/agent_log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "base/log.h"

namespace psnic::test {
namespace {

const std::chrono::system_clock::time_point kWhen{std::chrono::milliseconds(1795776662123)};

// A line as base/log writes it, without its newline.
std::string written(LogFormat format, LogLevel level, std::string_view message,
                    LogFields fields = {}) {
  std::string line = format_log_line(format, kWhen, level, message, fields);
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  return line;
}

TEST(AgentLog, ReadsBackWhatBaseLogWritesInBothFormats) {
  const std::string awkward = "a=b \"q\" back\\slash\nnew\ttab\rcr\x01\x7f caf\xC3\xA9";
  for (LogFormat format : {LogFormat::kLogfmt, LogFormat::kJson}) {
    SCOPED_TRACE(format == LogFormat::kJson ? "json" : "logfmt");
    const std::string line = written(format, LogLevel::kWarn, "attached veth1 (tcx)",
                                     {{"interface", "veth1"},
                                      {"container_name", awkward},
                                      {"pod", ""},
                                      {"address", "[::]:9867"}});
    const LogRecord expected{{"ts", "2026-11-27T10:51:02.123Z"},
                             {"level", "warn"},
                             {"msg", "attached veth1 (tcx)"},
                             {"interface", "veth1"},
                             {"container_name", awkward},
                             {"pod", ""},
                             {"address", "[::]:9867"}};
    const auto parsed =
        format == LogFormat::kJson ? parse_json_log_line(line) : parse_logfmt_line(line);
    EXPECT_EQ(parsed, expected) << line;
    EXPECT_EQ(parse_log(line + "\n"), std::vector<LogRecord>{expected}) << line;
  }
}

TEST(AgentLog, BareValuesAreReadToTheNextSpace) {
  EXPECT_EQ(parse_logfmt_line(written(LogFormat::kLogfmt, LogLevel::kInfo, "serving/metrics",
                                      {{"address", "127.0.0.1:9867"}})),
            (LogRecord{{"ts", "2026-11-27T10:51:02.123Z"},
                       {"level", "info"},
                       {"msg", "serving/metrics"},
                       {"address", "127.0.0.1:9867"}}));
}

TEST(AgentLog, PlainAndBrokenLinesAreNotLogLines) {
  for (const char* line : {
           "psnic-agent: missing capabilities: CAP_SYS_PTRACE (it needs CAP_NET_ADMIN, "
           "CAP_SYS_ADMIN and CAP_SYS_PTRACE; root has them)",
           "psnic-agent: --log-level: x=y: not one of debug, info, warn, error (see --help)",
           "ts=1 level=info",                                 // no msg
           "ts=1 level=info msg=a msg=b",                     // a key twice
           "ts=1 level=info msg=\"open",                      // no closing quote
           "ts=1 level=info msg=\"a\"b",                      // no space after a quoted value
           "ts=1 level=info msg=\"\\x\"",                     // no such escape
           "ts=1 level=info msg=a ",                          // a trailing space
           "ts=1  level=info msg=a",                          // two spaces
           "ts=1 level=info msg=",                            // an empty value unquoted
           "{\"ts\":\"1\",\"level\":\"info\"}",               // no msg
           "{\"ts\":\"1\",\"level\":\"info\",\"msg\":1}",     // not a string
           "{\"ts\":\"1\",\"level\":\"info\",\"msg\":\"a\"",  // torn
       }) {
    EXPECT_EQ(parse_log(line), std::vector<LogRecord>{}) << line;
  }
}

TEST(AgentLog, FindsAMessageByItsTextAndFields) {
  const std::string text = "psnic-agent: a plain line\n" +
                           format_log_line(LogFormat::kLogfmt, kWhen, LogLevel::kInfo,
                                           "attached veth1 (tcx)", {{"interface", "veth1"}}) +
                           format_log_line(LogFormat::kJson, kWhen, LogLevel::kInfo,
                                           "attached veth2 (tcx)", {{"interface", "veth2"}});
  const std::vector<LogRecord> log = parse_log(text);
  EXPECT_EQ(messages(log),
            (std::vector<std::string>{"attached veth1 (tcx)", "attached veth2 (tcx)"}));
  EXPECT_TRUE(find_logged(log, "attached veth1 (tcx)"));
  EXPECT_TRUE(find_logged(log, "attached veth2 (tcx)", {{"interface", "veth2"}}));
  EXPECT_FALSE(find_logged(log, "attached veth2 (tcx)", {{"interface", "veth1"}}));
  EXPECT_FALSE(find_logged(log, "attached veth3 (tcx)"));
  EXPECT_FALSE(find_logged(log, "attached veth1"));  // the whole message, not a prefix
}

}  // namespace
}  // namespace psnic::test
