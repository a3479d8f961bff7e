#include "resolver/namespace.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "base/error.h"

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

// A child that has exited and is left unreaped (a zombie) until the test is done with it.
class Zombie {
 public:
  Zombie() : pid_(fork()) {
    if (pid_ == 0) _exit(0);
    // Waits until it is a zombie, without reaping it.
    siginfo_t info{};
    if (pid_ > 0) waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT);
  }
  Zombie(const Zombie&) = delete;
  Zombie& operator=(const Zombie&) = delete;
  ~Zombie() {
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

TEST(OpenProcessNetns, ZombieIsReportedAsExitedNotAsMissing) {
  Zombie zombie;
  ASSERT_GT(zombie.pid(), 0);
  try {
    open_process_netns(zombie.pid());
    FAIL() << "expected an error for the zombie " << zombie.pid();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              std::to_string(zombie.pid()) + ": exited (zombie, not yet reaped)");
    EXPECT_EQ(e.errnum(), ESRCH);
  }
}

TEST(OpenProcessNetns, ReapedPidIsNoSuchProcess) {
  pid_t pid;
  {
    Zombie reaped_at_scope_end;
    pid = reaped_at_scope_end.pid();
  }
  ASSERT_GT(pid, 0);
  try {
    open_process_netns(pid);
    FAIL() << "expected an error for the reaped " << pid;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), std::to_string(pid) + ": no such process");
  }
}

}  // namespace
}  // namespace psnic
