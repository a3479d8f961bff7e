// End to end: psnic-agent against containers of the real dockerd (local psnic-test:latest,
// busybox only). The agent runs as a child process of the test; its counts are compared with
// the kernel's own statistics of the container's host veth, found without psnic.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/support.h"

namespace psnic {
namespace {

using namespace std::chrono_literals;
using test::chomp;
using test::CommandResult;
using test::must;
using test::run;
using test::unique_name;

constexpr const char* kImage = "psnic-test:latest";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A container sleeping in psnic-test:latest, force-removed on destruction.
class Container {
 public:
  explicit Container(char tag, const std::string& options = "") : name_(unique_name(tag)) {
    must("docker run -d --name " + name_ + " " + options + " " + kImage + " sleep 600");
    id_ = chomp(must("docker inspect -f '{{.Id}}' " + name_));
    pid_ = chomp(must("docker inspect -f '{{.State.Pid}}' " + name_));
    address_ = chomp(must("docker inspect -f '{{.NetworkSettings.IPAddress}}' " + name_));
  }
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;
  ~Container() { run("docker rm -f " + name_); }

  const std::string& name() const { return name_; }
  const std::string& id() const { return id_; }
  const std::string& pid() const { return pid_; }
  const std::string& address() const { return address_; }

  // The host end of eth0, without psnic: the host link whose ifindex is eth0's iflink and whose
  // own peer is eth0's ifindex ("N: NAME@ifM:" in `ip -o link`).
  std::string host_veth() const {
    std::istringstream in(must("docker exec " + name_ +
                               " cat /sys/class/net/eth0/ifindex /sys/class/net/eth0/iflink"));
    unsigned ifindex = 0, iflink = 0;
    in >> ifindex >> iflink;
    static const std::regex link_line(R"(^(\d+): ([^:@ ]+)@if(\d+):)");
    std::istringstream links(must("ip -o link show type veth"));
    for (std::string line; std::getline(links, line);) {
      std::smatch m;
      if (std::regex_search(line, m, link_line) && std::stoul(m[1]) == iflink &&
          std::stoul(m[3]) == ifindex)
        return m[2];
    }
    ADD_FAILURE() << "no host veth for eth0 of " << name_;
    return "";
  }

  // A TCP server on `port` that discards what it reads. Its stdin never ends: busybox nc exits
  // when its stdin ends, half-closing the connection, and the client then stops sending.
  void start_sink(int port) const {
    must("docker exec -d " + name_ + " sh -c 'sleep 60 | nc -l -p " + std::to_string(port) +
         " > /dev/null'");
    const std::string probe =
        "nsenter -t " + pid_ + " -n ss -Hltn 'sport = :" + std::to_string(port) + "'";
    for (int i = 0; i < 150 && chomp(must(probe)).empty(); ++i) std::this_thread::sleep_for(20ms);
  }
  // Sends `bytes` bytes to address:port with busybox nc.
  void send(const Container& to, int port, size_t bytes) const {
    must("head -c " + std::to_string(bytes) + " /dev/zero | docker exec -i " + name_ + " nc " +
         to.address() + " " + std::to_string(port));
  }

 private:
  std::string name_;
  std::string id_;
  std::string pid_;
  std::string address_;
};

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string listen_address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// psnic-agent as a child process, its stdout and stderr in files. Stopped (by its PID) and
// reaped on destruction if it is still there.
class Agent {
 public:
  explicit Agent(const std::vector<std::string>& args) {
    char out_path[] = "/tmp/psnictest-agent-out-XXXXXX";
    char err_path[] = "/tmp/psnictest-agent-err-XXXXXX";
    int out_fd = mkstemp(out_path);
    int err_fd = mkstemp(err_path);
    out_path_ = out_path;
    err_path_ = err_path;
    std::vector<std::string> argv{test::agent_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_argv;
    for (std::string& arg : argv) c_argv.push_back(arg.data());
    c_argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      // Whatever the test runner inherited, the agent starts with default stop signals.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      dup2(out_fd, 1);
      dup2(err_fd, 2);
      int null_fd = open("/dev/null", O_RDONLY);
      dup2(null_fd, 0);
      execv(c_argv[0], c_argv.data());
      _exit(127);
    }
    close(out_fd);
    close(err_fd);
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;
  ~Agent() {
    // A test that stopped half-way: SIGINT first, so that no tc filter outlives the agent.
    if (!interrupt()) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    unlink(out_path_.c_str());
    unlink(err_path_.c_str());
  }

  pid_t pid() const { return pid_; }
  std::string out() const { return slurp(out_path_); }
  std::string err() const { return slurp(err_path_); }

  // Waits up to `timeout` for `text` on stderr; false (and no more waiting) once it exited.
  bool wait_for_err(const std::string& text, std::chrono::milliseconds timeout = 5s) {
    for (auto end = std::chrono::steady_clock::now() + timeout;;) {
      if (err().find(text) != std::string::npos) return true;
      if (exited() || std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(10ms);
    }
  }
  // The exit status (or 128 + signal) once it has exited, within `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    for (auto end = std::chrono::steady_clock::now() + timeout;
         !exited() && std::chrono::steady_clock::now() < end;)
      std::this_thread::sleep_for(10ms);
    return status_;
  }
  std::optional<int> interrupt() {
    if (!status_) kill(pid_, SIGINT);
    return wait_exit(5s);
  }

 private:
  bool exited() {
    if (status_) return true;
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) != pid_) return false;
    status_ = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return true;
  }

  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_;
  std::string err_path_;
};

// GET http://127.0.0.1:port/metrics; the body, after a failure unless the answer is a 200.
std::string scrape(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200 ", 0) != 0 && response.rfind("HTTP/1.0 200 ", 0) != 0) {
    ADD_FAILURE() << "GET /metrics on port " << port << ":\n" << response;
    return "";
  }
  return body == std::string::npos ? "" : response.substr(body + 4);
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

// The container's view: receive is the host veth's transmit.
struct Counts {
  uint64_t receive_bytes = 0, receive_packets = 0, transmit_bytes = 0, transmit_packets = 0;
  bool operator==(const Counts&) const = default;
  Counts operator-(const Counts& o) const {
    return {receive_bytes - o.receive_bytes, receive_packets - o.receive_packets,
            transmit_bytes - o.transmit_bytes, transmit_packets - o.transmit_packets};
  }
};

std::ostream& operator<<(std::ostream& out, const Counts& c) {
  return out << "{receive " << c.receive_bytes << " B " << c.receive_packets << " pkts, transmit "
             << c.transmit_bytes << " B " << c.transmit_packets << " pkts}";
}

Counts kernel_counts(const std::string& veth) {
  return {test::link_statistic(veth, "tx_bytes"), test::link_statistic(veth, "tx_packets"),
          test::link_statistic(veth, "rx_bytes"), test::link_statistic(veth, "rx_packets")};
}

Counts agent_counts(const std::string& metrics, const std::string& veth) {
  const std::string label = "host_interface=\"" + veth + "\"";
  auto get = [&](const std::string& what) {
    return static_cast<uint64_t>(
        sample(metrics, "psnic_container_network_" + what + "_total", label).value_or(0));
  };
  return {get("receive_bytes"), get("receive_packets"), get("transmit_bytes"),
          get("transmit_packets")};
}

struct Snapshot {
  Counts agent;
  Counts kernel;
  std::string metrics;
};

// A scrape and the kernel's counters at one quiet moment: read right before and right after the
// scrape, and equal; tried again while background traffic moves them.
Snapshot quiet_snapshot(uint16_t port, const std::string& veth) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::this_thread::sleep_for(300ms);
    const Counts before = kernel_counts(veth);
    std::string metrics = scrape(port);
    const Counts after = kernel_counts(veth);
    if (before == after) return {agent_counts(metrics, veth), after, metrics};
  }
  ADD_FAILURE() << "no quiet moment on " << veth;
  return {};
}

// The ids of the BPF programs and links `pid` holds open, from /proc/PID/fdinfo: "prog 7",
// "link 3".
std::set<std::string> bpf_ids(pid_t pid) {
  std::set<std::string> ids;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ids;
  while (dirent* entry = readdir(d)) {
    if (entry->d_name[0] == '.') continue;
    std::istringstream in(slurp(dir + "/" + entry->d_name));
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      std::string key, value;
      if (fields >> key >> value && (key == "prog_id:" || key == "link_id:"))
        ids.insert(key.substr(0, 4) + " " + value);
    }
  }
  closedir(d);
  return ids;
}

// Whether "prog 7" (`bpftool prog show id 7`) is still there after up to 3 s: the kernel frees a
// program removed with its tc filter after an RCU grace period, in a work queue.
bool still_loaded(const std::string& id) {
  const std::string command = "bpftool " + id.substr(0, 4) + " show id " + id.substr(5);
  for (auto end = std::chrono::steady_clock::now() + 3s; run(command).status == 0;) {
    if (std::chrono::steady_clock::now() > end) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
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

// The ids of the loaded BPF programs named psnic_ingress or psnic_egress.
std::set<std::string> psnic_programs() {
  std::set<std::string> ids;
  static const std::regex program(R"(^(\d+): \S+ +name (psnic_ingress|psnic_egress) )");
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
  EXPECT_EQ(run("bpftool net show dev " + veth).out.find("psnic"), std::string::npos) << veth;
}

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PSNIC_REQUIRE_ROOT();
    ASSERT_EQ(run(std::string("docker image inspect ") + kImage).status, 0)
        << "no dockerd or no " << kImage << ": tests/e2e/ensure-docker.sh makes both";
  }

  // Starts the agent on `a`, makes traffic between `a` and `b` only, and checks that the agent
  // counted on a's host veth exactly what the kernel did, then stops it with SIGINT and checks
  // that it left nothing attached.
  void count_exactly(const std::string& mode) {
    Container a('a');
    Container b('b');
    ASSERT_FALSE(HasFailure());
    const std::string veth = a.host_veth();
    ASSERT_NE(veth, "");
    const uint16_t port = free_port();
    std::vector<std::string> args{"--pid", a.pid(), "--quiet", "--listen", listen_address(port)};
    if (!mode.empty()) args.insert(args.end(), {"--attach-mode", mode});
    Agent agent(args);
    const std::string counting =
        "psnic-agent: " + a.pid() + ": counting eth0 (" + a.id() + ") on " + veth + ", ";
    ASSERT_TRUE(agent.wait_for_err(counting)) << agent.err();
    ASSERT_TRUE(agent.wait_for_err("psnic-agent: serving /metrics on " + listen_address(port)))
        << agent.err();
    const std::string err = agent.err();
    const size_t mode_at = err.find(counting) + counting.size();
    const std::string attached = err.substr(mode_at, err.find('\n', mode_at) - mode_at);
    if (!mode.empty()) {
      EXPECT_EQ(attached, mode);
    }
    const std::set<std::string> held = bpf_ids(agent.pid());
    EXPECT_EQ(std::count_if(held.begin(), held.end(),
                            [](const std::string& id) { return id.rfind("prog", 0) == 0; }),
              2)
        << ::testing::PrintToString(held);
    if (attached == "tc") {
      EXPECT_NE(psnic_tc_filters(veth), "") << "no psnic filter on " << veth;
    }

    const Snapshot baseline = quiet_snapshot(port, veth);
    ASSERT_FALSE(HasFailure()) << baseline.metrics;
    // container_name: empty while unknown (psnic reads the cgroup, not dockerd), else the name.
    const std::string labels = labels_of(baseline.metrics, veth);
    EXPECT_TRUE(labels == "{container_id=\"" + a.id() + "\",container_name=\"\",pod=\"\"," +
                              "namespace=\"\",interface=\"eth0\",host_interface=\"" + veth +
                              "\"}" ||
                labels == "{container_id=\"" + a.id() + "\",container_name=\"" + a.name() +
                              "\",pod=\"\",namespace=\"\",interface=\"eth0\",host_interface=\"" +
                              veth + "\"}")
        << baseline.metrics;
    EXPECT_EQ(sample(baseline.metrics, "psnic_attached_interfaces", "mode=\"" + attached + "\""),
              1.0);

    must("docker exec " + a.name() + " ping -q -c 20 -i 0.05 " + b.address());
    b.start_sink(5000);
    a.send(b, 5000, 2000000);
    a.start_sink(5001);
    b.send(a, 5001, 1000000);
    ASSERT_FALSE(HasFailure());

    const Snapshot final = quiet_snapshot(port, veth);
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
    EXPECT_TRUE(agent.err().ends_with("psnic-agent: SIGINT, detached 1 interface\n"))
        << agent.err();
    EXPECT_EQ(agent.out(), "");
    expect_nothing_left(held, veth);
  }
};

TEST_F(AgentE2eTest, CountsExactlyWhatTheKernelCountsOnTheHostVeth) { count_exactly(""); }

TEST_F(AgentE2eTest, TcModeCountsExactlyAndRemovesItsFilters) { count_exactly("tc"); }

TEST_F(AgentE2eTest, SigintDetachesEverythingAndExitsZero) {
  Container a('c');
  ASSERT_FALSE(HasFailure());
  const std::string veth = a.host_veth();
  ASSERT_NE(veth, "");
  const uint16_t port = free_port();
  Agent agent(
      {"--pid", a.pid(), "--quiet", "--listen", listen_address(port), "--attach-mode", "tcx"});
  ASSERT_TRUE(agent.wait_for_err(" on " + veth + ", tcx\n")) << agent.err();
  ASSERT_TRUE(agent.wait_for_err("serving /metrics")) << agent.err();
  const std::set<std::string> held = bpf_ids(agent.pid());
  EXPECT_EQ(held.size(), 4u) << ::testing::PrintToString(held);  // 2 programs, 2 tcx links

  EXPECT_EQ(agent.interrupt(), 0) << agent.err();
  EXPECT_EQ(agent.err(), "psnic-agent: " + a.pid() + ": counting eth0 (" + a.id() + ") on " + veth +
                             ", tcx\npsnic-agent: serving /metrics on " + listen_address(port) +
                             "\npsnic-agent: SIGINT, detached 1 interface\n");
  expect_nothing_left(held, veth);

  // SIGTERM does the same, here for tc filters.
  Agent tc({"--pid", a.pid(), "--quiet", "--listen", listen_address(port), "--attach-mode", "tc"});
  ASSERT_TRUE(tc.wait_for_err("serving /metrics")) << tc.err();
  EXPECT_NE(psnic_tc_filters(veth), "");
  const std::set<std::string> tc_held = bpf_ids(tc.pid());
  kill(tc.pid(), SIGTERM);
  EXPECT_EQ(tc.wait_exit(5s), 0) << tc.err();
  EXPECT_TRUE(tc.err().ends_with("\npsnic-agent: SIGTERM, detached 1 interface\n")) << tc.err();
  expect_nothing_left(tc_held, veth);
}

TEST_F(AgentE2eTest, ExitsZeroOnItsOwnWhenTheWatchedContainerStops) {
  Container a('d');
  ASSERT_FALSE(HasFailure());
  const std::string veth = a.host_veth();
  ASSERT_NE(veth, "");
  Agent agent({"--pid", a.pid(), "--quiet", "--listen", listen_address(free_port())});
  ASSERT_TRUE(agent.wait_for_err("serving /metrics")) << agent.err();
  const std::set<std::string> held = bpf_ids(agent.pid());

  must("docker kill " + a.name());
  EXPECT_EQ(agent.wait_exit(5s), 0) << agent.err();
  const std::string err = agent.err();
  const std::string released = "psnic-agent: " + a.pid() + ": exited, released " + veth + "\n";
  const std::string done = "psnic-agent: no process left to watch\n";
  EXPECT_NE(err.find(released), std::string::npos) << err;
  EXPECT_TRUE(err.ends_with(released + done)) << err;
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

  const std::set<std::string> before = psnic_programs();
  CommandResult r = run("timeout -s INT 10 " + test::agent_binary() + " --pid " + a.pid() +
                        " --listen " + address);
  close(fd);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("psnic-agent: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(address), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  // No psnic program loaded since stays: older ones belong to other tests' agents.
  std::set<std::string> after = psnic_programs();
  for (const std::string& id : before) after.erase(id);
  EXPECT_TRUE(after.empty()) << ::testing::PrintToString(after);
  EXPECT_EQ(psnic_tc_filters(veth), "");
}

TEST_F(AgentE2eTest, WithoutPrivilegesIsOneLineNamingCapBpf) {
  Container a('g');
  ASSERT_FALSE(HasFailure());
  CommandResult r =
      run("timeout -s INT 10 setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all " +
          test::agent_binary() + " --pid " + a.pid() + " --listen " + listen_address(free_port()));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("psnic-agent: missing privileges:", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("CAP_BPF"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace psnic
