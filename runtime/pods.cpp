#include "runtime/pods.h"

#include <dirent.h>

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

}  // namespace psnic
