// End to end: DockerClient against the real dockerd on /var/run/docker.sock, with containers of
// the local psnic-test:latest image (nothing is pulled). What the API says is checked against
// what the docker CLI says.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/docker.h"
#include "tests/support/support.h"

namespace psnic {
namespace {

using test::chomp;
using test::must;
using test::run;
using test::unique_name;

constexpr const char* kImage = "psnic-test:latest";

// A container of psnic-test:latest, force-removed on destruction (also when the test failed).
// `command` is "run -d" or "create"; a failure to make it is a (non-fatal) test failure.
class Container {
 public:
  Container(char tag, const std::string& options, const std::string& command = "run -d")
      : name_(unique_name(tag)) {
    must("docker " + command + " --stop-timeout 1 --name " + name_ + " " + options + " " + kImage +
         " sleep 3600");
    id_ = chomp(must("docker inspect -f '{{.Id}}' " + name_));
  }
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;
  ~Container() { run("docker rm -f " + name_ + " >/dev/null 2>&1"); }

  const std::string& name() const { return name_; }
  const std::string& id() const { return id_; }
  std::string inspect(const std::string& format) const {
    return chomp(must("docker inspect -f '" + format + "' " + name_));
  }

 private:
  std::string name_;
  std::string id_;
};

class DockerApiTest : public ::testing::Test {
 protected:
  void SetUp() override { PSNIC_REQUIRE_ROOT(); }
};

TEST_F(DockerApiTest, Available) {
  DockerClient client;
  EXPECT_EQ(client.socket_path(), "/var/run/docker.sock");
  EXPECT_TRUE(client.available());
  // The version negotiated is the daemon's own, capped at the newest this client knows.
  const std::string daemon = chomp(must("docker version -f '{{.Server.APIVersion}}'"));
  EXPECT_EQ(client.api_version(), choose_api_version(daemon)) << "daemon API " << daemon;
  EXPECT_FALSE(client.api_version().empty());
}

TEST_F(DockerApiTest, InspectRunningContainer) {
  Container c('x', "--label psnictest.key=value --label 'psnictest.quote=say \"hi\" ünï ✓'");
  ASSERT_FALSE(HasFailure());
  const auto info = DockerClient{}.inspect(c.id());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->id, c.id());
  EXPECT_EQ(info->name, c.name());
  EXPECT_EQ(info->image, kImage);
  EXPECT_EQ(info->labels.at("psnictest.key"), "value");
  EXPECT_EQ(info->labels.at("psnictest.quote"), "say \"hi\" ünï ✓");
  EXPECT_EQ(info->labels.size(), 2u);
  EXPECT_EQ(std::to_string(info->pid), c.inspect("{{.State.Pid}}"));
  EXPECT_GT(info->pid, 0);
  EXPECT_EQ(info->network_mode, "bridge");  // 20.10 says "default"; reported as newer daemons do
  EXPECT_FALSE(info->host_network);
  EXPECT_EQ(info->pod(), "");
}

TEST_F(DockerApiTest, InspectByShortId) {
  Container c('x', "");
  ASSERT_FALSE(HasFailure());
  const auto info = DockerClient{}.inspect(c.id().substr(0, 12));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->id, c.id());
}

TEST_F(DockerApiTest, KubernetesLabels) {
  Container c('x',
              "--label io.kubernetes.pod.name=web-0 --label io.kubernetes.pod.namespace=shop "
              "--label io.kubernetes.container.name=nginx");
  ASSERT_FALSE(HasFailure());
  const auto info = DockerClient{}.inspect(c.id());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pod(), "web-0");
  EXPECT_EQ(info->pod_namespace(), "shop");
  EXPECT_EQ(info->labels.at("io.kubernetes.container.name"), "nginx");
}

TEST_F(DockerApiTest, UnknownContainerIsNullopt) {
  const std::string unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd00";
  ASSERT_NE(run("docker inspect " + unknown + " >/dev/null 2>&1").status, 0);
  DockerClient client;
  EXPECT_EQ(client.inspect(unknown), std::nullopt);
  // The client is still fine after a 404.
  EXPECT_TRUE(client.available());
}

TEST_F(DockerApiTest, RunningListsOnlyRunningContainers) {
  Container running('x', "");
  Container created('y', "", "create");
  ASSERT_FALSE(HasFailure());
  DockerClient client;
  const std::vector<std::string> ids = client.running();
  EXPECT_NE(std::find(ids.begin(), ids.end(), running.id()), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), created.id()), ids.end());
  // A container that never ran has no process.
  const auto info = client.inspect(created.id());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pid, 0);
  EXPECT_EQ(info->name, created.name());
}

TEST_F(DockerApiTest, HostNetwork) {
  Container c('x', "--network host");
  ASSERT_FALSE(HasFailure());
  const auto info = DockerClient{}.inspect(c.id());
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->host_network);
  EXPECT_EQ(info->network_mode, "host");
}

TEST_F(DockerApiTest, NoSuchSocket) {
  DockerClient client("/nonexistent.sock");
  EXPECT_FALSE(client.available());
  try {
    client.inspect("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("/nonexistent.sock: ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(e.errnum(), ENOENT) << what;
    EXPECT_EQ(what,
              "/nonexistent.sock: cannot connect to the docker daemon: no such file or directory");
  }
}

}  // namespace
}  // namespace psnic
