#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "resolver/cgroup.h"
#include "resolver/match.h"
#include "resolver/namespace.h"
#include "resolver/netlink.h"

namespace psnic {

// Everything psnic knows about one network namespace.
struct NetnsReport {
  pid_t pid = 0;               // the PID asked about, or the lowest PID in it; 0 for none
  uint64_t netns_inode = 0;    // the namespace's identity
  std::string netns_name;      // its `ip netns` name (/run/netns), if it has one and it was asked
  bool host_network = false;   // the caller's own namespace: no interface of its own
  ContainerIdentity identity;  // filled when ResolveOptions::identity
  std::vector<InterfacePair> interfaces;

  bool has_host_peer() const;
};

struct ResolveOptions {
  bool identity = false;  // also read the container identity from /proc/PID/cgroup
  // resolve_pid: also name the namespace by its `ip netns` name (a scan of /run/netns);
  // resolve_all always does.
  bool netns_name = false;
  // resolve_all: also count the containers whose processes share the caller's namespace (host
  // network), reading /proc/PID/cgroup of every process in it.
  bool host_network_containers = false;
};

// Every namespace on the host other than the caller's, and what could not be looked at.
struct BatchReport {
  std::vector<NetnsReport> namespaces;  // ordered by PID; named namespaces without one last
  size_t skipped_gone = 0;              // processes that exited while they were looked at
  size_t skipped_denied = 0;  // processes whose namespace could not be opened (EACCES, EPERM)
  // The caller's own links, from the one dump the batch made (what the agent's reconcile
  // walks, so that it need not dump them again).
  std::vector<Link> host_links;
  // Distinct container ids among the caller's namespace's processes, when asked for.
  size_t host_network_containers = 0;
};

// Resolves namespaces against the network namespace of the thread that constructed it (the
// "host"). Not thread-safe: one Resolver per thread.
class Resolver {
 public:
  Resolver();  // throws Error

  // Throws Error naming the PID: no such process, permission denied, exited during lookup.
  NetnsReport resolve_pid(pid_t pid, const ResolveOptions& options = {});

  // The namespace of a process already opened (open_process, resolver/pid_lookup.h). Whether
  // the process is still the one opened once this returns is the caller's to check.
  NetnsReport resolve(const ProcessNetns& held, const ResolveOptions& options = {});

  // One host link dump, then one netlink socket per namespace: linear in links + namespaces.
  BatchReport resolve_all(const ResolveOptions& options = {});

 private:
  NetlinkSocket host_;
  Fd own_netns_;
  uint64_t own_inode_ = 0;
  dev_t nsfs_device_ = 0;  // the filesystem every namespace file lives on
};

}  // namespace psnic
