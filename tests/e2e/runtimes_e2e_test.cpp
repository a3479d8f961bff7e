// End to end: psnic-agent names containers of runtimes beside Docker (real podman, real
// containerd through ctr) by what each runtime says, and does not believe a cgroup that names a
// container the runtime puts elsewhere (a process moved into a forged cgroup).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/e2e_support.h"
#include "tests/support/fake_docker.h"
#include "tests/support/support.h"

namespace psnic::test::e2e {
namespace {

using namespace std::chrono_literals;

// podman's API service for these tests: a socket of their own, so that nothing else on the
// machine is touched.
constexpr const char* kPodmanDir = "/run/psnictest-podman";
constexpr const char* kPodmanSocket = "/run/psnictest-podman/podman.sock";
constexpr const char* kPodmanImage = "localhost/psnic-test:latest";
// podman here has no CAP_SYS_RESOURCE: its default limits cannot be set. NET_RAW for ping, which
// podman's default capabilities leave out.
constexpr const char* kPodmanOptions =
    "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --cap-add NET_RAW";
// dockerd's own containerd (docker.io runs one), where ctr's containers go, in a namespace of
// the tests' own.
constexpr const char* kContainerdSocket = "/var/run/docker/containerd/containerd.sock";
constexpr const char* kCtrNamespace = "psnictest";

// The labels of `veth`'s traffic series in `metrics`, when all four are there with the same ones.
std::optional<std::map<std::string, std::string>> labels_of(const std::string& metrics,
                                                            const std::string& veth) {
  std::optional<std::map<std::string, std::string>> labels;
  int n = 0;
  for (const Series& s : parse(metrics)) {
    // The four traffic families (bytes and packets, both ways), not the errors and drops ones.
    if (s.name.rfind("psnic_container_network_", 0) != 0) continue;
    if (!s.name.ends_with("_bytes_total") &&
        !(s.name.ends_with("_packets_total") && !s.name.ends_with("_dropped_total")))
      continue;
    auto it = s.labels.find("host_interface");
    if (it == s.labels.end() || it->second != veth) continue;
    if (labels && *labels != s.labels) return std::nullopt;
    labels = s.labels;
    ++n;
  }
  if (n != 4) return std::nullopt;
  return labels;
}

class RuntimesE2eTest : public E2eTest {
 protected:
  static void SetUpTestSuite() {
    run("podman rm -f $(podman ps -aq --filter name=psnictest) 2>/dev/null");
    // The image, imported as the Docker tests' is (busybox-static only; nothing is pulled).
    if (run(std::string("podman image exists ") + kPodmanImage).status != 0) {
      must("docker save psnic-test:latest -o /tmp/psnictest-podman-image.tar");
      must("podman load -i /tmp/psnictest-podman-image.tar >/dev/null");
      must(std::string("podman tag docker.io/library/psnic-test:latest ") + kPodmanImage +
           " 2>/dev/null || true");
      std::filesystem::remove("/tmp/psnictest-podman-image.tar");
    }
    // The API service, started here and stopped by its PID: nothing socket-activates it.
    std::filesystem::create_directories(kPodmanDir);
    std::filesystem::remove(kPodmanSocket);
    service_ = fork();
    if (service_ == 0) {
      setsid();
      execlp("podman", "podman", "system", "service", "--time=0",
             (std::string("unix://") + kPodmanSocket).c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200 && access(kPodmanSocket, F_OK) != 0; ++i)
      std::this_thread::sleep_for(50ms);
  }
  static void TearDownTestSuite() {
    run("podman rm -f -t 0 $(podman ps -aq --filter name=psnictest) 2>/dev/null");
    if (service_ > 0) {
      kill(service_, SIGTERM);
      waitpid(service_, nullptr, 0);
    }
    std::filesystem::remove(kPodmanSocket);
  }

  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFailure()) return;
    ASSERT_EQ(access(kPodmanSocket, F_OK), 0) << "podman system service did not start";
  }

  // Polls /metrics until `veth`'s series are there with an owner (the inventory exports a new
  // interface once its owner is named, or after --name-wait); their labels from the first scrape
  // that has them, nullopt (and a failure) when none did by `deadline`. The name they have there
  // is the one asserted: never a netns name first.
  std::optional<std::map<std::string, std::string>> first_labels(Agent& agent,
                                                                 const std::string& veth,
                                                                 Clock::time_point deadline) {
    std::string metrics;
    for (;;) {
      metrics = scrape(agent.port());
      if (auto labels = labels_of(metrics, veth); labels && !labels->at("interface").empty())
        return labels;
      if (Clock::now() >= deadline) break;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << veth << " never exported:\n" << metrics << "\nagent:\n" << agent.err();
    return std::nullopt;
  }

  static pid_t service_;
};
pid_t RuntimesE2eTest::service_ = -1;

// A podman container, removed on destruction.
struct PodmanContainer {
  explicit PodmanContainer(char tag) : name(unique_name(tag)) {
    id = chomp(must(std::string("podman run -d --name ") + name + " " + kPodmanOptions + " " +
                    kPodmanImage + " sleep 600"));
    pid = chomp(must("podman inspect -f '{{.State.Pid}}' " + name));
  }
  ~PodmanContainer() { run("podman rm -f -t 0 " + name + " >/dev/null 2>&1"); }
  std::string exec(const std::string& command) const {
    return must("podman exec " + name + " " + command);
  }
  std::string name, id, pid;
};

TEST_F(RuntimesE2eTest, PodmanContainersAreNamedByPodmanFromTheirFirstScrapeAndCountedExactly) {
  Agent agent({"--no-pin", "--podman-socket", kPodmanSocket});
  ASSERT_TRUE(agent.serving()) << agent.err();
  ASSERT_TRUE(agent.wait_for_log(std::string("following podman on ") + kPodmanSocket))
      << agent.err();
  LabelWatch watch(agent.port());
  PodmanContainer a('a');
  PodmanContainer b('b');
  ASSERT_FALSE(HasFailure());
  const std::string veth_a = host_veth_of(a.pid), veth_b = host_veth_of(b.pid);
  ASSERT_NE(veth_a, "");
  ASSERT_NE(veth_b, "");
  for (const PodmanContainer* c : {&a, &b}) {
    const std::string veth = c == &a ? veth_a : veth_b;
    std::optional<std::map<std::string, std::string>> labels =
        first_labels(agent, veth, Clock::now() + 5s);
    ASSERT_TRUE(labels);
    // Never its netns-<uuid> name: podman's name and full id, from the first scrape on.
    EXPECT_EQ(labels->at("container_id"), c->id) << veth;
    EXPECT_EQ(labels->at("container_name"), c->name) << veth;
    EXPECT_EQ(labels->at("interface"), "eth0");
  }
  const std::string metrics = scrape(agent.port());
  EXPECT_EQ(
      value_of(metrics, "psnic_runtime_up", {{"runtime", "podman"}, {"socket", kPodmanSocket}}),
      1.0)
      << metrics;

  // Traffic between them: what the agent counted is what the kernel counted on a's veth.
  const Snapshot base = quiet_snapshot(agent.port(), veth_a);
  const std::string address_a =
      chomp(must("podman inspect -f '{{.NetworkSettings.IPAddress}}' " + a.name));
  ASSERT_NE(address_a, "");
  b.exec("ping -c 20 -i 0.05 -s 1000 " + address_a);
  const Snapshot final = quiet_snapshot(agent.port(), veth_a);
  EXPECT_EQ(final.agent - base.agent, final.kernel - base.kernel)
      << "agent " << base.agent << " -> " << final.agent << "; kernel " << base.kernel << " -> "
      << final.kernel;
  EXPECT_GE((final.agent - base.agent).receive_packets, 20u);
  // One line per runtime, not per container.
  size_t following = 0;
  for (const LogRecord& line : agent.log())
    following += line.at("msg") == std::string("following podman on ") + kPodmanSocket;
  EXPECT_EQ(following, 1u) << agent.err();

  // Through a restart (a new netns-<uuid> and a new veth: a series of its own) to removal, each
  // veth's series had one label set: one series per interface per container life.
  must("podman restart -t 0 " + a.name);
  a.pid = chomp(must("podman inspect -f '{{.State.Pid}}' " + a.name));
  const std::string veth_a2 = host_veth_of(a.pid);
  ASSERT_NE(veth_a2, "");
  ASSERT_TRUE(first_labels(agent, veth_a2, Clock::now() + 5s));
  std::this_thread::sleep_for(300ms);
  run("podman rm -f -t 0 " + a.name + " " + b.name + " >/dev/null 2>&1");
  std::this_thread::sleep_for(300ms);
  watch.stop();
  for (const auto& [veth, c] : {std::pair{veth_a, &a}, {veth_a2, &a}, {veth_b, &b}}) {
    const auto seen = watch.of(veth);
    ASSERT_EQ(seen.size(), 1u) << veth << ": " << ::testing::PrintToString(seen);
    EXPECT_EQ(seen.begin()->at("container_id"), c->id) << veth;
    EXPECT_EQ(seen.begin()->at("container_name"), c->name) << veth;
  }
  std::set<std::map<std::string, std::string>> info;
  for (const auto& labels : watch.info())
    if (labels.at("container_id") == a.id) info.insert(labels);
  ASSERT_EQ(info.size(), 1u) << ::testing::PrintToString(info);
  EXPECT_EQ(info.begin()->at("runtime"), "podman");
  EXPECT_EQ(info.begin()->at("container_name"), a.name);
  EXPECT_NE(info.begin()->at("image"), "");
}

// A cgroup hierarchy where root can make a directory and move a process into it.
std::string writable_hierarchy() {
  for (const char* dir : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"})
    if (access((std::string(dir) + "/cgroup.procs").c_str(), W_OK) == 0) return dir;
  return "";
}

TEST_F(RuntimesE2eTest, AProcessInACgroupForgedWithAnotherContainersIdDoesNotGetItsName) {
  Container a('a');
  ASSERT_FALSE(HasFailure());
  const std::string hierarchy = writable_hierarchy();
  ASSERT_NE(hierarchy, "") << "no writable cgroup hierarchy";
  // B: a namespace of the test's own with a veth, and a process in it moved into a cgroup named
  // as Docker names a's.
  const std::string ns = unique_name('f');
  const std::string veth = "psnictestfg" + std::to_string(getpid() % 10000);
  const std::string forged = hierarchy + "/" + ns + "/docker-" + a.id() + ".scope";
  struct Cleanup {
    std::string ns, veth, hierarchy, forged;
    pid_t sleeper = -1;
    ~Cleanup() {
      if (sleeper > 0) {
        kill(sleeper, SIGKILL);
        waitpid(sleeper, nullptr, 0);
      }
      run("ip link del " + veth + " 2>/dev/null");
      run("ip netns del " + ns + " 2>/dev/null");
      rmdir(forged.c_str());
      rmdir(forged.substr(0, forged.rfind('/')).c_str());
    }
  } cleanup{ns, veth, hierarchy, forged};
  must("ip netns add " + ns);
  must("ip link add " + veth + " type veth peer name eth0 netns " + ns);
  must("ip link set " + veth + " up && ip -n " + ns + " link set eth0 up");
  std::filesystem::create_directories(forged);

  cleanup.sleeper = fork();
  if (cleanup.sleeper == 0) {
    // Into the forged cgroup first, then into the namespace: its first process there already
    // claims to be a.
    std::ofstream(forged + "/cgroup.procs") << getpid() << std::flush;
    execlp("ip", "ip", "netns", "exec", ns.c_str(), "sleep", "600", nullptr);
    _exit(127);
  }
  // The claim is what psnic reads.
  for (int i = 0; i < 100; ++i) {
    std::ifstream cgroup("/proc/" + std::to_string(cleanup.sleeper) + "/cgroup");
    std::string text((std::istreambuf_iterator<char>(cgroup)), {});
    if (text.find("docker-" + a.id()) != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  for (int i = 0; i < 100; ++i) {
    struct stat mine {
    }, its{};
    if (stat(("/run/netns/" + ns).c_str(), &mine) == 0 &&
        stat(("/proc/" + std::to_string(cleanup.sleeper) + "/ns/net").c_str(), &its) == 0 &&
        mine.st_ino == its.st_ino)
      break;
    std::this_thread::sleep_for(20ms);
  }
  // The agent finds the namespace with the forged process in it.
  Agent agent({"--no-pin"});
  ASSERT_TRUE(agent.serving()) << agent.err();
  // Then for the agent to name it.
  std::string metrics;
  std::optional<std::map<std::string, std::string>> labels;
  for (auto end = Clock::now() + 8s; Clock::now() < end; std::this_thread::sleep_for(100ms)) {
    metrics = scrape(agent.port());
    labels = labels_of(metrics, veth);
    if (labels && !labels->at("interface").empty() &&
        agent.err().find("names container " + a.id()) != std::string::npos)
      break;
  }
  ASSERT_TRUE(labels) << metrics << agent.err();
  EXPECT_EQ(labels->at("container_id"), "") << metrics;
  EXPECT_NE(labels->at("container_name"), a.name()) << metrics;
  EXPECT_EQ(labels->at("container_name"), ns) << "named by its ip netns name:\n" << metrics;
  bool warned = false;
  for (const LogRecord& line : agent.log())
    warned |= line.at("level") == "warn" &&
              line.at("msg").find("names container " + a.id()) != std::string::npos;
  EXPECT_TRUE(warned) << agent.err();
  // a itself is still a.
  const std::string veth_a = a.host_veth();
  for (auto end = Clock::now() + 3s; Clock::now() < end; std::this_thread::sleep_for(100ms)) {
    labels = labels_of(scrape(agent.port()), veth_a);
    if (labels && labels->at("container_name") == a.name()) break;
  }
  ASSERT_TRUE(labels);
  EXPECT_EQ(labels->at("container_id"), a.id());
  EXPECT_EQ(labels->at("container_name"), a.name());
}

TEST_F(RuntimesE2eTest, CtrContainersAreNamedByTheirShimWithTheirContainerdNamespace) {
  const std::string ctr = std::string("ctr -a ") + kContainerdSocket + " -n " + kCtrNamespace;
  if (run(ctr + " image ls -q | grep -q psnic-test").status != 0) {
    must("docker save psnic-test:latest -o /tmp/psnictest-ctr-image.tar");
    must(ctr + " image import /tmp/psnictest-ctr-image.tar >/dev/null");
    std::filesystem::remove("/tmp/psnictest-ctr-image.tar");
  }
  const std::string id = unique_name('c');
  const std::string veth = "psnictestct" + std::to_string(getpid() % 10000);
  struct Cleanup {
    std::string ctr, id, veth;
    ~Cleanup() {
      run("ip link del " + veth + " 2>/dev/null");
      run(ctr + " task kill -s KILL " + id + " >/dev/null 2>&1");
      for (int i = 0; i < 50 && run(ctr + " task delete " + id + " >/dev/null 2>&1").status != 0;
           ++i)
        std::this_thread::sleep_for(100ms);
      run(ctr + " container delete " + id + " >/dev/null 2>&1");
      // runc's cgroups for the namespace (/<namespace>/<id>), once empty.
      run(std::string("rmdir /sys/fs/cgroup/*/") + kCtrNamespace + " 2>/dev/null");
    }
  } cleanup{ctr, id, veth};
  Agent agent({"--no-pin", "--containerd-socket", kContainerdSocket});
  ASSERT_TRUE(agent.serving()) << agent.err();
  must(ctr + " run -d docker.io/library/psnic-test:latest " + id + " sleep 600 >/dev/null");
  std::string pid;
  for (int i = 0; i < 100 && pid.empty(); ++i) {
    pid = chomp(must(ctr + " task ls | awk '$1 == \"" + id + "\" {print $2}'"));
    if (pid.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_NE(pid, "");
  // ctr makes the namespace without a network: the test gives it one.
  must("ip link add " + veth + " type veth peer name eth0 netns " + pid);
  must("ip link set " + veth + " up");
  std::optional<std::map<std::string, std::string>> labels =
      first_labels(agent, veth, Clock::now() + 5s);
  ASSERT_TRUE(labels);
  EXPECT_EQ(labels->at("container_id"), id);
  EXPECT_EQ(labels->at("container_name"), std::string(kCtrNamespace) + "/" + id);
  EXPECT_EQ(labels->at("namespace"), "");
  const std::string metrics = scrape(agent.port());
  EXPECT_EQ(value_of(metrics, "psnic_runtime_up",
                     {{"runtime", "containerd"}, {"socket", kContainerdSocket}}),
            1.0)
      << metrics;
}

TEST_F(RuntimesE2eTest, ADeniedRuntimeSocketIsOneLineAndItsContainersAreNamedWithoutIt) {
  // The agent as user nobody with only its capabilities (no CAP_DAC_OVERRIDE): podman's socket,
  // root's and mode 0600, refuses it.
  const std::vector<std::string> as_nobody{"/usr/sbin/capsh",
                                           "--caps=cap_net_admin,cap_sys_admin,cap_sys_ptrace+eip "
                                           "cap_setuid,cap_setgid,cap_setpcap+ep",
                                           "--keep=1",
                                           "--gid=65534",
                                           "--groups=65534",
                                           "--uid=65534",
                                           "--addamb=cap_net_admin,cap_sys_admin,cap_sys_ptrace",
                                           "--shell=" + agent_binary(),
                                           "--"};
  Agent agent({"--no-pin", "--podman-socket", kPodmanSocket}, as_nobody);
  ASSERT_TRUE(agent.serving()) << agent.err();
  PodmanContainer a('a');
  PodmanContainer b('b');
  ASSERT_FALSE(HasFailure());
  for (const PodmanContainer* c : {&a, &b}) {
    std::optional<std::map<std::string, std::string>> labels =
        first_labels(agent, host_veth_of(c->pid), Clock::now() + 5s);
    ASSERT_TRUE(labels);
    EXPECT_EQ(labels->at("container_id"), c->id);  // its cgroup's, unconfirmed
    EXPECT_EQ(labels->at("container_name"), "");
  }
  const std::string about = std::string("podman on ") + kPodmanSocket + ": ";
  size_t said = 0;
  for (const LogRecord& line : agent.log())
    if (line.at("msg").rfind(about, 0) == 0) {
      ++said;
      EXPECT_EQ(line.at("level"), "warn");
      EXPECT_NE(line.at("msg").find("ermission denied"), std::string::npos) << line.at("msg");
    }
  EXPECT_EQ(said, 1u) << agent.err();
  const std::string metrics = scrape(agent.port());
  EXPECT_EQ(value_of(metrics, "psnic_runtime_up", {{"runtime", "podman"}}), 0.0) << metrics;
}

TEST_F(RuntimesE2eTest, DockerHostNamesTheDockerSocketWhenTheFlagIsNotGiven) {
  FakeDocker elsewhere;  // serves no /events: followed it is not, but it is the one tried
  setenv("DOCKER_HOST", ("unix://" + elsewhere.path()).c_str(), 1);
  Agent agent({"--no-pin"});
  unsetenv("DOCKER_HOST");
  ASSERT_TRUE(agent.serving()) << agent.err();
  EXPECT_TRUE(agent.wait_for_log_where([&](const LogRecord& line) {
    return line.at("msg").rfind("docker on " + elsewhere.path() + ": ", 0) == 0;
  })) << agent.err();
  EXPECT_FALSE(agent.logged("following docker on /var/run/docker.sock")) << agent.err();
  const std::string metrics = scrape(agent.port());
  EXPECT_EQ(value_of(metrics, "psnic_runtime_up", {{"runtime", "docker"}}), 0.0) << metrics;
  EXPECT_EQ(
      value_of(metrics, "psnic_runtime_up", {{"runtime", "docker"}, {"socket", elsewhere.path()}}),
      0.0)
      << metrics;
}

}  // namespace
}  // namespace psnic::test::e2e
