// Least privilege, named: psnic-agent run by a non-root user holding exactly the capabilities
// deploy/runtime.json names (README's table), through capsh, counts and names containers
// exactly; without any one of them it stops at start in one line naming it. psnic alone needs
// fewer, and says which one it lacks.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cctype>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/deploy/deploy_support.h"

namespace psnic::test::deploy {
namespace {

using namespace psnic::test::e2e;
using namespace std::chrono_literals;

// The user the tests run psnic as: nobody, whose processes own nothing the tests look at.
constexpr uid_t kUser = 65534;

// What `psnic` needs, beside the agent's set: entering a namespace, and reading the namespace of
// another user's process.
const std::vector<std::string> kPsnicCapabilities = {"SYS_ADMIN", "SYS_PTRACE"};

// "cap_net_admin,cap_sys_admin" for {"NET_ADMIN", "SYS_ADMIN"}.
std::string capsh_names(const std::vector<std::string>& capabilities) {
  std::string names;
  for (const std::string& capability : capabilities) {
    std::string name = "cap_" + capability;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    names += (names.empty() ? "" : ",") + name;
  }
  return names;
}

// The words that run `binary` (with the arguments that follow them) as user and group nobody,
// with the docker group for the Engine API's socket, holding `capabilities` and nothing else:
// ambient, so that they survive the exec of a program without file capabilities. capsh keeps
// setuid, setgid and setpcap only for the switch; the exec drops them.
std::vector<std::string> as_user_with(const std::vector<std::string>& capabilities,
                                      const std::string& binary) {
  std::string groups = std::to_string(kUser);
  if (const group* docker = getgrnam("docker")) groups += "," + std::to_string(docker->gr_gid);
  const std::string names = capsh_names(capabilities);
  std::vector<std::string> words{
      "/usr/sbin/capsh",
      "--caps=" + (names.empty() ? "" : names + "+eip ") + "cap_setuid,cap_setgid,cap_setpcap+ep",
      "--keep=1",
      "--gid=" + std::to_string(kUser),
      "--groups=" + groups,
      "--uid=" + std::to_string(kUser)};
  if (!names.empty()) words.push_back("--addamb=" + names);
  words.push_back("--shell=" + binary);
  words.push_back("--");
  return words;
}

// The words for a shell, each in single quotes.
std::string quoted(const std::vector<std::string>& words) {
  std::string line;
  for (const std::string& word : words) line += (line.empty() ? "'" : " '") + word + "'";
  return line;
}

std::vector<std::string> without(std::vector<std::string> capabilities, const std::string& one) {
  capabilities.erase(std::remove(capabilities.begin(), capabilities.end(), one),
                     capabilities.end());
  return capabilities;
}

// A line of /proc/PID/status ("Uid:", "CapEff:"), without its name.
std::string status_field(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field, 0) == 0) return line.substr(field.size());
  return "";
}

// The capability names (upper case, no CAP_ prefix) in a /proc status mask, as capsh decodes it.
std::set<std::string> decoded(const std::string& mask) {
  // "0x0000000000281000=cap_net_admin,cap_sys_ptrace,cap_sys_admin"
  const size_t hex = mask.find_first_not_of(" \t");
  std::string text =
      chomp(must("capsh --decode=" + (hex == std::string::npos ? "" : mask.substr(hex))));
  std::set<std::string> names;
  std::istringstream list(text.substr(text.find('=') + 1));
  for (std::string name; std::getline(list, name, ',');) {
    if (name.empty()) continue;
    name = name.substr(name.rfind("cap_", 0) == 0 ? 4 : 0);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    names.insert(name);
  }
  return names;
}

class CapabilitiesTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped()) return;
    spec_ = runtime_spec();
    ASSERT_FALSE(spec_.capabilities.empty());
    pin_dir_ = "/sys/fs/bpf/" + unique_name('c');
  }
  void TearDown() override { run_cleanup(pin_dir_); }

  RuntimeSpec spec_;
  std::string pin_dir_;
};

TEST_F(CapabilitiesTest, NonRootAgentWithExactlyTheNamedSetCountsAndNamesContainersExactly) {
  // The pin directory a non-root agent needs: its own (as a unit's tmpfiles.d line would make).
  ASSERT_EQ(mkdir(pin_dir_.c_str(), 0700), 0) << strerror(errno);
  ASSERT_EQ(chown(pin_dir_.c_str(), kUser, kUser), 0) << strerror(errno);
  Container a('x'), b('y');
  ASSERT_FALSE(HasFailure());
  const std::string veth_a = a.host_veth(), veth_b = b.host_veth();

  Agent agent({"--pin-dir", pin_dir_}, as_user_with(spec_.capabilities, agent_binary()));
  ASSERT_TRUE(agent.serving()) << agent.err();
  // What it runs with: the user, and exactly the named set in each set that counts.
  EXPECT_EQ(status_field(agent.pid(), "Uid:"), "\t65534\t65534\t65534\t65534");
  const std::set<std::string> named(spec_.capabilities.begin(), spec_.capabilities.end());
  EXPECT_EQ(decoded(status_field(agent.pid(), "CapEff:")), named);
  EXPECT_EQ(decoded(status_field(agent.pid(), "CapPrm:")), named);

  NamedScrape scraped = scrape_until_named(agent.port(), {{veth_a, a.name()}, {veth_b, b.name()}});
  ASSERT_TRUE(scraped.named) << scraped.metrics << "\n" << agent.err();
  Snapshot before_a = quiet_snapshot(agent.port(), veth_a);
  Snapshot before_b = quiet_snapshot(agent.port(), veth_b);
  exchange(a, b, 2'000'000, 500'000);
  Snapshot after_a = quiet_snapshot(agent.port(), veth_a);
  Snapshot after_b = quiet_snapshot(agent.port(), veth_b);
  EXPECT_EQ(after_a.agent - before_a.agent, after_a.kernel - before_a.kernel);
  EXPECT_EQ(after_b.agent - before_b.agent, after_b.kernel - before_b.kernel);
  EXPECT_GE((after_a.agent - before_a.agent).transmit_bytes, 2'000'000u);
  const std::string metrics = scrape(agent.port());
  EXPECT_NE(metrics.find("psnic_errors_total{op=\"attach\"} 0\n"), std::string::npos) << metrics;
  EXPECT_EQ(agent.interrupt(), 0) << agent.err();
}

TEST_F(CapabilitiesTest, WithoutEachNamedCapabilityANonRootAgentStopsInOneLine) {
  for (const std::string& capability : spec_.capabilities) {
    SCOPED_TRACE(capability);
    CommandResult r = run("timeout -s INT 20 " +
                          quoted(as_user_with(without(spec_.capabilities, capability),
                                              agent_binary())) +
                          " --listen 127.0.0.1:0 --pin-dir " + pin_dir_);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.err, "psnic-agent: missing capabilities: CAP_" + capability +
                         " (it needs CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_SYS_PTRACE; root has "
                         "them)\n");
    EXPECT_EQ(r.out, "");
    EXPECT_NE(access(pin_dir_.c_str(), F_OK), 0) << "a refused start made " << pin_dir_;
  }
}

TEST_F(CapabilitiesTest, PsnicAloneNeedsSysAdminAndSysPtraceAndNamesTheOneItLacks) {
  Container a('z');
  ASSERT_FALSE(HasFailure());
  const std::string psnic = psnic_binary();
  CommandResult r = run(quoted(as_user_with(kPsnicCapabilities, psnic)) + " " + a.pid());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, a.host_veth() + "\n");
  EXPECT_EQ(r.err, "");

  // Each missing one, named.
  const std::pair<const char*, const char*> lacking[] = {
      {"SYS_PTRACE", "permission denied to its network namespace (needs CAP_SYS_PTRACE, or root)"},
      {"SYS_ADMIN",
       "setns into its network namespace: operation not permitted (needs CAP_SYS_ADMIN, or root)"},
  };
  for (const auto& [capability, says] : lacking) {
    SCOPED_TRACE(capability);
    r = run(quoted(as_user_with(without(kPsnicCapabilities, capability), psnic)) + " " + a.pid());
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.err, "psnic: " + a.pid() + ": " + says + "\n");
    EXPECT_EQ(r.out, "");
  }
}

}  // namespace
}  // namespace psnic::test::deploy
