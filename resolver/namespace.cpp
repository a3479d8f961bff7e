#include "resolver/namespace.h"

#include <fcntl.h>
#include <sched.h>
// glibc 2.36 declares these without C linkage guards.
extern "C" {
#include <sys/pidfd.h>
}
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "base/error.h"

namespace psnic {

std::optional<pid_t> parse_pid(std::string_view text) {
  constexpr long kPidMaxLimit = 4194304;
  if (text.empty() || text.size() > 7 || text[0] == '0') return std::nullopt;
  long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > kPidMaxLimit) return std::nullopt;
  return static_cast<pid_t>(value);
}

char process_state(std::string_view stat_line) {
  size_t close = stat_line.rfind(") ");
  if (close == std::string_view::npos || close + 2 >= stat_line.size()) return 0;
  return stat_line[close + 2];
}

namespace {

Error pid_error(pid_t pid, int errnum) {
  if (errnum == ESRCH || errnum == ENOENT)
    return Error(std::to_string(pid), ESRCH, "no such process");
  if (errnum == EINVAL)
    return Error(std::to_string(pid), EINVAL, "not a process id (a thread id or out of range)");
  return system_error(std::to_string(pid), errnum);
}

// PID's state letter from /proc/PID/stat, 0 when it cannot be read.
char read_process_state(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  Fd stat(open(path, O_RDONLY | O_CLOEXEC));
  if (!stat.valid()) return 0;
  // The state follows "PID (COMM) "; COMM is at most 64 bytes (a kernel thread's name).
  char line[128];
  ssize_t n = read(stat.get(), line, sizeof line);
  return n > 0 ? process_state(std::string_view(line, static_cast<size_t>(n))) : 0;
}

}  // namespace

bool process_alive(int pidfd) {
  return pidfd_send_signal(pidfd, 0, nullptr, 0) == 0 || errno == EPERM;
}

Fd open_pidfd(pid_t pid) {
  Fd pidfd(pidfd_open(pid, 0));
  if (!pidfd.valid()) throw pid_error(pid, errno);
  return pidfd;
}

ProcessNetns open_process_netns(pid_t pid) {
  ProcessNetns held;
  held.pid = pid;
  held.pidfd = open_pidfd(pid);

  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/ns/net", static_cast<int>(pid));
  held.netns = Fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!held.netns.valid()) {
    int err = errno;
    // A zombie keeps its PID until its parent reaps it but has dropped its namespaces (no
    // nsproxy): ns/net gives ENOENT though the process is there. Alive after the read, the pidfd
    // shows the stat read was that process's own.
    if (err == ENOENT && read_process_state(pid) == 'Z' && process_alive(held.pidfd.get()))
      throw Error(std::to_string(pid), ESRCH, "exited (zombie, not yet reaped)");
    // A vanished /proc entry after a successful pidfd_open means the process just exited.
    if (err == ENOENT && !process_alive(held.pidfd.get()))
      throw Error(std::to_string(pid), ESRCH, "exited during lookup");
    throw pid_error(pid, err);
  }
  // The pidfd pins the process we first saw; if it is still alive after the open, the /proc
  // entry we opened was its own and not that of a process that reused the PID.
  ensure_alive(held);
  held.inode = netns_inode(held.netns.get());
  return held;
}

void ensure_alive(const ProcessNetns& held) {
  if (!process_alive(held.pidfd.get()))
    throw Error(std::to_string(held.pid), ESRCH, "exited during lookup");
}

uint64_t netns_inode(int netns_fd) {
  struct stat st {};
  if (fstat(netns_fd, &st) < 0) throw system_error("network namespace", errno);
  return st.st_ino;
}

EnteredNetns::EnteredNetns(int netns_fd)
    : home_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
  if (!home_.valid()) throw system_error("/proc/thread-self/ns/net", errno);
  if (setns(netns_fd, CLONE_NEWNET) < 0) throw system_error("setns into network namespace", errno);
}

EnteredNetns::~EnteredNetns() {
  if (setns(home_.get(), CLONE_NEWNET) < 0) {
    // A thread left in a foreign namespace would answer every later query wrongly; stopping is
    // the only safe course.
    std::fprintf(stderr, "psnic: cannot return to own network namespace: errno %d\n", errno);
    std::abort();
  }
}

}  // namespace psnic
