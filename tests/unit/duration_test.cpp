#include "base/duration.h"

#include <gtest/gtest.h>

namespace psnic {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsUnitsAndPlainSeconds) {
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("30s"), milliseconds(30000));
  EXPECT_EQ(parse_duration("2m"), milliseconds(120000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3600000));
  EXPECT_EQ(parse_duration("1.5"), milliseconds(1500));
  EXPECT_EQ(parse_duration("0.5m"), milliseconds(30000));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0"), milliseconds(0));
  EXPECT_EQ(parse_duration("168h"), milliseconds(7 * 24 * 3600000LL));
}

TEST(ParseDuration, AddsPartsLargestUnitFirst) {
  EXPECT_EQ(parse_duration("1m30s"), milliseconds(90000));
  EXPECT_EQ(parse_duration("1h5m"), milliseconds(3900000));
  EXPECT_EQ(parse_duration("2s500ms"), milliseconds(2500));
  EXPECT_EQ(parse_duration("1h1m1s1ms"), milliseconds(3661001));
}

TEST(ParseDuration, RejectsTheRest) {
  for (const char* text : {"", "s", ".", ".s", "-1s", "2x", "1..2s", "10d", "1e3s", "8d", "1000h",
                           "169h", "1m30", "30s1m", "1s1s", "1 s", "abc", "1m-30s"})
    EXPECT_THROW(parse_duration(text), Error) << text;
}

// The message names the text and the cause: it is the line a bad flag value gets.
TEST(ParseDuration, SaysWhatIsWrong) {
  auto message = [](const char* text) {
    try {
      parse_duration(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("abc"), "duration abc: not a duration such as 500ms, 30s, 2m, 1h or 1m30s");
  EXPECT_EQ(message("10d"), "duration 10d: unknown unit, use ms, s, m or h");
  EXPECT_EQ(message("30s1m"), "duration 30s1m: units go largest first, once each");
  EXPECT_EQ(message("8d"), "duration 8d: unknown unit, use ms, s, m or h");
  EXPECT_EQ(message("200h"), "duration 200h: longer than a week");
}

}  // namespace
}  // namespace psnic
