// ExpeditedGracePeriods without root: the knob and the record are files in a temporary
// directory, so every decision (set, leave alone, restore, warn once) is seen without touching
// the host's /sys/kernel/rcu_expedited. The real knob is the privileged and e2e tiers' to try.
#include "kernel/expedite.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/captured_stderr.h"

namespace psnic {
namespace {

class ExpediteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/psnictest-expedite-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    knob_ = dir_ + "/rcu_expedited";
    record_ = dir_ + "/pins/rcu_expedited";
    ASSERT_EQ(mkdir((dir_ + "/pins").c_str(), 0700), 0);
    set_knob("0\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void set_knob(const std::string& text) const { std::ofstream(knob_) << text; }
  std::string knob() const {
    std::ifstream in(knob_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  bool recorded() const { return std::filesystem::is_symlink(record_); }
  std::string record() const { return std::filesystem::read_symlink(record_).string(); }
  static size_t lines(const std::string& text, const std::string& containing) {
    std::istringstream in(text);
    size_t n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(containing) != line.npos;
    return n;
  }

  std::string dir_;
  std::string knob_;
  std::string record_;
};

TEST_F(ExpediteTest, SetsTheKnobRecordingItsValueAndRestoresItAfter) {
  test::CapturedStderr err;
  ExpeditedGracePeriods expedite(knob_, record_);
  EXPECT_TRUE(expedite.usable());
  EXPECT_TRUE(expedite.begin());
  EXPECT_TRUE(expedite.held());
  EXPECT_EQ(knob(), "1\n");
  ASSERT_TRUE(recorded());
  EXPECT_EQ(record(), "0");
  EXPECT_TRUE(expedite.begin());  // held already: nothing more
  expedite.end();
  EXPECT_FALSE(expedite.held());
  EXPECT_EQ(knob(), "0\n");
  EXPECT_FALSE(recorded());
  expedite.end();  // nothing held: nothing written
  EXPECT_EQ(knob(), "0\n");
  const std::string said = err.read();
  EXPECT_EQ(lines(said, "set to 1 (was 0)"), 1u) << said;
  EXPECT_EQ(lines(said, "restored to 0"), 1u) << said;
  EXPECT_EQ(lines(said, "level=warn"), 0u) << said;
}

TEST_F(ExpediteTest, DestructionRestoresTheKnob) {
  {
    ExpeditedGracePeriods expedite(knob_, record_);
    ASSERT_TRUE(expedite.begin());
  }
  EXPECT_EQ(knob(), "0\n");
  EXPECT_FALSE(recorded());
}

// Set by the host's administrator or another agent: theirs to restore, so psnic neither
// records nor writes it.
TEST_F(ExpediteTest, AKnobAlreadySetIsLeftAlone) {
  set_knob("1\n");
  ExpeditedGracePeriods expedite(knob_, record_);
  EXPECT_FALSE(expedite.begin());
  EXPECT_FALSE(recorded());
  expedite.end();
  EXPECT_EQ(knob(), "1\n");
}

TEST_F(ExpediteTest, AMissingKnobIsOneWarningAndNothingElse) {
  test::CapturedStderr err;
  std::filesystem::remove(knob_);
  ExpeditedGracePeriods expedite(knob_, record_);
  EXPECT_FALSE(expedite.usable());
  EXPECT_FALSE(expedite.begin());
  EXPECT_FALSE(expedite.begin());
  EXPECT_FALSE(recorded());
  EXPECT_FALSE(std::filesystem::exists(knob_));
  const std::string said = err.read();
  EXPECT_EQ(lines(said, "level=warn"), 1u) << said;
  EXPECT_EQ(lines(said, "No such file or directory"), 1u) << said;
}

// What a read-only /sys gives (EROFS) stands in here as a knob that cannot be opened for
// writing at all.
TEST_F(ExpediteTest, AKnobThatCannotBeWrittenIsOneWarning) {
  test::CapturedStderr err;
  std::filesystem::remove(knob_);
  ASSERT_EQ(mkdir(knob_.c_str(), 0700), 0);
  ExpeditedGracePeriods expedite(knob_, record_);
  EXPECT_FALSE(expedite.usable());
  EXPECT_FALSE(expedite.begin());
  EXPECT_FALSE(recorded());
  const std::string said = err.read();
  EXPECT_EQ(lines(said, "level=warn"), 1u) << said;
}

// With nowhere to record the value, a crash would leave the host expedited for good: psnic
// does not set the knob at all.
TEST_F(ExpediteTest, NoRecordNoSetting) {
  test::CapturedStderr err;
  ExpeditedGracePeriods expedite(knob_, dir_ + "/absent/rcu_expedited");
  EXPECT_FALSE(expedite.begin());
  EXPECT_FALSE(expedite.begin());
  EXPECT_EQ(knob(), "0\n");
  const std::string said = err.read();
  EXPECT_EQ(lines(said, "level=warn"), 1u) << said;
}

// A crashed agent's record that nobody restored holds the value from before that agent.
TEST_F(ExpediteTest, AnEarlierRecordIsKeptAndRestored) {
  ASSERT_EQ(symlink("0", record_.c_str()), 0);
  ExpeditedGracePeriods expedite(knob_, record_);
  EXPECT_TRUE(expedite.begin());
  EXPECT_EQ(knob(), "1\n");
  EXPECT_EQ(record(), "0");
  expedite.end();
  EXPECT_EQ(knob(), "0\n");
  EXPECT_FALSE(recorded());
}

TEST_F(ExpediteTest, ACrashedAgentsRecordIsRestoredAndRemoved) {
  test::CapturedStderr err;
  set_knob("1\n");
  ASSERT_EQ(symlink("0", record_.c_str()), 0);
  EXPECT_EQ(restore_expedited(knob_, record_), "0");
  EXPECT_EQ(knob(), "0\n");
  EXPECT_FALSE(recorded());
  EXPECT_EQ(lines(err.read(), "restored to 0"), 1u);
  // Nothing recorded: nothing to do, the knob untouched.
  set_knob("1\n");
  EXPECT_EQ(restore_expedited(knob_, record_), std::nullopt);
  EXPECT_EQ(knob(), "1\n");
}

TEST_F(ExpediteTest, ARecordThatIsNoNumberIsRemovedAndNotWritten) {
  test::CapturedStderr err;
  set_knob("1\n");
  ASSERT_EQ(symlink("1; reboot", record_.c_str()), 0);
  EXPECT_EQ(restore_expedited(knob_, record_), std::nullopt);
  EXPECT_EQ(knob(), "1\n");
  EXPECT_FALSE(recorded());
  EXPECT_EQ(lines(err.read(), "level=warn"), 1u);
}

TEST_F(ExpediteTest, ARecordThatCannotBeWrittenBackStaysForCleanup) {
  ASSERT_EQ(symlink("0", record_.c_str()), 0);
  std::filesystem::remove(knob_);
  test::CapturedStderr err;
  EXPECT_EQ(restore_expedited(knob_, record_), std::nullopt);
  EXPECT_TRUE(recorded());
  EXPECT_EQ(lines(err.read(), "level=warn"), 1u);
}

}  // namespace
}  // namespace psnic
