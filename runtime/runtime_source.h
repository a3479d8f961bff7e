#pragma once

#include <string>

#include "agent/owner_source.h"
#include "resolver/resolver.h"

namespace psnic {

// What one runtime said of a namespace's owner.
enum class Verdict {
  kNamed,         // the runtime knows the owner, and its own facts put it in this namespace
  kContradicted,  // the owner's cgroup names a container the runtime says is not in it
  kUnknown,       // the runtime has nothing to say (not its container, or nothing to check)
};

// One container runtime (Docker, podman, containerd), as RuntimeOwners asks it. Each is found by
// itself (its socket, its processes) and asked only about owners it claims.
class RuntimeSource {
 public:
  virtual ~RuntimeSource() = default;
  // "docker", "podman", "containerd": the runtime label of psnic_runtime_up and the info metric.
  virtual const std::string& runtime() const = 0;
  // Where it is found: its API socket.
  virtual const std::string& endpoint() const = 0;
  // Whether `owner` may be this runtime's (its cgroup identity, or what else the host shows).
  // Cheap, never blocks, never throws.
  virtual bool claims(const NetnsReport& owner) const = 0;
  // Fills `facts` (labels, image, runtime) for `owner` when kNamed; says why in `why` when
  // kContradicted. May block (bounded); throws Error when the runtime fails (ECANCELED after
  // abort()).
  virtual Verdict describe(const NetnsReport& owner, OwnerFacts& facts, std::string& why) = 0;
  // Whether the runtime answers at all (a ping). May block (bounded); never throws.
  virtual bool reachable() = 0;
  // From any thread: a call in progress ends soon, and later ones at once.
  virtual void abort() = 0;
};

}  // namespace psnic
