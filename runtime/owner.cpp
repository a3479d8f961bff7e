#include "runtime/owner.h"

#include <sys/stat.h>

#include <cerrno>

#include "base/error.h"
#include "resolver/cgroup.h"

namespace psnic {

uint64_t EngineRuntime::proc_netns_inode(pid_t pid) {
  struct stat st {};
  if (pid <= 0 || stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

EngineRuntime::EngineRuntime(std::string runtime, std::string socket, NetnsOf netns_of)
    : runtime_(std::move(runtime)),
      socket_(std::move(socket)),
      netns_of_(std::move(netns_of)),
      client_(socket_, stop_.get_token()) {}

bool EngineRuntime::claims(const NetnsReport& owner) const {
  struct stat st {};
  return owner.identity.runtime == runtime_ && is_container_id(owner.identity.id) &&
         stat(socket_.c_str(), &st) == 0;
}

bool EngineRuntime::reachable() { return client_.available(); }

std::optional<EngineRuntime::Answer> EngineRuntime::ask(const std::string& id, bool fresh) {
  uint64_t forgotten;
  {
    std::lock_guard lock(mutex_);
    if (auto kept = answers_.find(id); !fresh && kept != answers_.end()) return kept->second;
    forgotten = forgotten_;
  }
  std::optional<ContainerInfo> info = client_.inspect(id);
  if (!info) return std::nullopt;
  // The namespace is the one of the container whose network this one joined: the series are
  // that container's, whichever process psnic found in the namespace first.
  constexpr std::string_view kJoined = "container:";
  if (info->network_mode.rfind(kJoined, 0) == 0) {
    std::string owner = info->network_mode.substr(kJoined.size());
    if (is_container_id(owner))
      if (std::optional<ContainerInfo> joined = client_.inspect(owner)) info = std::move(joined);
  }
  Answer answer{info->id, info->name, info->pod(), info->pod_namespace(), info->image, info->pid};
  std::lock_guard lock(mutex_);
  // A rename heard of while the daemon was asked may be newer than this answer: not kept.
  if (keep_answers_ && forgotten == forgotten_) {
    constexpr size_t kMaxAnswers = 65536;  // removals are forgotten; this only bounds a leak
    if (answers_.size() >= kMaxAnswers) answers_.clear();
    answers_.insert_or_assign(id, answer);
  }
  return answer;
}

void EngineRuntime::keep_answers(bool keep) {
  std::lock_guard lock(mutex_);
  keep_answers_ = keep;
  if (keep) return;
  answers_.clear();
  ++forgotten_;
}

void EngineRuntime::forget(const std::string& container_id) {
  std::lock_guard lock(mutex_);
  ++forgotten_;
  // Also the answers that name it for a container that joined its network.
  std::erase_if(answers_, [&](const auto& entry) {
    return entry.first == container_id || entry.second.id == container_id;
  });
}

Verdict EngineRuntime::describe(const NetnsReport& owner, OwnerFacts& facts, std::string& why) {
  const std::string& id = owner.identity.id;
  std::optional<Answer> answer = ask(id, /*fresh=*/false);
  // The namespace must be the container's own, by the runtime's fact (its State.Pid's), not the
  // cgroup's word: a process that can write cgroups can put itself in one named for any
  // container. A kept answer may predate a restart (a new pid): asked again before judging.
  // An owner without a namespace inode (a caller that has none) is not checked.
  auto in_namespace = [&](const Answer& a) {
    return owner.netns_inode == 0 || (a.pid > 0 && netns_of_(a.pid) == owner.netns_inode);
  };
  if (answer && !in_namespace(*answer)) answer = ask(id, /*fresh=*/true);
  if (!answer) {
    why = runtime_ + " has no container " + id;
    return Verdict::kContradicted;
  }
  if (!in_namespace(*answer)) {
    why = answer->pid > 0 ? runtime_ + " puts " + answer->id + " in the network namespace of pid " +
                                std::to_string(answer->pid) + ", not this one"
                          : runtime_ + " says " + answer->id + " is not running";
    return Verdict::kContradicted;
  }
  InterfaceLabels& labels = facts.labels;
  labels.container_id = answer->id;
  labels.container_name = answer->name;
  labels.pod = answer->pod;
  labels.namespace_name = answer->pod_namespace;
  facts.image = answer->image;
  facts.runtime = runtime_;
  return Verdict::kNamed;
}

EngineOwnerEvents::EngineOwnerEvents(EngineRuntime& runtime) : runtime_(runtime) {}

bool EngineOwnerEvents::connect() {
  stream_.reset();
  runtime_.keep_answers(false);
  last_error_.clear();
  struct stat st {};
  if (stat(runtime_.endpoint().c_str(), &st) != 0) {
    last_error_ = runtime_.endpoint() + ": no such socket";
    return false;  // not on this host (yet)
  }
  try {
    stream_.emplace(DockerEvents::open(runtime_.endpoint(), stop_.get_token()));
  } catch (const Error& e) {
    last_error_ = e.what();
    return false;
  }
  // Answers are kept only while every change to them is heard of.
  runtime_.keep_answers(true);
  return true;
}

int EngineOwnerEvents::fd() const { return stream_ ? stream_->fd() : -1; }

std::vector<std::string> EngineOwnerEvents::drain(bool& closed) {
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
    runtime_.keep_answers(false);
    throw;
  }
  for (const ContainerEvent& event : events) {
    if (event.action == "rename" || event.action == "destroy" || event.action == "start")
      runtime_.forget(event.id);
    if (event.action == "start" || event.action == "rename") changed.push_back(event.id);
  }
  if (closed) runtime_.keep_answers(false);
  return changed;
}

std::string EngineOwnerEvents::name() const {
  return runtime_.runtime() + " events on " + runtime_.endpoint();
}

}  // namespace psnic
