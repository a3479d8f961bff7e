#include "resolver/namespace.h"

#include <gtest/gtest.h>

namespace psnic {
namespace {

TEST(ParsePid, AcceptsWhatProcNamesAndUsersType) {
  EXPECT_EQ(parse_pid("1"), 1);
  EXPECT_EQ(parse_pid("28304"), 28304);
  EXPECT_EQ(parse_pid("4194304"), 4194304);  // PID_MAX_LIMIT
}

TEST(ParsePid, RejectsEverythingElse) {
  for (const char* text : {"", "0", "007", "-5", "+5", " 5", "5 ", "12x", "1e3", "4194305",
                           "99999999999", "self", "thread-self"})
    EXPECT_FALSE(parse_pid(text)) << '"' << text << '"';
}

TEST(ProcessState, IsTheFieldAfterTheCommandName) {
  EXPECT_EQ(process_state("4242 (sleep) S 1 4242 4242 0 -1 4194560"), 'S');
  EXPECT_EQ(process_state("4242 (sleep) Z 1 4242"), 'Z');
  // A command name is the process's to choose: parentheses, spaces and a fake state included.
  EXPECT_EQ(process_state("4242 (a) R (b) Z 1 4242"), 'Z');
  EXPECT_EQ(process_state("4242 () S 1"), 'S');
}

TEST(ProcessState, ZeroForWhatIsNotAStatLine) {
  for (const char* text : {"", "4242", "4242 (sleep)", "4242 (sleep) ", "4242 sleep S 1"})
    EXPECT_EQ(process_state(text), 0) << '"' << text << '"';
}

}  // namespace
}  // namespace psnic
