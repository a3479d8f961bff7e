#pragma once

// Kubelet's pod log directories, /var/log/pods/<namespace>_<pod>_<uid>: how a pod uid found in a
// cgroup path is named, for runtimes whose API psnic does not ask (containerd, CRI-O).

#include <optional>
#include <string>
#include <string_view>

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

}  // namespace psnic
