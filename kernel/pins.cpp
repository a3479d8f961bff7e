#include "kernel/pins.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "base/error.h"
#include "kernel/privileges.h"
#include "kernel/tc_filter.h"
#include "resolver/netlink.h"

namespace psnic {
namespace {

constexpr const char* kLinksDir = "/links";
constexpr const char* kIngress = "_ingress";
constexpr const char* kEgress = "_egress";
constexpr const char* kPeer = "_peer";

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::vector<std::string> entries(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  closedir(dir);
  return names;
}

bool is_empty_directory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && entries(path).empty();
}

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void make_directory(const std::string& path) {
  if (mkdir(path.c_str(), 0700) < 0 && errno != EEXIST) throw system_error(path, errno);
}

// Creates `path` and any missing parents on a bpf filesystem. When the nearest existing ancestor
// is `mount_point` itself with nothing mounted on it (a host that has not mounted /sys/fs/bpf),
// mounts one there first and returns true. Any other directory off a bpf filesystem is refused:
// a mount on whatever --pin-dir names would be a host change nobody asked for.
bool make_bpffs_directory(const std::string& path, const std::string& mount_point) {
  std::vector<std::string> missing;
  std::string existing = path;
  while (!exists(existing)) {
    missing.push_back(existing);
    std::string parent = parent_of(existing);
    if (parent == existing) break;
    existing = parent;
  }
  bool mounted = false;
  if (!on_bpffs(existing)) {
    if (existing != mount_point)
      throw Error(path, ENOTSUP,
                  "not on a bpf filesystem (psnic mounts one on " + mount_point + " only)");
    if (!is_empty_directory(existing))
      throw Error(path, ENOTSUP,
                  "not on a bpf filesystem, and " + existing +
                      " is not an empty directory to mount one on");
    // In a mount namespace of its own (a container, a sandboxed service), a bpf filesystem
    // mounted here would be seen by this process alone and go with it: pins that a restarted
    // agent never finds. The host's must be mounted in.
    if (shares_host_namespace("mnt") == false)
      throw Error(path, ENOTSUP,
                  "not on a bpf filesystem, and this is not the host's mount namespace: mount "
                  "the host's " +
                      existing + " in (docker run -v " + existing + ":" + existing +
                      "), with a bpf filesystem mounted there on the host");
    if (mount("bpf", existing.c_str(), "bpf", 0, "mode=0700") < 0)
      throw Error(existing, errno, std::string("mounting a bpf filesystem: ") + strerror(errno));
    mounted = true;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) make_directory(*it);
  return mounted;
}

// `path` without "." or ".." components, repeated or trailing slashes: the form compared with the
// mount point and used in messages.
std::string normal_path(const std::string& path) {
  std::string normal = std::filesystem::path(path).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

// "<ifindex>_ingress", "<ifindex>_egress", "<ifindex>_peer" -> ifindex; 0 for any other name.
uint32_t ifindex_of_pin(std::string_view name) {
  uint32_t ifindex = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), ifindex);
  std::string_view rest(end, static_cast<size_t>(name.data() + name.size() - end));
  if (ec != std::errc() || (rest != kIngress && rest != kEgress && rest != kPeer)) return 0;
  return ifindex;
}

// Detaches a pinned link and removes its pin. Detached first: the kernel releases a link whose
// last pin goes in a work queue, some time later, and until then it would go on running.
bool detach_and_unpin(const std::string& pin) {
  if (Fd link(bpf_obj_get(pin.c_str())); link.valid()) bpf_link_detach(link.get());
  return unlink(pin.c_str()) == 0;
}

uint32_t map_id_of(const std::string& map_path) {
  Fd map(bpf_obj_get(map_path.c_str()));
  if (!map.valid()) return 0;
  bpf_map_info info{};
  uint32_t length = sizeof info;
  return bpf_obj_get_info_by_fd(map.get(), &info, &length) == 0 ? info.id : 0;
}

}  // namespace

bool on_bpffs(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

PinDir PinDir::lock(const std::string& path) {
  if (!on_bpffs(path)) throw Error(path, ENOTSUP, "not on a bpf filesystem");
  Fd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) throw system_error(path, errno);
  if (flock(dir.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) throw Error(path, EBUSY, "in use by another psnic-agent");
    throw system_error(path, errno);
  }
  return PinDir(path, std::move(dir));
}

PinDir PinDir::open(const std::string& given, const std::string& mount_point) {
  if (given.empty() || given[0] != '/')
    throw Error("pin directory " + given, EINVAL, "not absolute");
  const std::string path = normal_path(given);
  const bool mounted = make_bpffs_directory(path, normal_path(mount_point));
  make_directory(path + kLinksDir);
  PinDir pins = lock(path);
  pins.mounted_bpffs_ = mounted;
  return pins;
}

std::optional<PinDir> PinDir::open_existing(const std::string& path) {
  if (path.empty() || path[0] != '/') throw Error("pin directory " + path, EINVAL, "not absolute");
  if (!exists(path)) return std::nullopt;
  return lock(path);
}

std::string PinDir::link_path(uint32_t ifindex, bool ingress) const {
  return path_ + kLinksDir + "/" + std::to_string(ifindex) + (ingress ? kIngress : kEgress);
}

void PinDir::pin_link(int link_fd, uint32_t ifindex, bool ingress) const {
  std::string path = link_path(ifindex, ingress);
  unlink(path.c_str());  // a stale pin of an interface that went while no agent ran
  if (bpf_obj_pin(link_fd, path.c_str()) < 0) throw system_error(path, errno);
}

Fd PinDir::pinned_link(uint32_t ifindex, bool ingress) const {
  return Fd(bpf_obj_get(link_path(ifindex, ingress).c_str()));
}

void PinDir::unpin_link(uint32_t ifindex, bool ingress) const {
  detach_and_unpin(link_path(ifindex, ingress));
}

std::string PinDir::peer_link_path(uint32_t ifindex) const {
  return path_ + kLinksDir + "/" + std::to_string(ifindex) + kPeer;
}

void PinDir::pin_peer_link(int link_fd, uint32_t ifindex) const {
  std::string path = peer_link_path(ifindex);
  unlink(path.c_str());
  if (bpf_obj_pin(link_fd, path.c_str()) < 0) throw system_error(path, errno);
}

Fd PinDir::pinned_peer_link(uint32_t ifindex) const {
  return Fd(bpf_obj_get(peer_link_path(ifindex).c_str()));
}

void PinDir::unpin_peer_link(uint32_t ifindex) const { detach_and_unpin(peer_link_path(ifindex)); }

std::vector<uint32_t> PinDir::pinned_ifindexes() const {
  std::set<uint32_t> found;
  for (const std::string& name : entries(path_ + kLinksDir))
    if (uint32_t ifindex = ifindex_of_pin(name)) found.insert(ifindex);
  return {found.begin(), found.end()};
}

CleanupReport cleanup_pins(const std::string& path, const std::string& rcu_knob) {
  CleanupReport report;
  std::optional<PinDir> pins = PinDir::open_existing(path);
  if (!pins) return report;
  // First: the host's setting matters more than psnic's leftovers. A record that cannot be
  // written back stays, and with it the directory.
  report.rcu_expedited = restore_expedited(rcu_knob, pins->rcu_expedited_record_path());

  // The filters first: while the maps are pinned, their ids tell psnic's filters from those of
  // another psnic (a --pid agent) that must stay. Either map: the pair that ran counted into one
  // of them, as --split said.
  std::vector<uint32_t> map_ids;
  for (const std::string& map : {pins->map_path(), pins->split_map_path()})
    if (uint32_t id = map_id_of(map)) map_ids.push_back(id);
  if (!map_ids.empty()) {
    for (const Link& link : NetlinkSocket::open().dump_links())
      for (uint32_t map_id : map_ids)
        report.tc_filters += remove_tc_filters_of_map(link.ifindex, map_id);
  }
  std::string links_dir = path + kLinksDir;
  for (const std::string& name : entries(links_dir)) {
    if (ifindex_of_pin(name) == 0) continue;  // not psnic's; left alone
    if (detach_and_unpin(links_dir + "/" + name)) ++report.links;
  }
  report.map = unlink(pins->map_path().c_str()) == 0;
  unlink((pins->path() + "/peers").c_str());
  unlink((pins->path() + "/received_at_peer").c_str());
  report.split_map = unlink(pins->split_map_path().c_str()) == 0;
  unlink(pins->labels_path().c_str());
  rmdir(links_dir.c_str());
  report.directory = rmdir(path.c_str()) == 0;
  return report;
}

}  // namespace psnic
