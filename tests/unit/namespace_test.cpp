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

}  // namespace
}  // namespace psnic
