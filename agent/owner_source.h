#pragma once

// What the agent asks of container runtimes (Docker today; podman, containerd, CRI-O behind the
// same interfaces later), and what comes back. A runtime's daemon may hang: every call here may
// block, so none is made on the loop thread; RuntimeWorker makes them on a thread of its own.
#include <cstdint>
#include <string>
#include <vector>

#include "agent/views.h"
#include "resolver/resolver.h"

namespace psnic {

// Names namespace owners (container_name, pod, namespace, image) from a runtime.
class OwnerSource {
 public:
  virtual ~OwnerSource() = default;
  // Fills what the runtime calls `owner` into `facts` (container_id and interface names are
  // already set in its labels). May block; throws Error on failure. Called on one thread only,
  // the worker's.
  virtual void describe(const NetnsReport& owner, OwnerFacts& facts) = 0;
  // From any thread: a describe() in progress ends soon (throwing), and later ones at once.
  // For stopping: nothing waits for a hung daemon.
  virtual void abort() = 0;
};

// A container runtime's event stream (Docker's): which owners started or were renamed, so that
// they are named at once rather than at the next retry or reconcile.
class OwnerEvents {
 public:
  virtual ~OwnerEvents() = default;
  // Subscribes anew; false when the runtime is not there or refuses. May block (on the worker's
  // thread, never the loop's); never throws.
  virtual bool connect() = 0;
  // The subscription's fd, for epoll, while connected.
  virtual int fd() const = 0;
  // Reads what is there without blocking: the ids of containers that started or were renamed.
  // Sets `closed` when the stream ended or broke; connect() again later.
  virtual std::vector<std::string> drain(bool& closed) = 0;
  // What the stream is, for log lines: "docker events on /var/run/docker.sock".
  virtual std::string name() const = 0;
  // From any thread: a connect() in progress ends soon (returning false), and later ones at once.
  virtual void abort() = 0;
};

// One owner to name. `ticket` is the asker's (the Inventory's): it tells which interfaces wait
// for the answer, so that an answer to an earlier question (about a container since renamed, or
// an interface since gone, its ifindex reused) names nobody. `key` is the owner (its container
// id, or its namespace): a question about an owner already queued replaces the queued one.
struct OwnerRequest {
  uint64_t ticket = 0;
  std::string key;
  NetnsReport owner;       // without its interfaces
  InterfaceLabels labels;  // what is known without the runtime
};

struct OwnerAnswer {
  uint64_t ticket = 0;
  OwnerFacts facts;   // the request's labels, with what the runtime said filled in
  std::string error;  // why the source failed ("" when it answered); labels as asked then
};

}  // namespace psnic
