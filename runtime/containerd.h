#pragma once

// Plain containerd's containers (ctr, nerdctl, or anything else on its API), named without
// speaking containerd's gRPC API: by the containerd shim that runs them. Every container's
// first process is the child of a `containerd-shim-runc-v2 -namespace NS -id ID -address ...`
// (containerd's own launch of it), which is the one place on the host that says, in a form psnic
// can read without a client library, which containerd namespace and container id a process
// belongs to. The cgroup path says it too with the cgroupfs driver (/<namespace>/<id>), but
// ids are arbitrary strings there, so any two-level path would look like one; and a process
// that can write cgroups chooses its path, while it cannot choose its parent's command line.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/runtime_source.h"

namespace psnic {

// A container as its shim names it.
struct ShimRef {
  std::string namespace_name;  // the containerd namespace ("default", "moby", "k8s.io")
  std::string id;              // the container id, any string containerd accepted
  bool operator==(const ShimRef&) const = default;
};

// Parses /proc/PID/cmdline (NUL-separated argv) of a containerd shim: nullopt unless argv[0]'s
// base name starts with "containerd-shim" and both -namespace and -id are given (also as
// --flag, or -flag=value). Pure.
std::optional<ShimRef> parse_shim_cmdline(std::string_view cmdline);

// nerdctl's name for container `id` in namespace `ns`, from its name store: nerdctl keeps one
// file per name, <data_root>/<hash of the containerd address>/names/<ns>/<name>, holding the id.
// "" when none names it (or the store is absent). Plain directory and file reads.
std::string nerdctl_name(const std::string& data_root, std::string_view ns, std::string_view id);

// containerd as a runtime for RuntimeOwners. Claims owners whose cgroup says containerd outside
// Kubernetes, or says no runtime at all (ctr's ids are not hex, so the cgroup parser finds no
// id). Names them:
//   container_id    the shim's -id
//   container_name  "<containerd namespace>/<nerdctl name, else the id>": the namespace says
//                   which tenant's container it is (Docker's own are "moby/<id>"), and it is not
//                   the Kubernetes namespace label
//   image           "" (only containerd's API has it)
class ContainerdRuntime : public RuntimeSource {
 public:
  explicit ContainerdRuntime(std::string socket = "/run/containerd/containerd.sock",
                             std::string nerdctl_root = "/var/lib/nerdctl",
                             std::string proc = "/proc");

  const std::string& runtime() const override { return runtime_; }
  const std::string& endpoint() const override { return socket_; }
  bool claims(const NetnsReport& owner) const override;
  Verdict describe(const NetnsReport& owner, OwnerFacts& facts, std::string& why) override;
  // Whether containerd's socket accepts a connection (psnic speaks nothing on it).
  bool reachable() override;
  void abort() override {}

  // The shim among the ancestors of `pid` (its parent normally): one in the host's mount
  // namespace (PID 1's), outside `netns_inode`, so that a fake shim inside a container is no
  // shim. nullopt when there is none within a few generations.
  std::optional<ShimRef> find_shim(pid_t pid, uint64_t netns_inode) const;

 private:
  std::string runtime_ = "containerd";
  std::string socket_;
  std::string nerdctl_root_;
  std::string proc_;
};

}  // namespace psnic
