#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace psnic {

// Who owns a process, as far as its cgroup path tells. Each field is independently optional so
// that a partial answer (a pod but no container, a runtime but no id) is still useful, while a
// field that is set is never a guess: ids and pod UIDs are only taken from strictly validated
// path components.
struct ContainerIdentity {
  std::string runtime;  // "docker", "containerd", "cri-o", "podman", or "" when unknown
  std::string id;       // container id as found (normally 64 lowercase hex), "" when none
  std::string pod_uid;  // Kubernetes pod UID in canonical dashed form, "" when none
  bool operator==(const ContainerIdentity&) const = default;
};

// Container ids, one rule for every runtime psnic reads them from (cgroups, Docker's API and
// events): lowercase hex, 64 digits in full. A prefix of at least 12 digits names a container to
// Docker's API as well (`docker ps` shows 12).
inline constexpr std::size_t kContainerIdLength = 64;
inline constexpr std::size_t kShortContainerIdLength = 12;
// A full id: 64 lowercase hex digits.
bool is_full_container_id(std::string_view id);
// A full id or a prefix of one, 12 to 64 lowercase hex digits: what may go into an API path.
bool is_container_id(std::string_view id);

// Parses the text of /proc/PID/cgroup (cgroup v1 "N:controllers:/path" lines and v2 "0::/path").
//
// The innermost container in a path wins, because that is the one whose namespaces the process
// lives in (docker-in-docker, kind nodes). When lines disagree, the most informative one wins
// (id, then pod UID, then runtime); on a tie the first line wins.
//
// A conmon monitor process (crio-conmon-*, libpod-conmon-*, podman's cgroupfs "conmon") yields
// the runtime only: conmon stays in the host network namespace, so reporting the container id or
// the pod UID for it would send the caller to the wrong namespace.
//
// Static (file-sourced) Kubernetes pods have a 32-hex UID without dashes; it is reported as is,
// since that is the UID kubelet knows the pod by.
ContainerIdentity parse_cgroup(std::string_view content);

// Reads /proc/<pid>/cgroup and parses it. Throws psnic::Error: errnum() is ESRCH when the process
// does not exist (or exited while being read), otherwise the errno of the failed system call.
ContainerIdentity read_container_identity(pid_t pid);

}  // namespace psnic
