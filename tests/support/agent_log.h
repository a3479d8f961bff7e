#pragma once

// psnic-agent's log as the tests read it (base/log.h writes it): each line parsed back into its
// keys and values, so that a test asks for a message and its fields, never for the bytes of a
// line's layout (quoting, escapes, the timestamp).
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace psnic::test {

// One log line: ts, level, msg and the fields after them, values unescaped.
using LogRecord = std::map<std::string, std::string>;

// One logfmt line (without its newline): key=value pairs separated by single spaces, a value
// bare or double-quoted with \" \\ \n \r \t \u00XX escapes. nullopt unless the whole line is
// that, with ts, level and msg, each key once.
std::optional<LogRecord> parse_logfmt_line(std::string_view line);

// One JSON line: an object whose values are all strings, with ts, level and msg; else nullopt.
std::optional<LogRecord> parse_json_log_line(std::string_view line);

// The log lines of `text` (what the agent wrote to stderr) in order, each read as JSON when it
// starts with '{' and as logfmt otherwise. A line that is neither (a plain "psnic-agent: ..."
// line, a torn last line) is left out.
std::vector<LogRecord> parse_log(std::string_view text);

// Whether `record` has each of `fields`, with that value.
bool has_fields(const LogRecord& record, const LogRecord& fields);

// The first line of `log` whose msg is `msg` and which has each of `fields`.
std::optional<LogRecord> find_logged(const std::vector<LogRecord>& log, std::string_view msg,
                                     const LogRecord& fields = {});

// The msg of each line, in order.
std::vector<std::string> messages(const std::vector<LogRecord>& log);

}  // namespace psnic::test
