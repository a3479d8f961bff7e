#pragma once

#include <optional>
#include <string>

namespace psnic {

// The capabilities psnic-agent needs (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE) that the
// process lacks, named as in capabilities(7) ("CAP_NET_ADMIN, CAP_SYS_PTRACE"); empty when it
// has them all. Read from /proc/self/status.
std::string missing_agent_capabilities();

// What keeps the agent from seeing the host as the host sees itself, in one line ("not in the
// host's PID namespace: ..."); empty when nothing does. A confined agent (a container, a
// sandboxed service) needs the host's PID and network namespaces: other containers' processes,
// and the host peers of their interfaces, are invisible from anywhere else.
std::string missing_host_view();

// Whether this process is in the host's `kind` ("mnt", "net") namespace, its init's; nullopt
// when that cannot be told (outside the host's PID namespace, or the host's init hidden).
std::optional<bool> shares_host_namespace(const char* kind);

}  // namespace psnic
