#include "agent/owner.h"

#include <dirent.h>
#include <sys/stat.h>

namespace psnic {

std::optional<PodRef> parse_pod_log_dir(std::string_view dirname, std::string_view uid) {
  size_t first = dirname.find('_');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = dirname.find('_', first + 1);
  if (second == std::string_view::npos || dirname.find('_', second + 1) != std::string_view::npos)
    return std::nullopt;
  if (uid.empty() || dirname.substr(second + 1) != uid) return std::nullopt;
  PodRef pod{std::string(dirname.substr(0, first)),
             std::string(dirname.substr(first + 1, second - first - 1))};
  if (pod.namespace_name.empty() || pod.name.empty()) return std::nullopt;
  return pod;
}

std::optional<PodRef> find_pod(const std::string& pods_dir, std::string_view uid) {
  DIR* dir = opendir(pods_dir.c_str());
  if (dir == nullptr) return std::nullopt;
  std::optional<PodRef> found;
  while (dirent* entry = readdir(dir)) {
    found = parse_pod_log_dir(entry->d_name, uid);
    if (found) break;
  }
  closedir(dir);
  return found;
}

OwnerDescriber::OwnerDescriber(std::string docker_socket, std::string pods_dir)
    : docker_(docker_socket),
      docker_socket_(std::move(docker_socket)),
      pods_dir_(std::move(pods_dir)) {}

void OwnerDescriber::describe(const NetnsReport& owner, InterfaceLabels& labels) {
  const ContainerIdentity& identity = owner.identity;
  struct stat st {};
  if (identity.runtime == "docker" && is_container_id(identity.id) &&
      stat(docker_socket_.c_str(), &st) == 0) {
    if (std::optional<ContainerInfo> info = docker_.inspect(identity.id)) {
      labels.container_name = info->name;
      if (!info->pod().empty()) labels.pod = info->pod();
      if (!info->pod_namespace().empty()) labels.namespace_name = info->pod_namespace();
    }
  }
  if (labels.pod.empty() && !identity.pod_uid.empty()) {
    if (std::optional<PodRef> pod = find_pod(pods_dir_, identity.pod_uid)) {
      labels.pod = pod->name;
      labels.namespace_name = pod->namespace_name;
    }
  }
}

}  // namespace psnic
