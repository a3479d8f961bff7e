#include "kernel/privileges.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace psnic {
namespace {

// From linux/capability.h; CAP_BPF (Linux 5.8) is newer than some headers.
constexpr int kCapSysPtrace = 19;
constexpr int kCapSysAdmin = 21;
constexpr int kCapNetAdmin = 12;
constexpr int kCapBpf = 39;

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
  auto has = [&](int cap) { return (caps >> cap) & 1; };
  std::string missing;
  auto need = [&](bool ok, const char* name) {
    if (!ok) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  // Loading programs and maps: CAP_BPF, or CAP_SYS_ADMIN on kernels before 5.8.
  need(has(kCapBpf) || has(kCapSysAdmin), "CAP_BPF");
  // Attaching to interfaces, and entering other network namespaces.
  need(has(kCapNetAdmin), "CAP_NET_ADMIN");
  need(has(kCapSysAdmin), "CAP_SYS_ADMIN");
  // Reading other users' processes' namespaces.
  need(has(kCapSysPtrace), "CAP_SYS_PTRACE");
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
