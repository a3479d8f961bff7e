#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/docker.h"
#include "runtime/docker_events.h"
#include "runtime/pods.h"
#include "agent/owner_source.h"
#include "agent/views.h"
#include "resolver/resolver.h"

namespace psnic {

// Names namespace owners for the metric labels: a Docker container's name, and its pod and
// namespace from the io.kubernetes.* labels, from the Engine API (a container that joined
// another's network, `--network container:X`, is named as X, whose namespace it is); for containerd
// and CRI-O the pod from kubelet's log directories, by the pod uid in the cgroup path. Where
// neither applies, the labels are left as they are. describe() runs on one thread (the
// RuntimeWorker's); keep_answers() and forget() may come from another (the events' loop).
class OwnerDescriber : public OwnerSource {
 public:
  explicit OwnerDescriber(std::string docker_socket = "/var/run/docker.sock",
                          std::string pods_dir = "/var/log/pods");

  // Throws Error when the Docker daemon is there but fails, ECANCELED after abort().
  void describe(const NetnsReport& owner, OwnerFacts& facts) override;
  void abort() override { stop_.request_stop(); }

  // While Docker's events are followed, what the daemon said of a container is kept until an
  // event says it changed (forget()): a reconcile then asks the daemon nothing it already knows.
  void keep_answers(bool keep);
  void forget(const std::string& container_id);

 private:
  struct Answer {
    std::string id, name, pod, pod_namespace, image;
  };
  std::optional<Answer> ask_docker(const std::string& container_id);

  std::stop_source stop_;
  DockerClient docker_;
  std::string docker_socket_;
  std::string pods_dir_;
  std::mutex mutex_;  // for what follows
  bool keep_answers_ = false;
  // Counts forget()s, so that an answer asked for before one is not kept after it.
  uint64_t forgotten_ = 0;
  std::unordered_map<std::string, Answer> answers_;  // by container id
};

// The Docker daemon's container events for the agent loop: a start or a rename names the
// container's interfaces again at once. Renames and removals drop the describer's answer.
class DockerOwnerEvents : public OwnerEvents {
 public:
  DockerOwnerEvents(OwnerDescriber& describer, std::string socket = "/var/run/docker.sock");

  bool connect() override;
  int fd() const override;
  std::vector<std::string> drain(bool& closed) override;
  std::string name() const override;
  void abort() override { stop_.request_stop(); }

 private:
  std::stop_source stop_;
  OwnerDescriber& describer_;
  std::string socket_;
  std::optional<DockerEvents> stream_;
};

}  // namespace psnic
