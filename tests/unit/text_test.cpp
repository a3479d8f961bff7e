#include "base/text.h"

#include <gtest/gtest.h>

#include <string>

namespace psnic {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(ValidUtf8, ValidTextIsKeptAsItIs) {
  EXPECT_EQ(valid_utf8(""), "");
  EXPECT_EQ(valid_utf8("veth1a2b"), "veth1a2b");
  EXPECT_EQ(valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\xB3"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\xB3");
  // Control characters are valid UTF-8: escaping them is the writer's job.
  EXPECT_EQ(valid_utf8("a\x1b[31m"), "a\x1b[31m");
}

TEST(ValidUtf8, EachByteOutsideAWellFormedSequenceIsReplaced) {
  EXPECT_EQ(valid_utf8("e\xff\x1b[31mX"), "e" + kFffd + "\x1b[31mX");
  EXPECT_EQ(valid_utf8("\xC0\xAF"), kFffd + kFffd);                          // overlong '/'
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);              // a surrogate
  EXPECT_EQ(valid_utf8("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // above U+10FFFF
  EXPECT_EQ(valid_utf8("ab\xE2\x82"), "ab" + kFffd + kFffd);                 // cut short
}

TEST(AppendEscaped, EscapesForJsonAndReplacesWhatIsNotUtf8) {
  std::string out;
  append_escaped(out, "a\"b\\c\nd\te\x7f\xff");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\te\\u007f" + kFffd);
}

TEST(Counted, PluralUnlessThereIsOne) {
  EXPECT_EQ(counted(0, "interface"), "0 interfaces");
  EXPECT_EQ(counted(1, "interface"), "1 interface");
  EXPECT_EQ(counted(601, "tc filter"), "601 tc filters");
}

}  // namespace
}  // namespace psnic
