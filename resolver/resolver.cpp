#include "resolver/resolver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <optional>

#include "base/error.h"
#include "resolver/pid_lookup.h"

namespace psnic {
namespace {

constexpr const char* kNamedNetnsDir = "/run/netns";

// A netlink socket that lives in the namespace behind `netns_fd`. The calling thread enters
// the namespace only for the socket() call and is back home before anything else runs.
NetlinkSocket open_socket_in(int netns_fd) {
  EnteredNetns entered(netns_fd);
  return NetlinkSocket::open();
}

// Named namespaces (`ip netns add`, which need no process to exist), by inode. An entry is a
// namespace only while a namespace is mounted on it, on the filesystem every namespace file lives
// on: `ip netns add` creates the file before the mount and `ip netns del` leaves it for a moment
// after, so plain files are passed over.
std::map<uint64_t, std::string> named_namespaces(dev_t nsfs_device) {
  std::map<uint64_t, std::string> names;
  if (DIR* named = opendir(kNamedNetnsDir)) {
    while (dirent* entry = readdir(named)) {
      if (entry->d_name[0] == '.') continue;
      struct stat st {};
      if (fstatat(dirfd(named), entry->d_name, &st, 0) == 0 && st.st_dev == nsfs_device)
        names.emplace(st.st_ino, entry->d_name);
    }
    closedir(named);
  }
  return names;
}

// Answers the match's questions with one netlink query each, the nsid cached per namespace.
class HostQueries : public HostSide {
 public:
  HostQueries(NetlinkSocket& host, const HostLinks* dumped, NetlinkSocket& target, int own_fd)
      : host_(host), dumped_(dumped), target_(target), own_fd_(own_fd) {}

  std::optional<Link> link(uint32_t ifindex) override {
    return dumped_ ? dumped_->find(ifindex) : host_.get_link(ifindex);
  }
  int32_t own_nsid_in_target() override {
    if (!own_nsid_) own_nsid_ = target_.nsid_of(own_fd_);
    return *own_nsid_;
  }

 private:
  NetlinkSocket& host_;
  const HostLinks* dumped_;
  NetlinkSocket& target_;
  int own_fd_;
  std::optional<int32_t> own_nsid_;
};

}  // namespace

bool NetnsReport::has_host_peer() const {
  return std::any_of(interfaces.begin(), interfaces.end(),
                     [](const InterfacePair& i) { return i.placement == Placement::host_peer; });
}

Resolver::Resolver()
    : host_(NetlinkSocket::open()),
      own_netns_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
  if (!own_netns_.valid()) throw system_error("/proc/thread-self/ns/net", errno);
  struct stat st {};
  if (fstat(own_netns_.get(), &st) < 0) throw system_error("/proc/thread-self/ns/net", errno);
  own_inode_ = st.st_ino;
  nsfs_device_ = st.st_dev;
}

NetnsReport Resolver::resolve_pid(pid_t pid, const ResolveOptions& options) {
  ProcessNetns held = open_process_netns(pid);
  NetnsReport report = resolve(held, options);
  // Everything was read from the namespace held since the first look; this makes sure it still
  // belonged to the PID asked about when the answer was complete.
  ensure_alive(held);
  return report;
}

NetnsReport Resolver::resolve(const ProcessNetns& held, const ResolveOptions& options) {
  NetnsReport report;
  report.pid = held.pid;
  report.netns_inode = held.inode;
  if (held.inode == own_inode_) {
    report.host_network = true;
  } else {
    NetlinkSocket target = open_socket_in(held.netns.get());
    HostQueries host(host_, nullptr, target, own_netns_.get());
    report.interfaces = match_interfaces(target.dump_links(), host);
  }
  if (options.netns_name) {
    std::map<uint64_t, std::string> names = named_namespaces(nsfs_device_);
    if (auto name = names.find(held.inode); name != names.end()) report.netns_name = name->second;
  }
  if (options.identity) report.identity = read_container_identity(held.pid);
  return report;
}

BatchReport Resolver::resolve_all(const ResolveOptions& options) {
  BatchReport batch;

  // The lowest PID in each namespace. /proc lists PIDs in ascending order, so the first seen wins.
  std::map<uint64_t, pid_t> first_pid;
  std::set<std::string> host_network_ids;
  if (DIR* proc = opendir("/proc")) {
    char path[64];
    while (dirent* entry = readdir(proc)) {
      std::optional<pid_t> parsed = parse_pid(entry->d_name);
      if (!parsed) continue;
      pid_t pid = *parsed;
      std::snprintf(path, sizeof path, "/proc/%d/ns/net", static_cast<int>(pid));
      struct stat st {};
      if (stat(path, &st) < 0) {
        if (errno == EACCES || errno == EPERM)
          ++batch.skipped_denied;
        else
          ++batch.skipped_gone;
        continue;
      }
      if (st.st_ino != own_inode_) {
        first_pid.emplace(st.st_ino, pid);
      } else if (options.host_network_containers) {
        try {
          ContainerIdentity identity = read_container_identity(pid);
          if (!identity.id.empty()) host_network_ids.insert(std::move(identity.id));
        } catch (const Error&) {
          // Gone since the stat: nothing to count.
        }
      }
    }
    closedir(proc);
  } else {
    throw system_error("/proc", errno);
  }

  batch.host_network_containers = host_network_ids.size();

  std::map<uint64_t, std::string> names = named_namespaces(nsfs_device_);
  names.erase(own_inode_);  // the caller's own is not one of "every namespace but the caller's"

  // One host dump serves every namespace.
  HostLinks dumped(host_.dump_links());

  auto resolve_held = [&](NetnsReport& report, int netns_fd) {
    NetlinkSocket target = open_socket_in(netns_fd);
    HostQueries host(host_, &dumped, target, own_netns_.get());
    report.interfaces = match_interfaces(target.dump_links(), host);
  };

  std::vector<std::pair<pid_t, uint64_t>> by_pid;
  by_pid.reserve(first_pid.size());
  for (auto [inode, pid] : first_pid) by_pid.emplace_back(pid, inode);
  std::sort(by_pid.begin(), by_pid.end());

  for (auto [pid, inode] : by_pid) {
    try {
      ProcessNetns held = open_process_netns(pid);
      if (held.inode != inode) {  // the PID moved to another namespace or was reused
        ++batch.skipped_gone;
        continue;
      }
      NetnsReport report;
      report.pid = pid;
      report.netns_inode = inode;
      if (auto name = names.find(inode); name != names.end()) report.netns_name = name->second;
      resolve_held(report, held.netns.get());
      if (options.identity) report.identity = read_container_identity(pid);
      ensure_alive(held);
      batch.namespaces.push_back(std::move(report));
    } catch (const Error& e) {
      if (e.errnum() == EACCES || e.errnum() == EPERM)
        ++batch.skipped_denied;
      else if (e.errnum() == ESRCH)
        ++batch.skipped_gone;
      else
        throw;
    }
  }

  for (auto& [inode, name] : names) {
    if (first_pid.count(inode)) continue;
    std::string path = std::string(kNamedNetnsDir) + "/" + name;
    Fd netns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!netns.valid() || fstat(netns.get(), &st) < 0 || st.st_dev != nsfs_device_ ||
        st.st_ino != inode) {
      ++batch.skipped_gone;  // deleted since the listing
      continue;
    }
    NetnsReport report;
    report.netns_inode = inode;
    report.netns_name = name;
    resolve_held(report, netns.get());
    batch.namespaces.push_back(std::move(report));
  }
  batch.host_links = dumped.links();
  return batch;
}

}  // namespace psnic
