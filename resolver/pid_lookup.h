// One PID argument, the way `psnic PID` and `psnic-agent --pid PID` both take it: parsed, its
// process and network namespace opened once (pidfd + namespace fd), resolved, and classified into
// the one stderr line and the exit status both programs give for it.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/error.h"
#include "resolver/namespace.h"
#include "resolver/resolver.h"

namespace psnic {

// psnic's exit statuses, grep's: every PID has a host peer; some PID has none; a bad argument
// or an error. With several PIDs the highest wins.
inline constexpr int kExitFound = 0;
inline constexpr int kExitNotFound = 1;
inline constexpr int kExitTrouble = 2;

// What a PID argument turned out to be.
enum class PidVerdict {
  kOk,                  // at least one interface with a host-side peer
  kHostNetwork,         // the caller's own namespace: no interface of its own
  kNoHostPeer,          // a namespace of its own, but no interface in it has a host-side peer
  kNotAProcessId,       // not a PID as /proc writes it
  kThreadId,            // a thread's id, refused by pidfd_open with EINVAL (newer kernels: ENOENT)
  kNoSuchProcess,       // no process has the PID
  kZombie,              // exited, not yet reaped: it has no namespaces left
  kExitedDuringLookup,  // exited, or its PID was reused, while it was being read
  kPermissionDenied,    // its namespace is not the caller's to open (EACCES, EPERM)
  kSystemError,         // anything else, named by its own message
};

int exit_status(PidVerdict verdict);

// The verdict on a failed pidfd_open(2) or open of /proc/PID/ns/net, from its errno alone.
PidVerdict classify_open_error(int errnum);

// The verdict on /proc/PID/ns/net failing to open after pidfd_open succeeded. A zombie keeps its
// PID until it is reaped but has dropped its namespaces: ENOENT with state 'Z' while its pidfd
// still shows it alive. ENOENT once the pidfd shows it gone is a process that has just exited.
// `state` is /proc/PID/stat's letter (0 when unread), `alive` the pidfd's answer after that read.
PidVerdict classify_netns_open_error(int errnum, char state, bool alive);

// kOk, kHostNetwork or kNoHostPeer.
PidVerdict classify_report(const NetnsReport& report);

// The error psnic reports for a process that could not be opened: "<pid>: <cause>", with ESRCH for
// every way of being gone, EINVAL for a thread id, and `errnum` for the rest.
Error pid_error(pid_t pid, PidVerdict verdict, int errnum);

// A process and its network namespace, opened once, or the verdict on why not.
struct OpenedProcess {
  PidVerdict verdict = PidVerdict::kOk;  // kOk: `process` holds both
  int errnum = 0;                        // the errno behind any other verdict
  ProcessNetns process;
};
OpenedProcess open_process(pid_t pid);

// Throws pid_error() unless the process opens: for walks that sort failures by errno.
ProcessNetns open_process_netns(pid_t pid);

// Throws pid_error() (exited during lookup) unless the process behind `held` is still alive, so
// an answer is never given for a PID that was reused meanwhile.
void ensure_alive(const ProcessNetns& held);

// One PID argument, looked up.
struct PidLookup {
  PidVerdict verdict = PidVerdict::kNotAProcessId;
  // The one stderr line, without the program's name: "<pid>: <cause>". Empty for kOk.
  std::string message;
  // Held from the first look: the pidfd tells when the process exits. Valid once opened.
  ProcessNetns process;
  // Filled when resolved().
  NetnsReport report;

  bool resolved() const {
    return verdict == PidVerdict::kOk || verdict == PidVerdict::kHostNetwork ||
           verdict == PidVerdict::kNoHostPeer;
  }
  int exit_status() const { return psnic::exit_status(verdict); }
};

// Parses `argument`, opens its process once, resolves its namespace with `resolver` and checks
// the process is still the one it opened when the answer is complete. Never throws psnic::Error:
// every failure is a verdict and its message.
PidLookup look_up_pid(Resolver& resolver, std::string_view argument, const ResolveOptions& options);

}  // namespace psnic
