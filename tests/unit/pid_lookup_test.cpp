// The PID path psnic and psnic-agent --pid share: classification, messages and exit statuses
// (pure), and lookups of this test's own processes and threads (no privileges needed).
#include "resolver/pid_lookup.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "base/error.h"

namespace psnic {
namespace {

TEST(PidExitStatus, IsGrepsAndPsnicsDocumentedOne) {
  EXPECT_EQ(exit_status(PidVerdict::kOk), 0);
  EXPECT_EQ(exit_status(PidVerdict::kHostNetwork), 1);
  EXPECT_EQ(exit_status(PidVerdict::kNoHostPeer), 1);
  for (PidVerdict trouble :
       {PidVerdict::kNotAProcessId, PidVerdict::kThreadId, PidVerdict::kNoSuchProcess,
        PidVerdict::kZombie, PidVerdict::kExitedDuringLookup, PidVerdict::kPermissionDenied,
        PidVerdict::kSystemError})
    EXPECT_EQ(exit_status(trouble), 2) << static_cast<int>(trouble);
}

TEST(ClassifyOpenError, NamesWhatTheKernelSaid) {
  const struct {
    int errnum;
    PidVerdict verdict;
  } rows[] = {
      {ESRCH, PidVerdict::kNoSuchProcess},    {ENOENT, PidVerdict::kNoSuchProcess},
      {EINVAL, PidVerdict::kThreadId},        {EACCES, PidVerdict::kPermissionDenied},
      {EPERM, PidVerdict::kPermissionDenied}, {EMFILE, PidVerdict::kSystemError},
  };
  for (const auto& row : rows)
    EXPECT_EQ(classify_open_error(row.errnum), row.verdict) << row.errnum;
}

TEST(ClassifyNetnsOpenError, TellsAZombieFromAProcessThatJustExited) {
  // ENOENT on ns/net: a zombie while its pidfd still shows it, gone once the pidfd does not.
  EXPECT_EQ(classify_netns_open_error(ENOENT, 'Z', true), PidVerdict::kZombie);
  EXPECT_EQ(classify_netns_open_error(ENOENT, 'Z', false), PidVerdict::kExitedDuringLookup);
  EXPECT_EQ(classify_netns_open_error(ENOENT, 0, false), PidVerdict::kExitedDuringLookup);
  // Alive and not a zombie, yet no ns/net: as the errno says.
  EXPECT_EQ(classify_netns_open_error(ENOENT, 'S', true), PidVerdict::kNoSuchProcess);
  EXPECT_EQ(classify_netns_open_error(EACCES, 0, true), PidVerdict::kPermissionDenied);
  EXPECT_EQ(classify_netns_open_error(EPERM, 0, false), PidVerdict::kPermissionDenied);
}

TEST(ClassifyReport, HostNetworkThenHostPeer) {
  NetnsReport host;
  host.host_network = true;
  EXPECT_EQ(classify_report(host), PidVerdict::kHostNetwork);
  NetnsReport bare;
  EXPECT_EQ(classify_report(bare), PidVerdict::kNoHostPeer);
  InterfacePair pair;
  pair.name = "mv0";
  pair.placement = Placement::parent;
  NetnsReport macvlan;
  macvlan.interfaces = {pair};
  EXPECT_EQ(classify_report(macvlan), PidVerdict::kNoHostPeer);
  pair.placement = Placement::host_peer;
  NetnsReport veth;
  veth.interfaces = {pair};
  EXPECT_EQ(classify_report(veth), PidVerdict::kOk);
}

TEST(PidError, IsTheLinePsnicPrintsWithItsErrno) {
  const struct {
    PidVerdict verdict;
    int errnum;
    const char* message;
    int error_errnum;
  } rows[] = {
      {PidVerdict::kNoSuchProcess, ENOENT, "4242: no such process", ESRCH},
      {PidVerdict::kZombie, ENOENT, "4242: exited (zombie, not yet reaped)", ESRCH},
      {PidVerdict::kExitedDuringLookup, ENOENT, "4242: exited during lookup", ESRCH},
      {PidVerdict::kThreadId, EINVAL, "4242: not a process id (a thread id or out of range)",
       EINVAL},
      {PidVerdict::kPermissionDenied, EACCES,
       "4242: permission denied to its network namespace (needs CAP_SYS_PTRACE, or root)", EACCES},
      {PidVerdict::kPermissionDenied, EPERM,
       "4242: permission denied to its network namespace (needs CAP_SYS_PTRACE, or root)", EPERM},
      {PidVerdict::kSystemError, EMFILE, "4242: too many open files", EMFILE},
  };
  for (const auto& row : rows) {
    Error error = pid_error(4242, row.verdict, row.errnum);
    EXPECT_EQ(std::string(error.what()), row.message);
    EXPECT_EQ(error.object(), "4242");
    EXPECT_EQ(error.errnum(), row.error_errnum) << row.message;
  }
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

// A PID that was used and has been reaped.
pid_t reaped_pid() {
  Zombie reaped_at_scope_end;
  return reaped_at_scope_end.pid();
}

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
  pid_t pid = reaped_pid();
  ASSERT_GT(pid, 0);
  try {
    open_process_netns(pid);
    FAIL() << "expected an error for the reaped " << pid;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), std::to_string(pid) + ": no such process");
  }
}

class LookUpPidTest : public ::testing::Test {
 protected:
  PidLookup look_up(const std::string& argument) {
    return look_up_pid(resolver_, argument, ResolveOptions{});
  }

  Resolver resolver_;
};

TEST_F(LookUpPidTest, WhatIsNotAPidIsNeverOpened) {
  for (const char* argument : {"abc", "0", "007", "12x", "99999999", "4194305"}) {
    PidLookup lookup = look_up(argument);
    EXPECT_EQ(lookup.verdict, PidVerdict::kNotAProcessId) << argument;
    EXPECT_EQ(lookup.message, std::string(argument) + ": not a process id");
    EXPECT_EQ(lookup.exit_status(), 2);
    EXPECT_FALSE(lookup.resolved());
    EXPECT_FALSE(lookup.process.pidfd.valid());
  }
  EXPECT_EQ(look_up("").message, "\"\": not a process id");
}

TEST_F(LookUpPidTest, OwnProcessIsHostNetworkWithItsPidfdHeld) {
  const std::string self = std::to_string(getpid());
  PidLookup lookup = look_up(self);
  EXPECT_EQ(lookup.verdict, PidVerdict::kHostNetwork);
  EXPECT_EQ(lookup.message, self + ": host network, no interface of its own");
  EXPECT_EQ(lookup.exit_status(), 1);
  EXPECT_TRUE(lookup.resolved());
  EXPECT_TRUE(lookup.report.host_network);
  EXPECT_EQ(lookup.report.pid, getpid());
  // The one pidfd the lookup opened stays the caller's, to watch the process with.
  EXPECT_EQ(lookup.process.pid, getpid());
  ASSERT_TRUE(lookup.process.pidfd.valid());
  EXPECT_TRUE(process_alive(lookup.process.pidfd.get()));
}

TEST_F(LookUpPidTest, ProcessesThatCannotBeOpenedSayWhy) {
  Zombie zombie;
  ASSERT_GT(zombie.pid(), 0);
  const struct {
    pid_t pid;
    PidVerdict verdict;
    const char* cause;
  } rows[] = {
      {zombie.pid(), PidVerdict::kZombie, ": exited (zombie, not yet reaped)"},
      {reaped_pid(), PidVerdict::kNoSuchProcess, ": no such process"},
  };
  for (const auto& row : rows) {
    const std::string pid = std::to_string(row.pid);
    PidLookup lookup = look_up(pid);
    EXPECT_EQ(lookup.verdict, row.verdict) << pid;
    EXPECT_EQ(lookup.message, pid + row.cause);
    EXPECT_EQ(lookup.exit_status(), 2);
    EXPECT_FALSE(lookup.resolved());
  }
}

TEST_F(LookUpPidTest, ThreadIdIsRefusedNotTakenForItsProcess) {
  std::mutex mutex;
  std::condition_variable changed;
  pid_t tid = 0;
  bool done = false;
  std::thread thread([&] {
    std::unique_lock lock(mutex);
    tid = gettid();
    changed.notify_all();
    changed.wait(lock, [&] { return done; });
  });
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return tid != 0; });
  const std::string id = std::to_string(tid);
  PidLookup lookup = look_up(id);
  done = true;
  changed.notify_all();
  lock.unlock();
  thread.join();
  // /proc/TID/ns/net exists, but a thread is not a process: pidfd_open refuses it, with EINVAL
  // on older kernels and ENOENT on newer ones.
  if (lookup.verdict == PidVerdict::kThreadId)
    EXPECT_EQ(lookup.message, id + ": not a process id (a thread id or out of range)");
  else
    EXPECT_EQ(lookup.message, id + ": no such process");
  EXPECT_FALSE(lookup.resolved());
  EXPECT_EQ(lookup.exit_status(), 2);
}

}  // namespace
}  // namespace psnic
