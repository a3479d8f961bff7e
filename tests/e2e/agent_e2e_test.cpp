// End to end: psnic-agent against containers of the real dockerd (local psnic-test:latest,
// busybox only). The agent runs as a child process of the test; its counts are compared with
// the kernel's own statistics of the container's host veth, found without psnic.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/e2e_support.h"
#include "tests/support/loopback_client.h"
#include "tests/support/support.h"

// In psnic::test::e2e, so that the helpers of e2e_support.h and support.h need no
// using-declarations.
namespace psnic::test::e2e {
namespace {

using namespace std::chrono_literals;

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// The value of the one series `name{...}` whose labels include `label`; a failure, and
// nullopt, unless there is exactly one.
std::optional<double> sample(const std::string& metrics, const std::string& name,
                             const std::string& label) {
  std::optional<double> value;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0 || line.find(label) == std::string::npos) continue;
    if (value) {
      ADD_FAILURE() << "two series " << name << " with " << label << ":\n" << metrics;
      return std::nullopt;
    }
    value = std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  if (!value) ADD_FAILURE() << "no series " << name << " with " << label << ":\n" << metrics;
  return value;
}

// The labels of the one receive_bytes series of `veth`, as the exposition writes them.
std::string labels_of(const std::string& metrics, const std::string& veth) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("psnic_container_network_receive_bytes_total{", 0) == 0 &&
        line.find("host_interface=\"" + veth + "\"") != std::string::npos)
      return line.substr(line.find('{'), line.rfind('}') - line.find('{') + 1);
  return "";
}

// The tc filters on `veth` that run a psnic program, "" when there is none.
std::string psnic_tc_filters(const std::string& veth) {
  std::string found;
  for (const char* hook : {"ingress", "egress"}) {
    const std::string filters = run("tc filter show dev " + veth + " " + hook).out;
    if (filters.find("psnic") != std::string::npos) found += filters;
  }
  return found;
}

// The ids of the loaded BPF programs named psnic_ingress, psnic_egress or psnic_peer_ingress (the
// kernel keeps 15 characters of a program's name).
std::set<std::string> loaded_psnic_programs() {
  std::set<std::string> ids;
  static const std::regex program(
      R"(^(\d+): \S+ +name (psnic_ingress|psnic_egress|psnic_peer_ingr) )");
  std::istringstream in(must("bpftool prog show"));
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, program)) ids.insert(m[1]);
  }
  return ids;
}

// What an agent that has exited left: each of its programs and links must be gone (a program
// still attached anywhere would still be loaded), and no psnic tc filter on `veth`.
void expect_nothing_left(const std::set<std::string>& held, const std::string& veth) {
  for (const std::string& id : held) EXPECT_FALSE(still_loaded(id)) << id;
  EXPECT_EQ(psnic_tc_filters(veth), "") << veth;
  EXPECT_EQ(test::psnic_programs(veth), 0u) << veth;
}

class AgentE2eTest : public E2eTest {
 protected:
  // Starts the agent on `a`, makes traffic between `a` and `b` only, and checks that the agent
  // counted on a's host veth exactly what the kernel did, then stops it with SIGINT and checks
  // that it left nothing attached.
  // With `split`, the agent runs with --split protocol: the sums over the protocol label count
  // exactly.
  void count_exactly(const std::string& mode, bool split = false) {
    Container a('a');
    Container b('b');
    ASSERT_FALSE(HasFailure());
    const std::string veth = a.host_veth();
    ASSERT_NE(veth, "");
    std::vector<std::string> args{"--pid", a.pid(), "--quiet"};
    if (!mode.empty()) args.insert(args.end(), {"--attach-mode", mode});
    if (split) args.insert(args.end(), {"--split", "protocol"});
    Agent agent(args);
    const uint16_t port = agent.port();
    // "<pid>: counting eth0 (<id>) on <veth>, <mode>"
    const std::string counting = a.pid() + ": counting eth0 (" + a.id() + ") on " + veth + ", ";
    const std::optional<LogRecord> counting_line = agent.wait_for_log_where(
        [&](const LogRecord& line) { return line.at("msg").starts_with(counting); });
    ASSERT_TRUE(counting_line) << agent.err();
    ASSERT_TRUE(agent.serving()) << agent.err();
    const std::string attached = counting_line->at("msg").substr(counting.size());
    if (!mode.empty()) {
      EXPECT_EQ(attached, mode);
    }
    // One program set for every interface: the pair, and psnic_peer_ingress for container-side
    // devices (kernel/peer.h; loaded where the kernel has its kfunc, as this one does).
    const std::set<std::string> held = bpf_ids(agent.pid());
    EXPECT_EQ(std::count_if(held.begin(), held.end(),
                            [](const std::string& id) { return id.rfind("prog", 0) == 0; }),
              3)
        << ::testing::PrintToString(held);
    if (attached == "tc") {
      EXPECT_NE(psnic_tc_filters(veth), "") << "no psnic filter on " << veth;
    }

    const Snapshot baseline = quiet_snapshot(port, veth, split);
    ASSERT_FALSE(HasFailure()) << baseline.metrics;
    // container_name: empty while unknown (psnic reads the cgroup, not dockerd), else the name.
    // Split, the first of the four series is tcp's.
    const std::string labels = labels_of(baseline.metrics, veth);
    const std::string end = split ? "\",protocol=\"tcp\"}" : "\"}";
    EXPECT_TRUE(labels == "{container_id=\"" + a.id() + "\",container_name=\"\",pod=\"\"," +
                              "namespace=\"\",interface=\"eth0\",host_interface=\"" + veth + end ||
                labels == "{container_id=\"" + a.id() + "\",container_name=\"" + a.name() +
                              "\",pod=\"\",namespace=\"\",interface=\"eth0\",host_interface=\"" +
                              veth + end)
        << baseline.metrics;
    EXPECT_EQ(sample(baseline.metrics, "psnic_attached_interfaces", "mode=\"" + attached + "\""),
              1.0);

    exchange(a, b, 2000000, 1000000);
    ASSERT_FALSE(HasFailure());

    const Snapshot final = quiet_snapshot(port, veth, split);
    ASSERT_FALSE(HasFailure()) << final.metrics;
    const Counts counted = final.agent - baseline.agent;
    const Counts kernel = final.kernel - baseline.kernel;
    EXPECT_EQ(counted, kernel) << "agent before " << baseline.agent << " after " << final.agent
                               << "; kernel before " << baseline.kernel << " after "
                               << final.kernel;
    // The test's own traffic is in there.
    EXPECT_GE(counted.transmit_bytes, 2000000u) << counted;
    EXPECT_GE(counted.receive_bytes, 1000000u) << counted;
    EXPECT_GE(counted.transmit_packets, 20u) << counted;
    EXPECT_GE(counted.receive_packets, 20u) << counted;
    // Counting starts at attach: never more than the kernel's own totals.
    EXPECT_LE(final.agent.receive_bytes, final.kernel.receive_bytes);
    EXPECT_LE(final.agent.transmit_bytes, final.kernel.transmit_bytes);

    EXPECT_EQ(agent.interrupt(), 0) << agent.err();
    const std::optional<LogRecord> last = agent.last_log_line();
    EXPECT_EQ(last ? last->at("msg") : "", "SIGINT, detached 1 interface") << agent.err();
    EXPECT_EQ(agent.out(), "");
    expect_nothing_left(held, veth);
  }
};

TEST_F(AgentE2eTest, CountsExactlyWhatTheKernelCountsOnTheHostVeth) { count_exactly(""); }

TEST_F(AgentE2eTest, TcModeCountsExactlyAndRemovesItsFilters) { count_exactly("tc"); }

// --pid takes --split protocol: the four series of each family, summed, count exactly.
TEST_F(AgentE2eTest, SplitByProtocolCountsExactlyOverItsProtocols) { count_exactly("", true); }

TEST_F(AgentE2eTest, SigintDetachesEverythingAndExitsZero) {
  Container a('c');
  ASSERT_FALSE(HasFailure());
  const std::string veth = a.host_veth();
  ASSERT_NE(veth, "");
  Agent agent({"--pid", a.pid(), "--quiet", "--attach-mode", "tcx"});
  const std::string counting = a.pid() + ": counting eth0 (" + a.id() + ") on " + veth + ", tcx";
  ASSERT_TRUE(agent.wait_for_log(counting)) << agent.err();
  ASSERT_TRUE(agent.serving()) << agent.err();
  const std::set<std::string> held = bpf_ids(agent.pid());
  // 3 programs (the pair and psnic_peer_ingress), 2 tcx links
  EXPECT_EQ(held.size(), 5u) << ::testing::PrintToString(held);

  EXPECT_EQ(agent.interrupt(), 0) << agent.err();
  // These three lines and nothing else, each a log line at level info.
  const std::string err = agent.err();
  const std::vector<LogRecord> log = parse_log(err);
  EXPECT_EQ(messages(log), (std::vector<std::string>{
                               counting, "serving /metrics on " + listen_address(agent.port()),
                               "SIGINT, detached 1 interface"}))
      << err;
  EXPECT_EQ(count_lines(err), 3) << err;
  for (const LogRecord& line : log) EXPECT_EQ(line.at("level"), "info") << err;
  expect_nothing_left(held, veth);

  // SIGTERM does the same, here for tc filters.
  Agent tc({"--pid", a.pid(), "--quiet", "--attach-mode", "tc"});
  ASSERT_TRUE(tc.serving()) << tc.err();
  EXPECT_NE(psnic_tc_filters(veth), "");
  const std::set<std::string> tc_held = bpf_ids(tc.pid());
  kill(tc.pid(), SIGTERM);
  EXPECT_EQ(tc.wait_exit(5s), 0) << tc.err();
  const std::optional<LogRecord> last = tc.last_log_line();
  EXPECT_EQ(last ? last->at("msg") : "", "SIGTERM, detached 1 interface") << tc.err();
  expect_nothing_left(tc_held, veth);
}

TEST_F(AgentE2eTest, ServesHealthzALandingPageAndHeadMetrics) {
  Container a('h');
  ASSERT_FALSE(HasFailure());
  // --quiet: no rate table, so the loop has no timer and nothing to do.
  Agent agent({"--pid", a.pid(), "--quiet", "--attach-mode", "tcx", "--health-timeout", "2s"});
  ASSERT_TRUE(agent.serving()) << agent.err();
  loopback::HttpResponse health = loopback::get(agent.port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  // Longer than the bound, idle: the loop still turns, so the agent is still healthy.
  std::this_thread::sleep_for(2500ms);
  health = loopback::get(agent.port(), "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;

  loopback::HttpResponse page = loopback::get(agent.port(), "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<td id=\"mode\">tcx</td>"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("<td id=\"interfaces\">1</td>"), std::string::npos) << page.body;

  loopback::Request head;
  head.method = "HEAD";
  loopback::HttpResponse headers = loopback::send_request(agent.port(), head);
  EXPECT_EQ(headers.status, 200);
  EXPECT_EQ(headers.body, "");
  EXPECT_GT(std::atoi(headers.header("Content-Length").c_str()), 0) << headers.headers;
  EXPECT_EQ(agent.interrupt(), 0) << agent.err();
}

TEST_F(AgentE2eTest, ExitsZeroOnItsOwnWhenTheWatchedContainerStops) {
  Container a('d');
  ASSERT_FALSE(HasFailure());
  const std::string veth = a.host_veth();
  ASSERT_NE(veth, "");
  Agent agent({"--pid", a.pid(), "--quiet"});
  ASSERT_TRUE(agent.serving()) << agent.err();
  const std::set<std::string> held = bpf_ids(agent.pid());

  must("docker kill " + a.name());
  EXPECT_EQ(agent.wait_exit(5s), 0) << agent.err();
  // Its last two lines, and every line a log line.
  const std::string err = agent.err();
  const std::vector<std::string> said = messages(parse_log(err));
  EXPECT_EQ(static_cast<int>(said.size()), count_lines(err)) << err;
  ASSERT_GE(said.size(), 2u) << err;
  EXPECT_EQ(said[said.size() - 2], a.pid() + ": exited, released " + veth) << err;
  EXPECT_EQ(said.back(), "no process left to watch") << err;
  for (const std::string& id : held) EXPECT_FALSE(still_loaded(id)) << id;
}

TEST_F(AgentE2eTest, BadPidsAreOneLineAndPsnicsStatus) {
  const std::string listen = "--listen " + listen_address(free_port());
  auto agent = [&](const std::string& pid) {
    return run("timeout -s INT 10 " + test::agent_binary() + " --pid " + pid + " " + listen);
  };
  // A PID that was just used and reaped.
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string gone = std::to_string(child);
  CommandResult r = agent(gone);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "psnic-agent: " + gone + ": no such process\n");
  EXPECT_EQ(r.out, "");

  // Beyond PID_MAX_LIMIT (4194304): psnic's answer for it, not a process id.
  r = agent("99999999");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "psnic-agent: 99999999: not a process id\n");

  r = agent("abc");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "psnic-agent: abc: not a process id\n");

  Container host('e', "--network host");
  ASSERT_FALSE(HasFailure());
  r = agent(host.pid());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "psnic-agent: " + host.pid() + ": host network, no interface of its own\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(AgentE2eTest, PortInUseIsOneLineStatusOneAndNothingAttached) {
  Container a('f');
  ASSERT_FALSE(HasFailure());
  const std::string veth = a.host_veth();
  ASSERT_NE(veth, "");
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  const std::string address = listen_address(ntohs(addr.sin_port));

  const std::set<std::string> before = loaded_psnic_programs();
  CommandResult r = run("timeout -s INT 10 " + test::agent_binary() + " --pid " + a.pid() +
                        " --listen " + address);
  close(fd);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("psnic-agent: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(address), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  // No psnic program loaded since stays: older ones belong to other tests' agents.
  std::set<std::string> after = loaded_psnic_programs();
  for (const std::string& id : before) after.erase(id);
  EXPECT_TRUE(after.empty()) << ::testing::PrintToString(after);
  EXPECT_EQ(psnic_tc_filters(veth), "");
}

// Each bad value is refused while the command line is parsed: one line naming the flag, the
// value and the cause, status 2, nothing loaded or attached.
TEST_F(AgentE2eTest, BadOptionValuesAreOneLineStatusTwoAndNothingLoaded) {
  Container a('h');
  ASSERT_FALSE(HasFailure());
  const std::string veth = a.host_veth();
  ASSERT_NE(veth, "");
  const std::string listen = "--listen " + listen_address(free_port());
  const std::set<std::string> before = loaded_psnic_programs();
  const std::vector<std::pair<std::string, std::string>> bad{
      {"--retire-after", "abc"},     {"--retire-after", "10d"},
      {"--reconcile-interval", "0"}, {"--reconcile-interval", "50ms"},
      {"--health-timeout", "x"},     {"--health-timeout", "1s"},
      {"--listen", "foo"},           {"--listen", "127.0.0.1:99999"},
      {"--log-level", "verbose"},    {"--log-level", "INFO"},
      {"--log-format", "text"},
  };
  for (const auto& [flag, value] : bad) {
    // One --listen only: a second is a usage error of its own.
    CommandResult r = run("timeout -s INT 10 " + test::agent_binary() + " --pid " + a.pid() + " " +
                          (flag == "--listen" ? "" : listen) + " " + flag + " " + value);
    EXPECT_EQ(r.status, 2) << flag << " " << value << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("psnic-agent: " + flag + ": " + value + ": ", 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
  std::set<std::string> after = loaded_psnic_programs();
  for (const std::string& id : before) after.erase(id);
  EXPECT_TRUE(after.empty()) << ::testing::PrintToString(after);
  EXPECT_EQ(psnic_tc_filters(veth), "");
  EXPECT_EQ(test::psnic_programs(veth), 0u) << veth;
}

// A bad --log-level or --log-format is a usage error like any other: the one plain line, whatever
// the log would have looked like, and status 2.
TEST_F(AgentE2eTest, BadLogFlagsAreOnePlainLineAndStatusTwo) {
  const std::string agent = "timeout -s INT 10 " + test::agent_binary() + " --listen " +
                            listen_address(free_port()) + " --pin-dir /sys/fs/bpf/" +
                            unique_name('l');
  CommandResult r = run(agent + " --log-level verbose");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(
      r.err,
      "psnic-agent: --log-level: verbose: not one of debug, info, warn, error (see --help)\n");
  r = run(agent + " --log-format json --log-level warning");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(
      r.err,
      "psnic-agent: --log-level: warning: not one of debug, info, warn, error (see --help)\n");
  r = run(agent + " --log-format text");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err, "psnic-agent: --log-format: text: not one of logfmt, json (see --help)\n");
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/" + unique_name('l')));
}

// --log-level warn leaves out the info lines: a --pid run that goes well says nothing at all.
TEST_F(AgentE2eTest, LogLevelWarnLeavesOutTheInfoLines) {
  Container a('j');
  ASSERT_FALSE(HasFailure());
  Agent agent({"--pid", a.pid(), "--quiet", "--log-level", "warn"});
  // No "serving" line to wait for: the endpoint says when it counts a's interface (it listens
  // before attaching).
  auto attached = [](const std::string& metrics) {
    return value_of(metrics, "psnic_attached_interfaces", {{"mode", "tcx"}}).value_or(0) +
           value_of(metrics, "psnic_attached_interfaces", {{"mode", "tc"}}).value_or(0);
  };
  std::string metrics;
  for (auto end = Clock::now() + 5s; attached(metrics) != 1 && Clock::now() < end;
       std::this_thread::sleep_for(20ms)) {
    try {
      metrics = loopback::get(agent.port(), "/metrics").body;
    } catch (const std::exception&) {
      // Not listening yet.
    }
  }
  EXPECT_EQ(attached(metrics), 1.0) << metrics << "\n" << agent.err();
  EXPECT_EQ(agent.interrupt(), 0) << agent.err();
  EXPECT_EQ(agent.err(), "");
  EXPECT_EQ(agent.out(), "");
}

// --listen ADDR:0: the kernel picks the port, and the "serving" line names that one. (Agent
// passes a --listen of its own, and a second one is a usage error: the agent is started here.)
TEST_F(AgentE2eTest, ListenOnPortZeroLogsThePortBound) {
  Container a('i');
  ASSERT_FALSE(HasFailure());
  char err_path[] = "/tmp/psnictest-agent-err-XXXXXX";
  const int err_fd = mkstemp(err_path);
  ASSERT_GE(err_fd, 0);
  std::vector<std::string> args{test::agent_binary(), "--pid",      a.pid(), "--quiet",
                                "--listen",           "127.0.0.1:0"};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t agent = fork();
  if (agent == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(err_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(err_fd);
  auto err = [&] {
    std::ifstream in(err_path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  // Stops the agent (SIGINT: it detaches) and gives its exit status, once; on the way out too,
  // should an assertion or a throw end the test early.
  int status = -1;
  auto stop = [&, stopped = false]() mutable {
    if (stopped) return;
    stopped = true;
    kill(agent, SIGINT);
    while (waitpid(agent, &status, 0) < 0 && errno == EINTR) {
    }
    unlink(err_path);
  };
  struct AtExit {
    std::function<void()> run;
    ~AtExit() { run(); }
  } at_exit{stop};
  // The "serving" line names the port bound, in its text and its address field.
  static const std::regex serving(R"(serving /metrics on (127\.0\.0\.1:(\d+)))");
  std::smatch m;
  std::string text, msg;
  for (auto end = Clock::now() + 5s; Clock::now() < end; std::this_thread::sleep_for(10ms)) {
    const std::vector<LogRecord> log = parse_log(text = err());
    const auto line = std::find_if(log.begin(), log.end(), [&](const LogRecord& l) {
      return l.at("msg").starts_with("serving /metrics on ");
    });
    if (line == log.end()) continue;
    msg = line->at("msg");
    EXPECT_TRUE(std::regex_match(msg, m, serving)) << text;
    EXPECT_EQ(line->count("address") ? line->at("address") : "", m.empty() ? "" : m[1].str())
        << text;
    break;
  }
  EXPECT_FALSE(m.empty()) << text;
  const int port = m.empty() ? 0 : std::stoi(m[2]);
  EXPECT_GT(port, 0) << text;
  if (port > 0) {
    loopback::HttpResponse response = loopback::get(port, "/metrics");
    EXPECT_EQ(response.status, 200);
    EXPECT_NE(response.body.find("psnic_build_info{"), std::string::npos) << response.body;
  }
  const std::string log = err();
  stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log;
}

TEST_F(AgentE2eTest, WithoutPrivilegesIsOneLineNamingTheCapabilities) {
  Container a('g');
  ASSERT_FALSE(HasFailure());
  CommandResult r =
      run("timeout -s INT 10 setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all " +
          test::agent_binary() + " --pid " + a.pid() + " --listen " + listen_address(free_port()));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err,
            "psnic-agent: missing capabilities: CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE (it "
            "needs CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_SYS_PTRACE; root has them)\n");
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace psnic::test::e2e
