#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/owner_source.h"
#include "agent/views.h"
#include "resolver/resolver.h"
#include "runtime/docker.h"
#include "runtime/docker_events.h"
#include "runtime/runtime_source.h"

namespace psnic {

// A runtime that serves the Docker Engine API on a unix socket: Docker itself, and podman
// through its Docker-compatible API (`podman system service`), which answers
// GET /containers/{id}/json and streams GET /events in Docker's shapes. `runtime` ("docker",
// "podman") is the cgroup identity's runtime it claims and what psnic_container_info says.
//
// The container's name, image, and pod and namespace (io.kubernetes.* labels) come from
// inspect; a container that joined another's network (`--network container:X`) is named as X,
// whose namespace it is. The id itself came from a process's cgroup, which a process allowed to
// write cgroups can forge: the answer names the namespace only when the runtime's own fact
// agrees, the inode of /proc/<State.Pid>/ns/net being the namespace's (kContradicted otherwise).
//
// describe() runs on one thread (the RuntimeWorker's); keep_answers() and forget() may come
// from another (the events' loop).
class EngineRuntime : public RuntimeSource {
 public:
  // The network namespace inode of a process, 0 when it cannot be read (gone, denied).
  using NetnsOf = std::function<uint64_t(pid_t)>;
  static uint64_t proc_netns_inode(pid_t pid);

  EngineRuntime(std::string runtime, std::string socket, NetnsOf netns_of = proc_netns_inode);

  const std::string& runtime() const override { return runtime_; }
  const std::string& endpoint() const override { return socket_; }
  bool claims(const NetnsReport& owner) const override;
  // Throws Error when the daemon is there but fails, ECANCELED after abort().
  Verdict describe(const NetnsReport& owner, OwnerFacts& facts, std::string& why) override;
  bool reachable() override;
  void abort() override { stop_.request_stop(); }

  // While the runtime's events are followed, what it said of a container is kept until an
  // event says it changed (forget()): a reconcile then asks the daemon nothing it already knows.
  void keep_answers(bool keep);
  void forget(const std::string& container_id);

 private:
  struct Answer {
    std::string id, name, pod, pod_namespace, image;
    pid_t pid = 0;
  };
  // `fresh`: never from the kept answers.
  std::optional<Answer> ask(const std::string& container_id, bool fresh);

  std::string runtime_;
  std::string socket_;
  NetnsOf netns_of_;
  std::stop_source stop_;
  DockerClient client_;
  std::mutex mutex_;  // for what follows
  bool keep_answers_ = false;
  // Counts forget()s, so that an answer asked for before one is not kept after it.
  uint64_t forgotten_ = 0;
  std::unordered_map<std::string, Answer> answers_;  // by container id
};

// An Engine API runtime's container events (Docker's, or podman's compat /events): a start or a
// rename names the container's interfaces again at once. Renames, removals and starts drop the
// runtime's kept answer (a restarted container has a new State.Pid).
class EngineOwnerEvents : public OwnerEvents {
 public:
  explicit EngineOwnerEvents(EngineRuntime& runtime);

  // Throws nothing; false when not subscribed, the cause in last_error().
  bool connect() override;
  int fd() const override;
  std::vector<std::string> drain(bool& closed) override;
  std::string name() const override;
  void abort() override { stop_.request_stop(); }
  // Why the last connect() failed ("" when it did not).
  const std::string& last_error() const { return last_error_; }

 private:
  std::stop_source stop_;
  EngineRuntime& runtime_;
  std::optional<DockerEvents> stream_;
  std::string last_error_;
};

}  // namespace psnic
