// The psnic-agent image (docker/Dockerfile), run the way README's "Deploy" section says: what it
// holds, that it counts containers' traffic exactly with the documented capabilities and
// mounts and nothing more, and that each missing one is named in one line.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/deploy/deploy_support.h"

namespace psnic::test::deploy {
namespace {

using namespace psnic::test::e2e;
using namespace std::chrono_literals;

// The words of `options` without the pair (or single word) starting at `word`.
std::vector<std::string> without(std::vector<std::string> options, const std::string& word,
                                 const std::string& value = "") {
  for (auto it = options.begin(); it != options.end(); ++it) {
    if (*it != word) continue;
    if (value.empty()) {
      options.erase(it);
      return options;
    }
    if (it + 1 != options.end() && *(it + 1) == value) {
      options.erase(it, it + 2);
      return options;
    }
  }
  ADD_FAILURE() << "no " << word << " " << value << " in " << join(options);
  return options;
}

// Waits up to 20 s for a log line of container `name` whose msg `says` accepts.
bool logs_say(const std::string& name, const std::function<bool(const std::string& msg)>& says) {
  for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    for (const LogRecord& line : parse_log(run("docker logs " + name).err))
      if (says(line.at("msg"))) return true;
  }
  return false;
}

size_t lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

class ImageTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(run("docker image inspect " + agent_image()).status, 0)
        << "no " << agent_image() << ": the deploy.image fixture builds it";
    spec_ = runtime_spec();
    options_ = docker_run_options(spec_);
    pin_dir_ = "/sys/fs/bpf/" + unique_name('i');
    name_ = unique_name('a');
  }
  void TearDown() override {
    run("docker rm -f " + name_);
    run_cleanup(pin_dir_);
  }

  // `docker run` of the agent image with `options`, the test's pin directory and port.
  std::string agent_command(const std::vector<std::string>& options, bool detached) {
    return "docker run " + std::string(detached ? "-d" : "--rm") + " --name " + name_ + " " +
           join(options) + " " + agent_image() + " --pin-dir " + pin_dir_ +
           " --listen 127.0.0.1:" + std::to_string(port_);
  }

  // Runs the agent with `options` in the foreground: what it says when it refuses to start.
  CommandResult refused(const std::vector<std::string>& options) {
    CommandResult r = run("timeout 60 " + agent_command(options, false));
    run("docker rm -f " + name_);  // in case it did start, and outlived the timeout
    return r;
  }

  RuntimeSpec spec_;
  std::vector<std::string> options_;
  std::string pin_dir_;
  std::string name_;
  uint16_t port_ = free_port();
};

TEST_F(ImageTest, HoldsBothBinariesTheirLibrariesAndNoShell) {
  long bytes = std::stol(must("docker image inspect -f '{{.Size}}' " + agent_image()));
  RecordProperty("image_bytes", std::to_string(bytes));
  EXPECT_LE(bytes, 25L << 20) << "the image is " << bytes << " bytes, the goal 25 MiB";
  EXPECT_EQ(chomp(must("docker image inspect -f "
                       "'{{index .Config.Labels \"org.opencontainers.image.version\"}}' " +
                       agent_image())),
            version());
  EXPECT_NE(chomp(must("docker image inspect -f "
                       "'{{index .Config.Labels \"org.opencontainers.image.licenses\"}}' " +
                       agent_image())),
            "");
  EXPECT_EQ(chomp(must("docker run --rm " + agent_image() + " --version")), version());
  EXPECT_EQ(
      chomp(must("docker run --rm --entrypoint /usr/bin/psnic " + agent_image() + " --version")),
      version());
  // Nothing to run but psnic: no shell, no package manager.
  for (const char* absent : {"/bin/sh", "/usr/bin/apt-get", "/usr/bin/dpkg"}) {
    EXPECT_NE(
        run("docker run --rm --entrypoint " + std::string(absent) + " " + agent_image() + " --help")
            .status,
        0)
        << absent;
  }
}

// docker/rootfs.sh run on this tree's own build (Debian 12, the image's build stage's packages)
// lays out the files the image holds: the binaries, the agent's libraries, the loader.
TEST_F(ImageTest, RootfsScriptLaysOutWhatTheImageHolds) {
  const std::string dir = "/tmp/" + unique_name('r');
  const std::string build = test::agent_binary().substr(0, test::agent_binary().rfind('/'));
  CommandResult laid = run("bash " + source_path("docker/rootfs.sh") + " " + build + " " + dir +
                           "/rootfs " + dir + "/debug");
  EXPECT_EQ(laid.status, 0) << laid.err;
  std::string local = must("cd " + dir + "/rootfs && find . -type f | sed 's|^\\./||' | sort");
  std::string debug = must("find " + dir + "/debug -name '*.debug' | wc -l");
  run("rm -rf " + dir);
  std::string image =
      must("id=$(docker create " + agent_image() +
           ") && docker export $id | tar -t | grep -v '/$' | "
           // What the engine adds to every container's filesystem.
           "grep -vE '^([.]dockerenv|dev/.*|etc/(hostname|hosts|mtab|resolv.conf))$'"
           " | sort; "
           "docker rm $id >/dev/null");
  EXPECT_EQ(local, image);
  EXPECT_NE(local.find("usr/bin/psnic-agent\n"), std::string::npos) << local;
  EXPECT_NE(local.find("libbpf.so.1\n"), std::string::npos) << local;
  EXPECT_EQ(chomp(debug), "2");  // both binaries' debug symbols, by build id
}

TEST_F(ImageTest, ReadmeRunLineIsTheRuntimeSpec) {
  std::ifstream readme(source_path("README.md"));
  std::stringstream text;
  text << readme.rdbuf();
  // Continuation lines joined, as the shell reads them.
  std::string joined = std::regex_replace(text.str(), std::regex(" *\\\\\\n *"), " ");
  const std::string expected = "docker run -d --name psnic-agent --restart unless-stopped " +
                               join(options_) + " psnic-agent";
  std::istringstream in(joined);
  bool found = false;
  for (std::string line; std::getline(in, line);) found = found || line == expected;
  EXPECT_TRUE(found) << "README has no docker run line equal to\n" << expected;
}

TEST_F(ImageTest, CountsContainersExactlyWithTheDocumentedCapabilitiesAndMounts) {
  must(agent_command(options_, true));
  // What the engine ran: the documented set and nothing more, never privileged.
  std::string host_config = must(
      "docker inspect -f '{{.HostConfig.Privileged}} {{.HostConfig.PidMode}} "
      "{{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} "
      "{{.HostConfig.CapAdd}}' " +
      name_);
  // Newer docker clients store the names as CAP_NET_ADMIN, Debian 12's as given.
  host_config = std::regex_replace(host_config, std::regex("CAP_"), "");
  std::string caps;
  for (const std::string& capability : spec_.capabilities)
    caps += (caps.empty() ? "" : " ") + capability;
  EXPECT_EQ(chomp(host_config), "false host host true [ALL] [" + caps + "]");

  Container a('p'), b('q');
  ASSERT_FALSE(HasFailure());
  const std::string veth_a = a.host_veth(), veth_b = b.host_veth();
  ASSERT_TRUE(logs_say(name_, [&](const std::string& msg) {
    return msg == "serving /metrics on 127.0.0.1:" + std::to_string(port_);
  })) << run("docker logs " + name_).err;
  // Named from Docker's API through the read-only socket.
  NamedScrape scraped = scrape_until_named(port_, {{veth_a, a.name()}, {veth_b, b.name()}});
  ASSERT_TRUE(scraped.named) << scraped.metrics << "\n" << run("docker logs " + name_).err;

  // What the Kubernetes probes and an operator's browser ask for.
  const std::string base = "http://127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(http_get(base + "/healthz").status, 200);
  HttpAnswer landing = http_get(base + "/");
  EXPECT_EQ(landing.status, 200);
  EXPECT_NE(landing.body.find(version()), std::string::npos) << landing.body;
  EXPECT_NE(landing.body.find("/metrics"), std::string::npos) << landing.body;

  Snapshot before_a = quiet_snapshot(port_, veth_a), before_b = quiet_snapshot(port_, veth_b);
  exchange(a, b, 3'000'000, 1'000'000);
  Snapshot after_a = quiet_snapshot(port_, veth_a), after_b = quiet_snapshot(port_, veth_b);
  EXPECT_EQ(after_a.agent - before_a.agent, after_a.kernel - before_a.kernel);
  EXPECT_EQ(after_b.agent - before_b.agent, after_b.kernel - before_b.kernel);
  EXPECT_GE((after_a.agent - before_a.agent).transmit_bytes, 3'000'000u);
  EXPECT_GE((after_b.agent - before_b.agent).transmit_bytes, 1'000'000u);

  // SIGTERM leaves both counting, pinned; the image's --cleanup takes them away.
  must("docker stop -t 10 " + name_);
  EXPECT_EQ(chomp(must("docker inspect -f '{{.State.ExitCode}}' " + name_)), "0");
  CommandResult logs = run("docker logs " + name_);
  const std::vector<LogRecord> log = parse_log(logs.err);
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [&](const LogRecord& line) {
    const std::string& msg = line.at("msg");
    return msg.starts_with("SIGTERM, leaving ") &&
           msg.find(" counting, pinned in " + pin_dir_ + " ") != std::string::npos;
  })) << logs.err;
  EXPECT_EQ(psnic_programs(veth_a), 2u);
  must("docker rm " + name_);
  CommandResult cleanup = run("docker run --rm " + join(options_) + " " + agent_image() +
                              " --cleanup --pin-dir " + pin_dir_);
  EXPECT_EQ(cleanup.status, 0) << cleanup.err;
  EXPECT_EQ(psnic_programs(veth_a), 0u);
  EXPECT_EQ(psnic_programs(veth_b), 0u);
  EXPECT_NE(run("test -e " + pin_dir_).status, 0) << pin_dir_ << " is still there";
}

TEST_F(ImageTest, WithoutEachCapabilityOneLineNamingItAndStatus1) {
  for (const std::string& capability : spec_.capabilities) {
    SCOPED_TRACE(capability);
    CommandResult r = refused(without(options_, "--cap-add", capability));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("CAP_" + capability), std::string::npos) << r.err;
    EXPECT_EQ(r.err.rfind("psnic-agent: ", 0), 0u) << r.err;
  }
  EXPECT_NE(run("test -e " + pin_dir_).status, 0) << "a refused start left " << pin_dir_;
}

TEST_F(ImageTest, WithoutTheHostsNamespacesOrBpfFilesystemOneLineAndStatus1) {
  struct Case {
    std::vector<std::string> options;
    std::string says;
  };
  std::vector<Case> cases = {
      {without(options_, "--pid", "host"), "not in the host's PID namespace"},
      {without(options_, "--network", "host"), "not in the host's network namespace"},
      {without(options_, "-v", "/sys/fs/bpf:/sys/fs/bpf"),
       "this is not the host's mount namespace: mount the host's /sys/fs/bpf in"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.says);
    CommandResult r = refused(c.options);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace psnic::test::deploy
