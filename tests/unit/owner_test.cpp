#include "runtime/owner.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "runtime/pods.h"
#include "runtime/runtimes.h"
#include "tests/support/fake_docker.h"

namespace psnic {
namespace {

constexpr const char* kUid = "dc2e3247-f929-4a88-b4ef-00376b0c86ed";

TEST(PodLogDir, SplitsNamespacePodAndUid) {
  std::optional<PodRef> pod =
      parse_pod_log_dir(std::string("kube-system_coredns-5d78c9869d-7xkqp_") + kUid, kUid);
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->namespace_name, "kube-system");
  EXPECT_EQ(pod->name, "coredns-5d78c9869d-7xkqp");
}

TEST(PodLogDir, RejectsOtherUidsAndMalformedNames) {
  EXPECT_FALSE(parse_pod_log_dir(std::string("default_web_") + kUid, "other-uid"));
  EXPECT_FALSE(parse_pod_log_dir(kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("default_") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("a_b_c_") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("_web_") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("default__") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir("default_web_", ""));
}

TEST(FindPod, LooksTheUidUpAmongKubeletsDirectories) {
  char dir[] = "/tmp/psnictest-pods-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string base = dir;
  std::string mine = base + "/monitoring_prometheus-0_" + kUid;
  std::string other = base + "/default_web_11111111-2222-3333-4444-555555555555";
  ASSERT_EQ(mkdir(mine.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(other.c_str(), 0700), 0);
  std::optional<PodRef> pod = find_pod(base, kUid);
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->namespace_name, "monitoring");
  EXPECT_EQ(pod->name, "prometheus-0");
  EXPECT_FALSE(find_pod(base, "99999999-2222-3333-4444-555555555555"));
  EXPECT_FALSE(find_pod(base + "/absent", kUid));
  rmdir(mine.c_str());
  rmdir(other.c_str());
  rmdir(dir);
}

TEST(RuntimeOwners, PodFromKubeletDirectoriesWhenNoRuntimeApplies) {
  char dir[] = "/tmp/psnictest-pods-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string pod_dir = std::string(dir) + "/shop_cart-7f9c_" + kUid;
  ASSERT_EQ(mkdir(pod_dir.c_str(), 0700), 0);
  EngineRuntime docker("docker", "/nonexistent/docker.sock");
  RuntimeHealth health;
  RuntimeOwners owners({&docker}, health, dir);
  NetnsReport owner;
  owner.identity.runtime = "containerd";
  owner.identity.id = std::string(64, 'a');
  owner.identity.pod_uid = kUid;
  OwnerFacts facts;
  InterfaceLabels& labels = facts.labels;
  owners.describe(owner, facts);
  EXPECT_EQ(labels.pod, "cart-7f9c");
  EXPECT_EQ(labels.namespace_name, "shop");
  EXPECT_EQ(labels.container_name, "");
  rmdir(pod_dir.c_str());
  rmdir(dir);
}

// A container as GET /containers/{id}/json shows it, with what the describer reads.
std::string container_json(const std::string& id, const std::string& name,
                           const std::string& network_mode, int pid = 42) {
  return R"({"Id":")" + id + R"(","Name":"/)" + name +
         R"(","Config":{"Image":"psnic-test:latest","Labels":{}},"State":{"Pid":)" +
         std::to_string(pid) + R"(},"HostConfig":{"NetworkMode":")" + network_mode + R"("}})";
}

NetnsReport docker_owner(const std::string& id) {
  NetnsReport owner;
  owner.identity.runtime = "docker";
  owner.identity.id = id;
  return owner;
}

// A fake daemon with two containers: web, and sidecar that joined web's network.
class EngineRuntimeDocker : public ::testing::Test {
 protected:
  void SetUp() override {
    docker.add_container(web, container_json(web, "web", "bridge"));
    docker.add_container(sidecar, container_json(sidecar, "sidecar", "container:" + web));
  }
  // Fills `facts` as RuntimeOwners does; the verdict.
  Verdict describe(const NetnsReport& owner, OwnerFacts& facts) {
    std::string why;
    return describer.describe(owner, facts, why);
  }
  const std::string web = std::string(64, 'a');
  const std::string sidecar = std::string(64, 'b');
  test::FakeDocker docker;
  EngineRuntime describer{"docker", docker.path()};
};

TEST_F(EngineRuntimeDocker, ContainerThatJoinedAnothersNetworkIsNamedAsTheOther) {
  for (const std::string& found : {web, sidecar}) {
    OwnerFacts facts;
    InterfaceLabels& labels = facts.labels;
    labels.container_id = found;
    EXPECT_EQ(describe(docker_owner(found), facts), Verdict::kNamed);
    EXPECT_EQ(labels.container_id, web) << found;
    EXPECT_EQ(labels.container_name, "web") << found;
    EXPECT_EQ(facts.image, "psnic-test:latest");
    EXPECT_EQ(facts.runtime, "docker");
  }
}

TEST_F(EngineRuntimeDocker, KeptAnswersAreAskedOnceAndForgottenWhenTheyChange) {
  auto name_of = [&](const std::string& id) {
    OwnerFacts facts;
    InterfaceLabels& labels = facts.labels;
    describe(docker_owner(id), facts);
    return labels.container_name;
  };
  auto inspections = [&] {
    size_t n = 0;
    for (const std::string& target : docker.requests())
      n += target.find("/containers/") != std::string::npos;
    return n;
  };
  // Not kept: every describe asks.
  name_of(web);
  name_of(web);
  EXPECT_EQ(inspections(), 2u);
  describer.keep_answers(true);
  name_of(web);
  name_of(web);
  EXPECT_EQ(inspections(), 3u);
  EXPECT_EQ(name_of(sidecar), "web");  // two questions: the sidecar, then whose network it joined
  EXPECT_EQ(inspections(), 5u);
  // web renamed: forgotten for itself and for the sidecar.
  docker.add_container(web, container_json(web, "shop", "bridge"));
  describer.forget(web);
  EXPECT_EQ(name_of(web), "shop");
  EXPECT_EQ(name_of(sidecar), "shop");
  EXPECT_EQ(inspections(), 8u);
  describer.keep_answers(false);
  name_of(web);
  EXPECT_EQ(inspections(), 9u);
}

}  // namespace
}  // namespace psnic
