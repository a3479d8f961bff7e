#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/docker.h"
#include "agent/views.h"
#include "resolver/resolver.h"

namespace psnic {

// A Kubernetes pod, as kubelet names its log directory: /var/log/pods/<namespace>_<pod>_<uid>.
struct PodRef {
  std::string namespace_name;
  std::string name;
};

// The pod a kubelet log directory name stands for, when its uid is `uid`. Pure. Namespaces and
// pod names are DNS labels and subdomains: they hold no '_', so the split is unambiguous.
std::optional<PodRef> parse_pod_log_dir(std::string_view dirname, std::string_view uid);

// Looks `uid` up among the directories of `pods_dir`; nullopt when none matches or the directory
// is absent (not a Kubernetes node).
std::optional<PodRef> find_pod(const std::string& pods_dir, std::string_view uid);

// Names namespace owners for the metric labels: a Docker container's name, and its pod and
// namespace from the io.kubernetes.* labels, from the Engine API; for containerd and CRI-O the
// pod from kubelet's log directories, by the pod uid in the cgroup path. Where neither applies,
// the labels are left as they are. One thread.
class OwnerDescriber {
 public:
  explicit OwnerDescriber(std::string docker_socket = "/var/run/docker.sock",
                          std::string pods_dir = "/var/log/pods");

  // Throws Error when the Docker daemon is there but fails.
  void describe(const NetnsReport& owner, InterfaceLabels& labels);

 private:
  DockerClient docker_;
  std::string docker_socket_;
  std::string pods_dir_;
};

}  // namespace psnic
