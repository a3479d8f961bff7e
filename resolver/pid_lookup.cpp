#include "resolver/pid_lookup.h"

#include <fcntl.h>
// glibc 2.36 declares these without C linkage guards.
extern "C" {
#include <sys/pidfd.h>
}
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "resolver/report.h"

namespace psnic {
namespace {

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

OpenedProcess refused(OpenedProcess opened, PidVerdict verdict, int errnum) {
  opened.verdict = verdict;
  opened.errnum = errnum;
  return opened;
}

}  // namespace

int exit_status(PidVerdict verdict) {
  switch (verdict) {
    case PidVerdict::kOk:
      return kExitFound;
    case PidVerdict::kHostNetwork:
    case PidVerdict::kNoHostPeer:
      return kExitNotFound;
    default:
      return kExitTrouble;
  }
}

PidVerdict classify_open_error(int errnum) {
  switch (errnum) {
    case ESRCH:
    case ENOENT:
      return PidVerdict::kNoSuchProcess;
    case EINVAL:
      return PidVerdict::kThreadId;
    case EACCES:
    case EPERM:
      return PidVerdict::kPermissionDenied;
    default:
      return PidVerdict::kSystemError;
  }
}

PidVerdict classify_netns_open_error(int errnum, char state, bool alive) {
  if (errnum == ENOENT && state == 'Z' && alive) return PidVerdict::kZombie;
  if (errnum == ENOENT && !alive) return PidVerdict::kExitedDuringLookup;
  return classify_open_error(errnum);
}

PidVerdict classify_report(const NetnsReport& report) {
  if (report.host_network) return PidVerdict::kHostNetwork;
  return report.has_host_peer() ? PidVerdict::kOk : PidVerdict::kNoHostPeer;
}

Error pid_error(pid_t pid, PidVerdict verdict, int errnum) {
  std::string object = std::to_string(pid);
  switch (verdict) {
    case PidVerdict::kNoSuchProcess:
      return Error(std::move(object), ESRCH, "no such process");
    case PidVerdict::kZombie:
      return Error(std::move(object), ESRCH, "exited (zombie, not yet reaped)");
    case PidVerdict::kExitedDuringLookup:
      return Error(std::move(object), ESRCH, "exited during lookup");
    case PidVerdict::kThreadId:
      return Error(std::move(object), EINVAL, "not a process id (a thread id or out of range)");
    case PidVerdict::kPermissionDenied:
      // /proc/PID/ns/net is ptrace-checked: another user's process needs CAP_SYS_PTRACE.
      return Error(std::move(object), errnum,
                   "permission denied to its network namespace (needs CAP_SYS_PTRACE, or root)");
    default:
      return system_error(std::move(object), errnum);
  }
}

OpenedProcess open_process(pid_t pid) {
  OpenedProcess opened;
  ProcessNetns& held = opened.process;
  held.pid = pid;
  // The pidfd keeps referring to this process, whatever reuses the PID later.
  held.pidfd = Fd(pidfd_open(pid, 0));
  if (!held.pidfd.valid()) {
    int err = errno;
    return refused(std::move(opened), classify_open_error(err), err);
  }

  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/ns/net", static_cast<int>(pid));
  held.netns = Fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!held.netns.valid()) {
    int err = errno;
    // Only ENOENT needs telling apart: a zombie, or a process that exited after pidfd_open. The
    // state is read first, so that the pidfd, alive after the read, shows it was this process's.
    char state = err == ENOENT ? read_process_state(pid) : 0;
    bool alive = err == ENOENT && process_alive(held.pidfd.get());
    return refused(std::move(opened), classify_netns_open_error(err, state, alive), err);
  }
  // The pidfd pins the process we first saw; if it is still alive after the open, the /proc
  // entry we opened was its own and not that of a process that reused the PID.
  if (!process_alive(held.pidfd.get()))
    return refused(std::move(opened), PidVerdict::kExitedDuringLookup, ESRCH);
  held.inode = netns_inode(held.netns.get());
  return opened;
}

ProcessNetns open_process_netns(pid_t pid) {
  OpenedProcess opened = open_process(pid);
  if (opened.verdict != PidVerdict::kOk) throw pid_error(pid, opened.verdict, opened.errnum);
  return std::move(opened.process);
}

void ensure_alive(const ProcessNetns& held) {
  if (!process_alive(held.pidfd.get()))
    throw pid_error(held.pid, PidVerdict::kExitedDuringLookup, ESRCH);
}

PidLookup look_up_pid(Resolver& resolver, std::string_view argument,
                      const ResolveOptions& options) {
  PidLookup lookup;
  std::optional<pid_t> pid = parse_pid(argument);
  if (!pid) {
    lookup.verdict = PidVerdict::kNotAProcessId;
    lookup.message =
        (argument.empty() ? std::string("\"\"") : std::string(argument)) + ": not a process id";
    return lookup;
  }
  try {
    OpenedProcess opened = open_process(*pid);
    lookup.process = std::move(opened.process);
    if (opened.verdict != PidVerdict::kOk) {
      lookup.verdict = opened.verdict;
      lookup.message = pid_error(*pid, opened.verdict, opened.errnum).what();
      return lookup;
    }
    lookup.report = resolver.resolve(lookup.process, options);
  } catch (const Error& e) {
    lookup.verdict = PidVerdict::kSystemError;
    // What failed names its own object ("setns into network namespace: ..."); the line names
    // the PID it was for.
    lookup.message = std::to_string(*pid) + ": " + e.what();
    return lookup;
  }
  // Everything above was read from the namespace held since the first look; this makes sure it
  // still belonged to the PID asked about when the answer was complete.
  if (!process_alive(lookup.process.pidfd.get())) {
    lookup.verdict = PidVerdict::kExitedDuringLookup;
    lookup.message = pid_error(*pid, lookup.verdict, ESRCH).what();
    return lookup;
  }
  lookup.verdict = classify_report(lookup.report);
  if (lookup.verdict != PidVerdict::kOk)
    lookup.message = std::string(argument) + ": " + no_peer_reason(lookup.report);
  return lookup;
}

}  // namespace psnic
