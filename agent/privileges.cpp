#include "agent/privileges.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

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

}  // namespace psnic
