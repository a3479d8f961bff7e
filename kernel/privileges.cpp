#include "kernel/privileges.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

namespace psnic {
namespace {

// What psnic-agent needs, by number (linux/capability.h) and name (capabilities(7)):
// CAP_NET_ADMIN attaches the programs to host interfaces; CAP_SYS_ADMIN enters containers'
// network namespaces (setns) and loads the programs and maps; CAP_SYS_PTRACE opens other users'
// processes' /proc/PID/ns/net (ptrace-checked). README's table says the same, and the tests run
// a non-root agent with exactly these.
constexpr std::pair<int, const char*> kAgentCapabilities[] = {
    {12, "CAP_NET_ADMIN"}, {21, "CAP_SYS_ADMIN"}, {19, "CAP_SYS_PTRACE"}};

uint64_t effective_capabilities() {
  uint64_t caps = 0;
  if (std::FILE* status = std::fopen("/proc/self/status", "re")) {
    char line[256];
    while (std::fgets(line, sizeof line, status))
      if (std::strncmp(line, "CapEff:", 7) == 0) caps = std::strtoull(line + 7, nullptr, 16);
    std::fclose(status);
  }
  return caps;
}

std::string first_line(const char* path) {
  char line[64] = "";
  if (std::FILE* file = std::fopen(path, "re")) {
    if (!std::fgets(line, sizeof line, file)) line[0] = 0;
    std::fclose(file);
  }
  return std::string(line, strcspn(line, "\n"));
}

}  // namespace

std::string missing_agent_capabilities() {
  uint64_t caps = effective_capabilities();
  std::string missing;
  // CAP_BPF and CAP_PERFMON are not asked for: CAP_SYS_ADMIN, which setns needs anyway, covers
  // loading programs and maps.
  for (const auto& [cap, name] : kAgentCapabilities)
    if (!((caps >> cap) & 1)) missing += (missing.empty() ? "" : ", ") + std::string(name);
  return missing;
}

std::optional<bool> shares_host_namespace(const char* kind) {
  struct stat self {};
  if (stat((std::string("/proc/self/ns/") + kind).c_str(), &self) < 0) return std::nullopt;
  auto same_as = [&](const std::string& pid) -> std::optional<bool> {
    struct stat host {};
    if (stat(("/proc/" + pid + "/ns/" + kind).c_str(), &host) < 0) return std::nullopt;
    return host.st_dev == self.st_dev && host.st_ino == self.st_ino;
  };
  // The host's init, PID 1. Where it may not be inspected (a sandbox can deny it even to root),
  // kthreadd: kernel threads exist only in the initial PID namespace and run in the initial
  // namespaces, so PID 2 is kthreadd exactly when PID 1 is the host's init.
  if (std::optional<bool> same = same_as("1")) return same;
  if (first_line("/proc/2/comm") == "kthreadd") return same_as("2");
  return std::nullopt;
}

std::string missing_host_view() {
  // A container's entrypoint is PID 1 of the container's own PID namespace; in the host's, PID 1
  // is the host's init and never psnic-agent.
  if (getpid() == 1)
    return "not in the host's PID namespace (run the container with --pid host, or hostPID: "
           "true): other containers' processes are invisible from here";
  if (shares_host_namespace("net") == false)
    return "not in the host's network namespace (run the container with --network host, or "
           "hostNetwork: true): the host peers of containers' interfaces are invisible from here";
  return {};
}

}  // namespace psnic
