#include "runtime/owner.h"

#include <sys/stat.h>

#include "base/error.h"
#include "resolver/cgroup.h"

namespace psnic {

OwnerDescriber::OwnerDescriber(std::string docker_socket, std::string pods_dir)
    : docker_(docker_socket, stop_.get_token()),
      docker_socket_(std::move(docker_socket)),
      pods_dir_(std::move(pods_dir)) {}

std::optional<OwnerDescriber::Answer> OwnerDescriber::ask_docker(const std::string& id) {
  uint64_t forgotten;
  {
    std::lock_guard lock(mutex_);
    if (auto kept = answers_.find(id); kept != answers_.end()) return kept->second;
    forgotten = forgotten_;
  }
  std::optional<ContainerInfo> info = docker_.inspect(id);
  if (!info) return std::nullopt;
  // The namespace is the one of the container whose network this one joined: the series are
  // that container's, whichever process psnic found in the namespace first.
  constexpr std::string_view kJoined = "container:";
  if (info->network_mode.rfind(kJoined, 0) == 0) {
    std::string owner = info->network_mode.substr(kJoined.size());
    if (is_container_id(owner))
      if (std::optional<ContainerInfo> joined = docker_.inspect(owner)) info = std::move(joined);
  }
  Answer answer{info->id, info->name, info->pod(), info->pod_namespace(), info->image};
  std::lock_guard lock(mutex_);
  // A rename heard of while the daemon was asked may be newer than this answer: not kept.
  if (keep_answers_ && forgotten == forgotten_) {
    constexpr size_t kMaxAnswers = 65536;  // removals are forgotten; this only bounds a leak
    if (answers_.size() >= kMaxAnswers) answers_.clear();
    answers_.emplace(id, answer);
  }
  return answer;
}

void OwnerDescriber::keep_answers(bool keep) {
  std::lock_guard lock(mutex_);
  keep_answers_ = keep;
  if (keep) return;
  answers_.clear();
  ++forgotten_;
}

void OwnerDescriber::forget(const std::string& container_id) {
  std::lock_guard lock(mutex_);
  ++forgotten_;
  // Also the answers that name it for a container that joined its network.
  std::erase_if(answers_, [&](const auto& entry) {
    return entry.first == container_id || entry.second.id == container_id;
  });
}

void OwnerDescriber::describe(const NetnsReport& owner, OwnerFacts& facts) {
  InterfaceLabels& labels = facts.labels;
  const ContainerIdentity& identity = owner.identity;
  struct stat st {};
  if (identity.runtime == "docker" && is_container_id(identity.id) &&
      stat(docker_socket_.c_str(), &st) == 0) {
    if (std::optional<Answer> answer = ask_docker(identity.id)) {
      labels.container_id = answer->id;
      labels.container_name = answer->name;
      facts.image = answer->image;
      facts.runtime = "docker";
      if (!answer->pod.empty()) labels.pod = answer->pod;
      if (!answer->pod_namespace.empty()) labels.namespace_name = answer->pod_namespace;
    }
  }
  if (labels.pod.empty() && !identity.pod_uid.empty()) {
    if (std::optional<PodRef> pod = find_pod(pods_dir_, identity.pod_uid)) {
      labels.pod = pod->name;
      labels.namespace_name = pod->namespace_name;
    }
  }
}

DockerOwnerEvents::DockerOwnerEvents(OwnerDescriber& describer, std::string socket)
    : describer_(describer), socket_(std::move(socket)) {}

bool DockerOwnerEvents::connect() {
  stream_.reset();
  describer_.keep_answers(false);
  struct stat st {};
  if (stat(socket_.c_str(), &st) != 0) return false;  // no Docker on this host (yet)
  try {
    stream_.emplace(DockerEvents::open(socket_, stop_.get_token()));
  } catch (const Error&) {
    return false;
  }
  // Answers are kept only while every change to them is heard of.
  describer_.keep_answers(true);
  return true;
}

int DockerOwnerEvents::fd() const { return stream_ ? stream_->fd() : -1; }

std::vector<std::string> DockerOwnerEvents::drain(bool& closed) {
  std::vector<std::string> changed;
  if (!stream_) {
    closed = true;
    return changed;
  }
  std::vector<ContainerEvent> events;
  try {
    events = stream_->drain(closed);
  } catch (const Error&) {
    closed = true;
    describer_.keep_answers(false);
    throw;
  }
  for (const ContainerEvent& event : events) {
    if (event.action == "rename" || event.action == "destroy") describer_.forget(event.id);
    if (event.action == "start" || event.action == "rename") changed.push_back(event.id);
  }
  if (closed) describer_.keep_answers(false);
  return changed;
}

std::string DockerOwnerEvents::name() const { return "docker events on " + socket_; }

}  // namespace psnic
