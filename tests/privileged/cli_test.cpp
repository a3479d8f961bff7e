// The psnic binary as users run it: output, messages and exit statuses.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/support.h"

namespace psnic {
namespace {

using test::CommandResult;
using test::must;
using test::run;
using test::Sleeper;
using test::TestNetns;
using test::unique_name;

CommandResult psnic(const std::string& args) { return run(test::psnic_binary() + " " + args); }

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    ns_ = std::make_unique<TestNetns>('p');
    host_veth_ = unique_name('P');
    must("ip link add " + host_veth_ + " type veth peer name eth0 netns " + ns_->name());
    inside_ = std::make_unique<Sleeper>(ns_->path());
  }
  std::string pid() const { return std::to_string(inside_->pid()); }

  std::unique_ptr<TestNetns> ns_;
  std::string host_veth_;
  std::unique_ptr<Sleeper> inside_;
};

TEST_F(CliTest, PrintsTheHostInterfaceName) {
  CommandResult r = psnic(pid());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, host_veth_ + "\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(CliTest, SeveralPidsArePrefixed) {
  TestNetns other('q');
  std::string other_veth = unique_name('Q');
  must("ip link add " + other_veth + " type veth peer name eth0 netns " + other.name());
  Sleeper other_inside(other.path());
  std::string other_pid = std::to_string(other_inside.pid());
  CommandResult r = psnic(pid() + " " + other_pid);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, pid() + "\t" + host_veth_ + "\n" + other_pid + "\t" + other_veth + "\n");
}

TEST_F(CliTest, HostNetworkExitsOneWithAReason) {
  Sleeper here;
  std::string host_pid = std::to_string(here.pid());
  CommandResult r = psnic(host_pid);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "psnic: " + host_pid + ": host network, no interface of its own\n");
}

TEST_F(CliTest, WorstStatusWinsAndEveryPidIsAnswered) {
  Sleeper here;
  std::string host_pid = std::to_string(here.pid());
  CommandResult r = psnic(host_pid + " " + pid());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, pid() + "\t" + host_veth_ + "\n");
  EXPECT_EQ(count_lines(r.err), 1);

  Sleeper gone;
  std::string gone_pid = std::to_string(gone.pid());
  gone.stop();
  r = psnic(gone_pid + " " + host_pid + " " + pid());
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, pid() + "\t" + host_veth_ + "\n");
  EXPECT_NE(r.err.find("psnic: " + gone_pid + ": no such process\n"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 2);
}

TEST_F(CliTest, MacvlanOnlyNamespaceExitsOneNamingKindAndParent) {
  TestNetns ns('r');
  std::string bridge = unique_name('R');
  must("ip link add " + bridge + " type bridge");
  must("ip link add " + unique_name('S') + " link " + bridge + " type macvlan");
  must("ip link set " + unique_name('S') + " netns " + ns.name());
  Sleeper inside(ns.path());
  std::string p = std::to_string(inside.pid());
  CommandResult r = psnic(p);
  CommandResult j = psnic("--json " + p);
  must("ip link del " + bridge);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "psnic: " + p + ": no host peer: " + unique_name('S') + " (macvlan on " +
                       bridge + ")\n");
  EXPECT_EQ(j.status, 1);
  EXPECT_NE(j.out.find("\"kind\":\"macvlan\",\"peer\":\"parent\",\"host_interface\":null,"
                       "\"host_ifindex\":null,\"parent\":\"" +
                       bridge + "\""),
            std::string::npos)
      << j.out;
}

TEST_F(CliTest, BadArgumentsAreOneLineAndStatusTwo) {
  for (const char* arg : {"abc", "0", "12x", "99999999999", "1e3", "''"}) {
    CommandResult r = psnic(arg);
    EXPECT_EQ(r.status, 2) << arg;
    EXPECT_EQ(r.out, "") << arg;
    EXPECT_EQ(count_lines(r.err), 1) << arg << ": " << r.err;
    EXPECT_EQ(r.err.rfind("psnic: ", 0), 0u) << r.err;
  }
  CommandResult none = psnic("");
  EXPECT_EQ(none.status, 2);
  EXPECT_EQ(none.err, "psnic: give one or more PIDs, or --all (see --help)\n");
  CommandResult both = psnic("--all " + pid());
  EXPECT_EQ(both.status, 2);
  CommandResult unknown = psnic("--frobnicate");
  EXPECT_EQ(unknown.status, 2);
  EXPECT_EQ(count_lines(unknown.err), 1) << unknown.err;
}

TEST_F(CliTest, HelpAndVersion) {
  CommandResult help = psnic("--help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--json"), std::string::npos);
  EXPECT_NE(help.out.find("Exit status"), std::string::npos);
  CommandResult version = psnic("--version");
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out, std::string(PSNIC_VERSION_STRING) + "\n");
}

TEST_F(CliTest, JsonCarriesEveryKey) {
  CommandResult r = psnic("--json " + pid());
  EXPECT_EQ(r.status, 0);
  std::string index = test::chomp(ns_->ip("-o link show eth0 | cut -d: -f1"));
  EXPECT_EQ(r.out, "[\n{\"pid\":" + pid() + ",\"netns\":" +
                       test::chomp(must("stat -L -c %i " + ns_->path())) + ",\"netns_name\":\"" +
                       ns_->name() + "\",\"interface\":\"eth0\",\"ifindex\":" + index +
                       ",\"kind\":\"veth\",\"peer\":\"host\",\"host_interface\":\"" + host_veth_ +
                       "\",\"host_ifindex\":" + std::to_string(test::host_ifindex(host_veth_)) +
                       ",\"parent\":null,\"container_id\":null}\n]\n");
}

TEST_F(CliTest, JsonNamesEachPidsOwnNamespace) {
  // Several PIDs in one run, each in its own `ip netns` namespace: each gets its own name.
  TestNetns other('t');
  Sleeper in_other(other.path());
  std::string other_pid = std::to_string(in_other.pid());
  CommandResult r = psnic("--json " + pid() + " " + other_pid);
  EXPECT_EQ(r.status, 1);  // `other` has only loopback
  EXPECT_NE(r.out.find("{\"pid\":" + pid() +
                       ",\"netns\":" + test::chomp(must("stat -L -c %i " + ns_->path())) +
                       ",\"netns_name\":\"" + ns_->name() + "\","),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("{\"pid\":" + other_pid +
                       ",\"netns\":" + test::chomp(must("stat -L -c %i " + other.path())) +
                       ",\"netns_name\":\"" + other.name() + "\","),
            std::string::npos)
      << r.out;
}

TEST_F(CliTest, ZombieSaysItExited) {
  pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  ASSERT_GT(zombie, 0);
  siginfo_t info{};
  waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT);  // exited, not reaped
  std::string z = std::to_string(zombie);
  CommandResult r = psnic(z + " " + pid());
  CommandResult j = psnic("--json " + z);
  waitpid(zombie, nullptr, 0);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, pid() + "\t" + host_veth_ + "\n");
  EXPECT_EQ(r.err, "psnic: " + z + ": exited (zombie, not yet reaped)\n");
  EXPECT_EQ(j.status, 2);
  EXPECT_EQ(j.out, "[]\n");
  EXPECT_EQ(j.err, r.err);
}

TEST_F(CliTest, AllListsTheNamespaceOnce) {
  Sleeper second(ns_->path());
  CommandResult r = psnic("--all");
  EXPECT_EQ(r.status, 0);
  std::string expected = pid() + "\t" + host_veth_ + "\teth0\t-\n";
  size_t at = r.out.find(expected);
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(host_veth_, at + expected.size()), std::string::npos) << r.out;
  CommandResult j = psnic("--all --json");
  EXPECT_EQ(j.status, 0);
  EXPECT_NE(j.out.find("\"host_interface\":\"" + host_veth_ + "\""), std::string::npos);
}

TEST_F(CliTest, AllSaysWhichNamespaceHasNoProcess) {
  // Two `ip netns` namespaces with no process and only loopback: each line names its namespace
  // the way the kernel does, instead of two identical lines of dashes.
  TestNetns empty_a('v');
  TestNetns empty_b('w');
  CommandResult r = psnic("--all");
  EXPECT_EQ(r.status, 0);
  for (const TestNetns* ns : {&empty_a, &empty_b}) {
    std::string line = "net:[" + test::chomp(must("stat -L -c %i " + ns->path())) + "]\t-\t-\t-\n";
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "in\n" << r.out;
  }
  EXPECT_EQ(("\n" + r.out).find("\n-\t"), std::string::npos) << r.out;  // no PID column of "-"
}

}  // namespace
}  // namespace psnic
