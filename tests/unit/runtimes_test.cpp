// The runtimes behind RuntimeOwners and RuntimeEvents: which one is asked, what a runtime that
// contradicts a cgroup does to the labels, and runtimes whose socket is not what it should be.
#include "runtime/runtimes.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>

#include "runtime/containerd.h"
#include "runtime/owner.h"
#include "tests/support/captured_stderr.h"
#include "tests/support/fake_docker.h"
#include "tests/support/unix_server.h"

namespace psnic {
namespace {

using namespace std::chrono_literals;

const std::string kWeb(64, 'a');

std::string container_json(const std::string& id, const std::string& name, int pid) {
  return R"({"Id":")" + id + R"(","Name":"/)" + name +
         R"(","Config":{"Image":"shop/web:1","Labels":{}},"State":{"Pid":)" + std::to_string(pid) +
         R"(},"HostConfig":{"NetworkMode":"bridge"}})";
}

NetnsReport owner_of(const std::string& runtime, const std::string& id, uint64_t netns,
                     std::string netns_name = "") {
  NetnsReport owner;
  owner.pid = 4242;
  owner.netns_inode = netns;
  owner.netns_name = std::move(netns_name);
  owner.identity.runtime = runtime;
  owner.identity.id = id;
  return owner;
}

// psnic_runtime_up as SelfMetrics would be told it.
class RecordingSelf : public SelfReport {
 public:
  void set_attached(std::string_view, double) override {}
  void count_error(ErrorOp) override {}
  void set_runtime_up(std::string_view runtime, std::string_view socket, bool up) override {
    std::lock_guard lock(mutex_);
    up_[std::string(runtime) + " " + std::string(socket)] = up;
  }
  std::map<std::string, bool> up() {
    std::lock_guard lock(mutex_);
    return up_;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, bool> up_;
};

// Container web's process is 42, whose network namespace is 111.
uint64_t fake_netns(pid_t pid) { return pid == 42 ? 111 : pid == 43 ? 333 : 0; }

size_t inspections(const test::FakeDocker& docker) {
  size_t n = 0;
  for (const std::string& target : docker.requests())
    n += target.find("/containers/") != std::string::npos;
  return n;
}

TEST(EngineRuntime, NamesANamespaceOnlyWhenTheContainersOwnProcessIsInIt) {
  test::FakeDocker docker;
  docker.add_container(kWeb, container_json(kWeb, "web", 42));
  EngineRuntime runtime("podman", docker.path(), fake_netns);
  std::string why;
  OwnerFacts facts;
  EXPECT_FALSE(runtime.claims(owner_of("docker", kWeb, 111)));  // not podman's
  ASSERT_TRUE(runtime.claims(owner_of("podman", kWeb, 111)));
  EXPECT_EQ(runtime.describe(owner_of("podman", kWeb, 111), facts, why), Verdict::kNamed);
  EXPECT_EQ(facts.labels.container_name, "web");
  EXPECT_EQ(facts.image, "shop/web:1");
  EXPECT_EQ(facts.runtime, "podman");

  OwnerFacts forged;
  EXPECT_EQ(runtime.describe(owner_of("podman", kWeb, 222), forged, why), Verdict::kContradicted);
  EXPECT_EQ(why, "podman puts " + kWeb + " in the network namespace of pid 42, not this one");
  EXPECT_EQ(forged, OwnerFacts{});

  const std::string unknown(64, 'c');
  EXPECT_EQ(runtime.describe(owner_of("podman", unknown, 222), forged, why),
            Verdict::kContradicted);
  EXPECT_EQ(why, "podman has no container " + unknown);
  docker.add_container(kWeb, container_json(kWeb, "web", 0));
  EXPECT_EQ(runtime.describe(owner_of("podman", kWeb, 111), forged, why), Verdict::kContradicted);
  EXPECT_EQ(why, "podman says " + kWeb + " is not running");
}

TEST(EngineRuntime, AKeptAnswerThatNoLongerFitsIsAskedAgainBeforeItIsJudged) {
  test::FakeDocker docker;
  docker.add_container(kWeb, container_json(kWeb, "web", 42));
  EngineRuntime runtime("docker", docker.path(), fake_netns);
  runtime.keep_answers(true);
  std::string why;
  OwnerFacts facts;
  EXPECT_EQ(runtime.describe(owner_of("docker", kWeb, 111), facts, why), Verdict::kNamed);
  EXPECT_EQ(runtime.describe(owner_of("docker", kWeb, 111), facts, why), Verdict::kNamed);
  EXPECT_EQ(inspections(docker), 1u);
  // Restarted without an event heard: a new process in a new namespace.
  docker.add_container(kWeb, container_json(kWeb, "web", 43));
  EXPECT_EQ(runtime.describe(owner_of("docker", kWeb, 333), facts, why), Verdict::kNamed);
  EXPECT_EQ(inspections(docker), 2u);
}

TEST(RuntimeOwners, ACgroupTheRuntimeContradictsNamesNoContainerAndIsLoggedOnce) {
  test::FakeDocker docker;
  docker.add_container(kWeb, container_json(kWeb, "web", 42));
  EngineRuntime runtime("docker", docker.path(), fake_netns);
  RuntimeHealth health;
  RuntimeOwners owners({&runtime}, health, "/nonexistent");
  test::CapturedStderr err;
  for (int i = 0; i < 3; ++i) {
    OwnerFacts facts;
    facts.labels.container_id = kWeb;
    facts.labels.interface = "eth0";
    NetnsReport forged = owner_of("docker", kWeb, 222, "psnictest-b");
    forged.identity.pod_uid = "dc2e3247-f929-4a88-b4ef-00376b0c86ed";
    owners.describe(forged, facts);
    EXPECT_EQ(facts.labels.container_id, "");
    EXPECT_EQ(facts.labels.container_name, "psnictest-b");
    EXPECT_EQ(facts.labels.pod, "");
    EXPECT_EQ(facts.labels.interface, "eth0");
    EXPECT_EQ(facts.runtime, "");
  }
  const std::string out = err.read();
  size_t warnings = 0;
  for (size_t at = 0; (at = out.find("level=warn", at)) != std::string::npos; ++at) ++warnings;
  EXPECT_EQ(warnings, 1u) << out;
  EXPECT_NE(out.find("names container " + kWeb + " (docker), but docker puts"), std::string::npos)
      << out;
  // The real one is named.
  OwnerFacts facts;
  owners.describe(owner_of("docker", kWeb, 111, "ignored"), facts);
  EXPECT_EQ(facts.labels.container_id, kWeb);
  EXPECT_EQ(facts.labels.container_name, "web");
  EXPECT_EQ(facts.runtime, "docker");
}

TEST(RuntimeOwners, NetnsNamesNameOnlyNamespacesWithoutAContainerIdentity) {
  EngineRuntime podman("podman", "/nonexistent/podman.sock", fake_netns);
  RuntimeHealth health;
  RuntimeOwners owners({&podman}, health, "/nonexistent");
  OwnerFacts facts;
  facts.labels.container_name = "netns-7a1d4765";
  owners.describe(owner_of("podman", kWeb, 111, "netns-7a1d4765"), facts);
  EXPECT_EQ(facts.labels.container_name, "");  // podman's, which is not there
  OwnerFacts plain;
  owners.describe(owner_of("", "", 111, "psnictest-x"), plain);
  EXPECT_EQ(plain.labels.container_name, "psnictest-x");
}

// A socket that is there but is not the runtime: each way it can fail.
struct BadSocket {
  const char* what;
  test::FakeDocker::Reply reply;
};

class BadRuntimeSocket : public ::testing::TestWithParam<int> {};

TEST_P(BadRuntimeSocket, IsLoggedOnceNamesContainersWithoutItAndIsNotAskedAgainAtOnce) {
  const BadSocket cases[] = {
      {"garbage", test::FakeDocker::Reply(200, "this is not json")},
      {"an error", test::FakeDocker::Reply(500, R"({"message":"database is locked"})")},
      {"hangs", test::FakeDocker::Reply::hanging()},
  };
  const BadSocket& bad = cases[GetParam()];
  test::FakeDocker docker;
  docker.raw("/containers/" + kWeb + "/json", bad.reply);
  EngineRuntime runtime("docker", docker.path(), fake_netns);
  auto self = std::make_shared<RecordingSelf>();
  RuntimeHealth health(self);
  RuntimeOwners owners({&runtime}, health, "/nonexistent");
  test::CapturedStderr err;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    OwnerFacts facts;
    facts.labels.container_id = kWeb;
    EXPECT_NO_THROW(owners.describe(owner_of("docker", kWeb, 111), facts)) << bad.what;
    // Named by what else there is: its cgroup's id.
    EXPECT_EQ(facts.labels.container_id, kWeb) << bad.what;
    EXPECT_EQ(facts.labels.container_name, "") << bad.what;
  }
  // One bounded wait at most (2 s), not one per container.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s) << bad.what;
  EXPECT_EQ(inspections(docker), 1u) << bad.what;
  const std::string out = err.read();
  size_t lines = 0;
  for (size_t at = 0; (at = out.find("level=warn", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 1u) << bad.what << ": " << out;
  EXPECT_NE(out.find("msg=\"docker on " + docker.path() + ": "), std::string::npos) << out;
  EXPECT_EQ(self->up(), (std::map<std::string, bool>{{"docker " + docker.path(), false}}));
}

INSTANTIATE_TEST_SUITE_P(Each, BadRuntimeSocket, ::testing::Values(0, 1, 2));

TEST(RuntimeEvents, ASocketThatIsNotTheRuntimeIsOneLineAndTheOthersAreFollowed) {
  // Not HTTP at all: whatever is said, the answer is a line of text, and the connection closes.
  test::UnixSocketServer not_http([](int connection) {
    const char text[] = "SSH-2.0-OpenSSH_9.2\r\n";
    (void)!write(connection, text, sizeof text - 1);
    close(connection);
  });
  test::FakeDocker docker;
  EngineRuntime podman("podman", not_http.path(), fake_netns);
  EngineRuntime real("docker", docker.path(), fake_netns);
  EngineOwnerEvents podman_events(podman);
  EngineOwnerEvents docker_events(real);
  auto self = std::make_shared<RecordingSelf>();
  RuntimeHealth health(self);
  RuntimeEvents events({{&podman, &podman_events}, {&real, &docker_events}}, health);
  test::CapturedStderr err;
  // Subscribed to one (the fake docker serves no /events: it refuses, which is a failure too).
  events.connect();
  events.connect();
  const std::string out = err.read();
  size_t podman_lines = 0;
  for (size_t at = 0; (at = out.find("podman on " + not_http.path(), at)) != std::string::npos;
       ++at)
    ++podman_lines;
  EXPECT_EQ(podman_lines, 1u) << out;
  EXPECT_EQ(self->up().at("podman " + not_http.path()), false);
}

TEST(ShimCmdline, ReadsTheNamespaceAndIdOfContainerdShimsOnly) {
  using namespace std::string_literals;
  EXPECT_EQ(parse_shim_cmdline("/usr/bin/containerd-shim-runc-v2\0-namespace\0default\0-id\0"
                               "web-1\0-address\0/run/containerd/containerd.sock\0"s),
            (ShimRef{"default", "web-1"}));
  EXPECT_EQ(parse_shim_cmdline("containerd-shim-runc-v2\0--namespace=k8s.io\0--id=abc\0"s),
            (ShimRef{"k8s.io", "abc"}));
  EXPECT_FALSE(parse_shim_cmdline("/bin/sh\0-namespace\0default\0-id\0web\0"s));
  EXPECT_FALSE(parse_shim_cmdline("/usr/bin/containerd-shim-runc-v2\0-namespace\0default\0"s));
  EXPECT_FALSE(parse_shim_cmdline(""));
  EXPECT_FALSE(parse_shim_cmdline("containerd-shim-runc-v2\0-id\0"s));
}

// A directory tree standing for /proc, or for nerdctl's data root.
class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/psnictest-tree-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    root = dir;
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  void write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + path).parent_path());
    std::ofstream(root + "/" + path, std::ios::binary) << text;
  }
  void link(const std::string& from, const std::string& to) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + to).parent_path());
    std::filesystem::create_hard_link(root + "/" + from, root + "/" + to);
  }
  // Process `pid`, child of `parent`, with this command line.
  void process(int pid, int parent, const std::string& cmdline) {
    write(std::to_string(pid) + "/stat",
          std::to_string(pid) + " (a) b) S " + std::to_string(parent) + " 1 1 0");
    write(std::to_string(pid) + "/cmdline", cmdline);
  }
  std::string root;
};

TEST_F(FakeTree, NerdctlNamesComeFromItsNameStore) {
  write("1935db59/names/default/web", std::string(64, 'e'));
  write("1935db59/names/default/db", "other-id\n");
  write("1935db59/names/shop/cart", "other-id");
  EXPECT_EQ(nerdctl_name(root, "default", std::string(64, 'e')), "web");
  EXPECT_EQ(nerdctl_name(root, "default", "other-id"), "db");
  EXPECT_EQ(nerdctl_name(root, "shop", "other-id"), "cart");
  EXPECT_EQ(nerdctl_name(root, "default", "unknown"), "");
  EXPECT_EQ(nerdctl_name(root, "../1935db59/names/default", "other-id"), "");
  EXPECT_EQ(nerdctl_name(root + "/absent", "default", "other-id"), "");
}

TEST_F(FakeTree, ContainerdContainersAreNamedByTheirHostShimNeverByAFakeOne) {
  using namespace std::string_literals;
  write("1/ns/mnt", "host mount namespace");
  write("1/ns/net", "host network namespace");
  write("nerdctl/h/names/default/web", "ctr-7");
  // 100: the real shim, in the host's namespaces; 101 its container's first process.
  process(100, 1, "/usr/bin/containerd-shim-runc-v2\0-namespace\0default\0-id\0ctr-7\0"s);
  link("1/ns/mnt", "100/ns/mnt");
  link("1/ns/net", "100/ns/net");
  process(101, 100, "sleep\0"s);
  // 200: a process inside a container calling itself a shim, in the container's mount
  // namespace; 201 its child.
  process(200, 1, "/usr/bin/containerd-shim-runc-v2\0-namespace\0default\0-id\0victim\0"s);
  write("200/ns/mnt", "container mount namespace");
  process(201, 200, "sleep\0"s);

  ContainerdRuntime containerd("/nonexistent.sock", root + "/nerdctl", root);
  NetnsReport owner;
  owner.pid = 101;
  owner.netns_inode = 999;
  ASSERT_TRUE(containerd.claims(owner));
  OwnerFacts facts;
  std::string why;
  EXPECT_EQ(containerd.describe(owner, facts, why), Verdict::kNamed);
  EXPECT_EQ(facts.labels.container_id, "ctr-7");
  EXPECT_EQ(facts.labels.container_name, "default/web");
  EXPECT_EQ(facts.labels.namespace_name, "");
  EXPECT_EQ(facts.runtime, "containerd");

  owner.pid = 201;
  OwnerFacts fake;
  EXPECT_EQ(containerd.describe(owner, fake, why), Verdict::kUnknown);
  EXPECT_EQ(fake, OwnerFacts{});

  // A cgroup naming another id than the shim's is contradicted.
  owner.pid = 101;
  owner.identity.runtime = "containerd";
  owner.identity.id = std::string(64, 'f');
  EXPECT_EQ(containerd.describe(owner, fake, why), Verdict::kContradicted);
  EXPECT_EQ(why, "its containerd shim runs default/ctr-7");
  // Kubernetes pods are kubelet's.
  owner.identity.pod_uid = "dc2e3247-f929-4a88-b4ef-00376b0c86ed";
  EXPECT_FALSE(containerd.claims(owner));
  EXPECT_FALSE(containerd.reachable());
}

}  // namespace
}  // namespace psnic
