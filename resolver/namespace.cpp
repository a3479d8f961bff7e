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

bool process_alive(int pidfd) {
  return pidfd_send_signal(pidfd, 0, nullptr, 0) == 0 || errno == EPERM;
}

uint64_t netns_inode(int netns_fd) {
  struct stat st {};
  if (fstat(netns_fd, &st) < 0) throw system_error("network namespace", errno);
  return st.st_ino;
}

EnteredNetns::EnteredNetns(int netns_fd)
    : home_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
  if (!home_.valid()) throw system_error("/proc/thread-self/ns/net", errno);
  if (setns(netns_fd, CLONE_NEWNET) < 0) {
    if (errno == EPERM)
      throw Error("setns into its network namespace", EPERM,
                  "operation not permitted (needs CAP_SYS_ADMIN, or root)");
    throw system_error("setns into its network namespace", errno);
  }
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
