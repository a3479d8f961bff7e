// End to end: DockerEvents subscribed to the real dockerd on /var/run/docker.sock. What
// `docker run`, `docker rename`, `docker kill`, `docker start` and `docker rm -f` do to a container
// of the local psnic-test:latest image arrives as events within 2 s of the command's return.
#include "runtime/docker_events.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/docker.h"
#include "tests/e2e/e2e_support.h"

namespace psnic::test::e2e {
namespace {

constexpr auto kWithin = std::chrono::seconds(2);

// The events of a subscription, as they come. Other tests' containers have events too: each
// look is for one container's.
class EventLog {
 public:
  explicit EventLog(DockerEvents& events) : events_(events) {}

  // Waits up to 2 s for event `action` of container `id`, polling the subscription's fd; nullopt
  // (and a failure) when it did not come.
  std::optional<ContainerEvent> wait_for(const std::string& id, const std::string& action) {
    const auto deadline = Clock::now() + kWithin;
    for (;;) {
      for (; looked_at_ < seen_.size(); ++looked_at_) {
        const ContainerEvent& e = seen_[looked_at_];
        if (e.id == id && e.action == action) return seen_[looked_at_++];
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{events_.fd(), POLLIN, 0};
      if (closed_ || left <= 0 || poll(&p, 1, static_cast<int>(left)) != 1) break;
      for (ContainerEvent& e : events_.drain(closed_)) seen_.push_back(std::move(e));
    }
    ADD_FAILURE() << "no \"" << action << "\" event of " << id << " within 2 s"
                  << (closed_ ? " (the stream closed)" : "");
    return std::nullopt;
  }

  // The actions of container `id` seen so far, in order.
  std::vector<std::string> actions_of(const std::string& id) const {
    std::vector<std::string> actions;
    for (const ContainerEvent& e : seen_)
      if (e.id == id) actions.push_back(e.action);
    return actions;
  }

 private:
  DockerEvents& events_;
  std::vector<ContainerEvent> seen_;
  size_t looked_at_ = 0;  // the events before it were looked at (waited for in order)
  bool closed_ = false;
};

// Force-removes containers by name on destruction: also when the test failed half-way, and
// under either of the names a renamed container had.
class RemovedAtEnd {
 public:
  explicit RemovedAtEnd(std::vector<std::string> names) : names_(std::move(names)) {}
  RemovedAtEnd(const RemovedAtEnd&) = delete;
  RemovedAtEnd& operator=(const RemovedAtEnd&) = delete;
  ~RemovedAtEnd() {
    for (const std::string& name : names_) run("docker rm -f " + name + " >/dev/null 2>&1");
  }

 private:
  std::vector<std::string> names_;
};

// `docker run`s a container named `name` sleeping in psnic-test:latest; its full id.
std::string run_container(const std::string& name) {
  return chomp(must("docker run -d --stop-timeout 1 --name " + name + " " + kImage + " sleep 600"));
}

using DockerEventsE2eTest = E2eTest;

TEST_F(DockerEventsE2eTest, StartRenameAndRemove) {
  DockerEvents events = DockerEvents::open();
  const std::string daemon = chomp(must("docker version -f '{{.Server.APIVersion}}'"));
  EXPECT_EQ(events.api_version(), choose_api_version(daemon)) << "daemon API " << daemon;
  EventLog log(events);

  const std::string name = unique_name('e');
  const std::string renamed = unique_name('f');
  RemovedAtEnd cleanup({name, renamed});
  const std::string id = run_container(name);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(id.size(), 64u) << id;

  const auto start = log.wait_for(id, "start");
  ASSERT_TRUE(start);
  EXPECT_EQ(start->name, name);

  must("docker rename " + name + " " + renamed);
  const auto rename = log.wait_for(id, "rename");
  ASSERT_TRUE(rename);
  EXPECT_EQ(rename->name, renamed);

  must("docker rm -f " + renamed);
  const auto die = log.wait_for(id, "die");
  const auto destroy = log.wait_for(id, "destroy");
  ASSERT_TRUE(die && destroy);
  EXPECT_EQ(die->name, renamed);
  EXPECT_EQ(destroy->name, renamed);

  // Only what the subscription asked for: no create, attach, kill...
  EXPECT_EQ(log.actions_of(id), (std::vector<std::string>{"start", "rename", "die", "destroy"}));
}

TEST_F(DockerEventsE2eTest, KillAndStartAgain) {
  const std::string name = unique_name('g');
  RemovedAtEnd cleanup({name});
  const std::string id = run_container(name);
  ASSERT_FALSE(HasFailure());
  // Subscribed after the start: only what happens from now on comes.
  DockerEvents events = DockerEvents::open();
  EventLog log(events);

  must("docker kill " + name);
  const auto die = log.wait_for(id, "die");
  ASSERT_TRUE(die);
  EXPECT_EQ(die->name, name);

  must("docker start " + name);
  const auto start = log.wait_for(id, "start");
  ASSERT_TRUE(start);
  EXPECT_EQ(start->name, name);
  EXPECT_EQ(log.actions_of(id), (std::vector<std::string>{"die", "start"}));
}

TEST(DockerEventsE2eTransportTest, NoSuchSocket) {
  const std::string path = "/run/psnictest-no-such-docker.sock";
  try {
    DockerEvents::open(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), ENOENT);
    EXPECT_EQ(e.object(), path);
    EXPECT_EQ(std::string(e.what()),
              path + ": cannot connect to the docker daemon: no such file or directory");
  }
}

}  // namespace
}  // namespace psnic::test::e2e
