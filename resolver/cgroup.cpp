#include "resolver/cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "base/error.h"

namespace psnic {
namespace {

// Kubelet names static (file-sourced) pods by an md5 of their manifest instead of a UUID.
constexpr std::size_t kStaticPodUidLength = 32;
constexpr std::size_t kUuidLength = 36;

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool is_lower_hex(std::string_view s, std::size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!is_lower_hex(c)) return false;
  }
  return true;
}

// 8-4-4-4-12 lowercase hex groups. systemd slice names spell the separators as '_' because '-'
// already means "child of" in a slice name.
bool is_uuid(std::string_view s, char separator) {
  if (s.size() != kUuidLength) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool separator_position = i == 8 || i == 13 || i == 18 || i == 23;
    if (separator_position ? s[i] != separator : !is_lower_hex(s[i])) return false;
  }
  return true;
}

bool consume_prefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

bool consume_suffix(std::string_view& s, std::string_view suffix) {
  if (!s.ends_with(suffix)) return false;
  s.remove_suffix(suffix.size());
  return true;
}

bool has_component(std::string_view path, std::string_view name) {
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t slash = path.find('/', begin);
    if (slash == std::string_view::npos) slash = path.size();
    if (path.substr(begin, slash - begin) == name) return true;
    begin = slash + 1;
  }
  return false;
}

std::string_view last_component(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

struct Prefix {
  std::string_view prefix;
  std::string_view runtime;
};

// Unit/cgroup name prefixes that runtimes put in front of the container id. The systemd drivers
// append ".scope"; the cgroupfs drivers of CRI-O and podman use the same prefix without it.
constexpr Prefix kContainerPrefixes[] = {
    {"docker-", "docker"}, {"cri-containerd-", "containerd"}, {"crio-", "cri-o"},
    {"libpod-", "podman"}, {"nerdctl-", "containerd"},
};

// conmon gets a cgroup named after the container it monitors. Matched leniently (any suffix):
// if a mangled conmon name fell through, the enclosing pod slice would make conmon look like a
// pod sandbox process, which is worse than knowing only the runtime.
constexpr Prefix kMonitorPrefixes[] = {
    {"crio-conmon-", "cri-o"},
    {"libpod-conmon-", "podman"},
};

// Bare-id cgroup parents (cgroupfs drivers) that name the runtime.
constexpr Prefix kBareIdParents[] = {
    {"docker", "docker"},
    // containerd namespace used by nerdctl and ctr.
    {"default", "containerd"},
};

std::optional<std::string_view> monitor_runtime(std::string_view component,
                                                std::string_view ancestors, bool innermost) {
  for (const Prefix& p : kMonitorPrefixes) {
    if (component.starts_with(p.prefix)) return p.runtime;
  }
  // podman's cgroupfs driver puts conmon in "<cgroup parent>/conmon", a leaf. Looking only at
  // the leaf also keeps the ancestor scan from going quadratic on hostile paths.
  if (innermost && component == "conmon" && has_component(ancestors, "libpod_parent")) {
    return "podman";
  }
  return std::nullopt;
}

struct Container {
  std::string_view runtime;  // empty when the path does not say
  std::string_view id;
};

std::optional<Container> match_container(std::string_view component, std::string_view ancestors) {
  if (is_full_container_id(component)) {
    const std::string_view parent = last_component(ancestors);
    for (const Prefix& p : kBareIdParents) {
      if (parent == p.prefix) return Container{p.runtime, component};
    }
    return Container{{}, component};
  }
  std::string_view name = component;
  consume_suffix(name, ".scope");
  for (const Prefix& p : kContainerPrefixes) {
    std::string_view id = name;
    if (consume_prefix(id, p.prefix) && is_full_container_id(id)) return Container{p.runtime, id};
  }
  return std::nullopt;
}

std::optional<std::string> match_pod_uid(std::string_view component) {
  std::string_view uid = component;
  char separator = '-';
  if (consume_suffix(uid, ".slice")) {
    // "kubepods-burstable-pod<uid>.slice": the pod is the last '-' separated level.
    const std::size_t dash = uid.rfind('-');
    if (dash != std::string_view::npos) uid.remove_prefix(dash + 1);
    separator = '_';
  }
  if (!consume_prefix(uid, "pod")) return std::nullopt;
  if (is_lower_hex(uid, kStaticPodUidLength)) return std::string(uid);
  if (!is_uuid(uid, separator)) return std::nullopt;
  std::string canonical(uid);
  for (char& c : canonical) {
    if (c == '_') c = '-';
  }
  return canonical;
}

ContainerIdentity parse_path(std::string_view path) {
  ContainerIdentity identity;
  bool found_container = false;
  // Right to left, so that the innermost container is the one reported.
  std::size_t end = path.size();
  while (end > 0) {
    const std::size_t slash = path.rfind('/', end - 1);
    if (slash == std::string_view::npos) break;
    const std::string_view component = path.substr(slash + 1, end - slash - 1);
    const std::string_view ancestors = path.substr(0, slash);
    const bool innermost = end == path.size();
    end = slash;

    if (found_container) {
      // A pod above an enclosing container owns that container, not ours.
      if (match_container(component, ancestors)) break;
      if (auto uid = match_pod_uid(component)) {
        identity.pod_uid = std::move(*uid);
        break;
      }
      continue;
    }
    if (auto runtime = monitor_runtime(component, ancestors, innermost)) {
      identity.runtime = *runtime;
      return identity;
    }
    if (auto container = match_container(component, ancestors)) {
      identity.runtime = container->runtime;
      identity.id = container->id;
      found_container = true;
      continue;
    }
    if (auto uid = match_pod_uid(component)) {
      // The process sits in the pod cgroup itself, outside any container of the pod.
      identity.pod_uid = std::move(*uid);
      return identity;
    }
  }
  // kubelet's cgroupfs layout names containers by bare id whatever the runtime; containerd is the
  // only mainstream CRI runtime that does so (CRI-O prefixes "crio-", dockershim is gone).
  if (found_container && identity.runtime.empty() && !identity.pod_uid.empty()) {
    identity.runtime = "containerd";
  }
  return identity;
}

// Extracts the path of one "hierarchy-id:controllers:path" line, or "" when the line is not one.
std::string_view line_path(std::string_view line) {
  const std::size_t first = line.find(':');
  if (first == 0 || first == std::string_view::npos) return {};
  for (char c : line.substr(0, first)) {
    if (c < '0' || c > '9') return {};
  }
  const std::size_t second = line.find(':', first + 1);
  if (second == std::string_view::npos) return {};
  // The path is everything after the second colon: it may itself contain colons.
  const std::string_view path = line.substr(second + 1);
  if (!path.starts_with('/')) return {};
  return path;
}

int information(const ContainerIdentity& identity) {
  return (identity.id.empty() ? 0 : 4) + (identity.pod_uid.empty() ? 0 : 2) +
         (identity.runtime.empty() ? 0 : 1);
}

Error read_failure(pid_t pid, int errnum) {
  // A missing /proc entry and a task that died under us are the same thing to the caller.
  if (errnum == ENOENT || errnum == ESRCH) {
    return Error(std::to_string(pid), ESRCH, "no such process");
  }
  return system_error(std::to_string(pid), errnum);
}

ssize_t read_retrying(int fd, char* buffer, std::size_t size) {
  ssize_t n;
  do {
    n = ::read(fd, buffer, size);
  } while (n < 0 && errno == EINTR);
  return n;
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

bool is_full_container_id(std::string_view id) { return is_lower_hex(id, kContainerIdLength); }

bool is_container_id(std::string_view id) {
  if (id.size() < kShortContainerIdLength || id.size() > kContainerIdLength) return false;
  for (char c : id) {
    if (!is_lower_hex(c)) return false;
  }
  return true;
}

ContainerIdentity parse_cgroup(std::string_view content) {
  ContainerIdentity best;
  int best_information = 0;
  constexpr int kComplete = 7;
  std::size_t begin = 0;
  while (begin < content.size() && best_information < kComplete) {
    std::size_t newline = content.find('\n', begin);
    if (newline == std::string_view::npos) newline = content.size();
    const std::string_view path = line_path(content.substr(begin, newline - begin));
    begin = newline + 1;
    if (path.empty()) continue;
    ContainerIdentity candidate = parse_path(path);
    const int candidate_information = information(candidate);
    if (candidate_information > best_information) {
      best = std::move(candidate);
      best_information = candidate_information;
    }
  }
  return best;
}

ContainerIdentity read_container_identity(pid_t pid) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/cgroup", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw read_failure(pid, errno);
  const FileDescriptor file(fd);

  char buffer[4096];
  ssize_t n = read_retrying(file.get(), buffer, sizeof buffer);
  if (n < 0) throw read_failure(pid, errno);
  // The file is a single seq_file record, so a short read has reached EOF: the common case costs
  // one read and no heap allocation.
  if (static_cast<std::size_t>(n) < sizeof buffer) {
    return parse_cgroup(std::string_view(buffer, static_cast<std::size_t>(n)));
  }
  std::string content(buffer, sizeof buffer);
  while ((n = read_retrying(file.get(), buffer, sizeof buffer)) > 0) {
    content.append(buffer, static_cast<std::size_t>(n));
  }
  if (n < 0) throw read_failure(pid, errno);
  return parse_cgroup(content);
}

}  // namespace psnic
