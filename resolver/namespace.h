#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/fd.h"

namespace psnic {

// A PID written as /proc names it and as users type it: decimal digits, no sign, no leading zero,
// at most the kernel's PID_MAX_LIMIT (4194304). nullopt for anything else.
std::optional<pid_t> parse_pid(std::string_view text);

// A process's network namespace, held from the first look (resolver/pid_lookup.h opens it): the
// namespace fd keeps the namespace, the pidfd tells whether the process that had it is still the
// one behind the PID.
struct ProcessNetns {
  pid_t pid = 0;
  Fd pidfd;
  Fd netns;
  uint64_t inode = 0;  // the namespace's identity (st_ino of its nsfs file)
};

// Whether the process behind a pidfd has not exited.
bool process_alive(int pidfd);

// The state letter of a /proc/PID/stat line ('R', 'S', 'Z', ...), or 0 when it is not one. The
// command name before it is in parentheses and may itself hold spaces and ") ".
char process_state(std::string_view stat_line);

// The nsfs inode behind a namespace fd or path.
uint64_t netns_inode(int netns_fd);

// Moves the calling thread into a network namespace for the guard's lifetime and back into the
// thread's own namespace (/proc/thread-self/ns/net) on destruction. Other threads are untouched.
class EnteredNetns {
 public:
  explicit EnteredNetns(int netns_fd);
  EnteredNetns(const EnteredNetns&) = delete;
  EnteredNetns& operator=(const EnteredNetns&) = delete;
  ~EnteredNetns();

 private:
  Fd home_;
};

}  // namespace psnic
