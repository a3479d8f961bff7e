#include "tests/e2e/e2e_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace psnic::test::e2e {
namespace {

using namespace std::chrono_literals;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* const kTraffic[] = {"receive_bytes", "receive_packets", "transmit_bytes",
                                "transmit_packets"};

}  // namespace

void E2eTest::SetUp() {
  PSNIC_REQUIRE_ROOT();
  ASSERT_EQ(run(std::string("docker image inspect ") + kImage).status, 0)
      << "no dockerd or no " << kImage << ": tests/e2e/ensure-docker.sh makes both";
}

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

Container::Container(char tag, std::string options)
    : name_(unique_name(tag)), options_(std::move(options)) {
  start();
}

Container::~Container() { run("docker rm -f " + name_); }

void Container::restart() {
  must("docker restart -t 0 " + name_);
  up_at_ = Clock::now();
  inspect();
}

void Container::remove() { must("docker rm -f " + name_); }

void Container::start() {
  must("docker run -d --stop-timeout 1 --name " + name_ + " " + options_ + " " + kImage +
       " sleep 600");
  up_at_ = Clock::now();
  inspect();
}

std::string Container::exec(const std::string& command) const {
  return must("docker exec " + name_ + " " + command);
}

std::string Container::ip(const std::string& args) const {
  return must("nsenter -t " + pid_ + " -n ip " + args);
}

std::string host_veth_of(const std::string& pid) {
  static const std::regex inside(R"(^(\d+): eth0@if(\d+):)");
  static const std::regex outside(R"(^(\d+): ([^:@ ]+)@if(\d+):)");
  std::smatch m;
  const std::string eth0 = must("nsenter -t " + pid + " -n ip -o link show dev eth0");
  if (!std::regex_search(eth0, m, inside)) {
    ADD_FAILURE() << "no eth0 in the namespace of " << pid << ": " << eth0;
    return "";
  }
  const std::string ifindex = m[1], iflink = m[2];
  std::istringstream links(must("ip -o link show type veth"));
  for (std::string line; std::getline(links, line);)
    if (std::regex_search(line, m, outside) && m[1] == iflink && m[3] == ifindex) return m[2];
  ADD_FAILURE() << "no host veth for eth0 of " << pid;
  return "";
}

std::string Container::host_veth() const { return host_veth_of(pid_); }

void Container::start_sink(int port) const {
  // Its stdin never ends: busybox nc exits when its stdin ends, half-closing the connection, and
  // the client then stops sending.
  must("docker exec -d " + name_ + " sh -c 'sleep 60 | nc -l -p " + std::to_string(port) +
       " > /dev/null'");
  const std::string probe =
      "nsenter -t " + pid_ + " -n ss -Hltn 'sport = :" + std::to_string(port) + "'";
  for (int i = 0; i < 150 && chomp(must(probe)).empty(); ++i) std::this_thread::sleep_for(20ms);
}

void Container::send(const Container& to, int port, size_t bytes) const {
  must("head -c " + std::to_string(bytes) + " /dev/zero | docker exec -i " + name_ + " nc " +
       to.address() + " " + std::to_string(port));
}

void Container::inspect() {
  std::istringstream in(
      must("docker inspect -f '{{.Id}} {{.State.Pid}} {{.NetworkSettings.IPAddress}}' " + name_));
  in >> id_ >> pid_ >> address_;
}

void exchange(const Container& a, const Container& b, size_t a_to_b, size_t b_to_a) {
  must("docker exec " + a.name() + " ping -q -c 20 -i 0.05 " + b.address());
  b.start_sink(5000);
  a.send(b, 5000, a_to_b);
  a.start_sink(5001);
  b.send(a, 5001, b_to_a);
}

Agent::Agent(std::vector<std::string> args, std::vector<std::string> command) : port_(free_port()) {
  char out_path[] = "/tmp/psnictest-agent-out-XXXXXX";
  char err_path[] = "/tmp/psnictest-agent-err-XXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  out_path_ = out_path;
  err_path_ = err_path;
  std::vector<std::string> argv = std::move(command);
  argv.insert(argv.end(), {"--listen", listen_address(port_)});
  argv.insert(argv.end(), args.begin(), args.end());
  auto given = [&](const char* flag) {
    return std::find(args.begin(), args.end(), flag) != args.end();
  };
  if (!given("--pid") && !given("--pin-dir") && !given("--no-pin") && !given("--cleanup")) {
    static int agents = 0;
    pin_dir_ =
        "/sys/fs/bpf/psnictest-agent-" + std::to_string(getpid()) + "-" + std::to_string(++agents);
    argv.insert(argv.end(), {"--pin-dir", pin_dir_});
  }
  std::vector<char*> c_argv;
  for (std::string& arg : argv) c_argv.push_back(arg.data());
  c_argv.push_back(nullptr);
  started_at_ = Clock::now();
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

Agent::~Agent() {
  // A test that stopped half-way: SIGINT first, so that nothing stays attached (no tc filter or
  // tcx link outlives the agent).
  if (!interrupt()) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (!pin_dir_.empty()) run_cleanup(pin_dir_);
  unlink(out_path_.c_str());
  unlink(err_path_.c_str());
}

CommandResult run_cleanup(const std::string& pin_dir) {
  return run(agent_binary() + " --cleanup --pin-dir " + pin_dir);
}

std::string Agent::out() const { return slurp(out_path_); }

std::string Agent::err() const { return slurp(err_path_); }

std::vector<LogRecord> Agent::log() const { return parse_log(err()); }

std::optional<LogRecord> Agent::logged(const std::string& msg, const LogRecord& fields) const {
  return find_logged(log(), msg, fields);
}

std::optional<LogRecord> Agent::last_log_line() const {
  std::string text = err();
  if (!text.ends_with('\n')) return std::nullopt;
  text.pop_back();
  std::vector<LogRecord> last = parse_log(std::string_view(text).substr(text.rfind('\n') + 1));
  if (last.empty()) return std::nullopt;
  return std::move(last.back());
}

bool Agent::wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  for (auto end = Clock::now() + timeout;;) {
    if (done()) return true;
    if (exited() || Clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
}

bool Agent::wait_for_err(const std::string& text, std::chrono::milliseconds timeout) {
  return wait_until([&] { return err().find(text) != std::string::npos; }, timeout);
}

std::optional<LogRecord> Agent::wait_for_log(const std::string& msg, const LogRecord& fields,
                                             std::chrono::milliseconds timeout) {
  return wait_for_log_where(
      [&](const LogRecord& line) { return line.at("msg") == msg && has_fields(line, fields); },
      timeout);
}

std::optional<LogRecord> Agent::wait_for_log_where(
    const std::function<bool(const LogRecord&)>& match, std::chrono::milliseconds timeout) {
  std::optional<LogRecord> found;
  wait_until(
      [&] {
        for (LogRecord& line : log())
          if (match(line)) {
            found = std::move(line);
            return true;
          }
        return false;
      },
      timeout);
  return found;
}

bool Agent::serving() {
  const std::string address = listen_address(port_);
  return wait_for_log("serving /metrics on " + address, {{"address", address}}).has_value();
}

std::optional<int> Agent::wait_exit(std::chrono::milliseconds timeout) {
  for (auto end = Clock::now() + timeout; !exited() && Clock::now() < end;)
    std::this_thread::sleep_for(10ms);
  return status_;
}

std::optional<int> Agent::interrupt(std::chrono::milliseconds timeout) {
  if (!status_) kill(pid_, SIGINT);
  return wait_exit(timeout);
}

size_t Agent::fds() const {
  size_t n = 0;
  DIR* d = opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str());
  if (d == nullptr) return 0;
  while (dirent* entry = readdir(d)) n += entry->d_name[0] != '.';
  closedir(d);
  return n;
}

long Agent::rss_kb() const {
  std::istringstream in(slurp("/proc/" + std::to_string(pid_) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

bool Agent::exited() {
  if (status_) return true;
  int wstatus = 0;
  if (waitpid(pid_, &wstatus, WNOHANG) != pid_) return false;
  status_ = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return true;
}

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

std::vector<Series> parse(const std::string& metrics) {
  std::vector<Series> all;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    Series s;
    size_t at = line.find_first_of("{ ");
    if (at == std::string::npos) continue;
    s.name = line.substr(0, at);
    if (line[at] == '{') {
      ++at;
      while (at < line.size() && line[at] != '}') {
        const size_t eq = line.find("=\"", at);
        if (eq == std::string::npos) break;
        std::string key = line.substr(at, eq - at), value;
        for (at = eq + 2; at < line.size() && line[at] != '"'; ++at) {
          if (line[at] == '\\' && at + 1 < line.size()) ++at;
          value += line[at];
        }
        s.labels[key] = value;
        at = line.find_first_not_of(",", at + 1);
      }
      ++at;
    }
    s.value = std::strtod(line.c_str() + at, nullptr);
    all.push_back(std::move(s));
  }
  return all;
}

std::optional<double> value_of(const std::string& metrics, const std::string& name,
                               const std::map<std::string, std::string>& labels) {
  std::optional<double> value;
  for (const Series& s : parse(metrics)) {
    if (s.name != name) continue;
    if (!std::all_of(labels.begin(), labels.end(), [&](const auto& l) {
          auto it = s.labels.find(l.first);
          return it != s.labels.end() && it->second == l.second;
        }))
      continue;
    if (value) {
      ADD_FAILURE() << "two series " << name << " with " << ::testing::PrintToString(labels);
      return std::nullopt;
    }
    value = s.value;
  }
  return value;
}

std::ostream& operator<<(std::ostream& out, const Counts& c) {
  return out << "{receive " << c.receive_bytes << " B " << c.receive_packets << " pkts, transmit "
             << c.transmit_bytes << " B " << c.transmit_packets << " pkts}";
}

Counts kernel_counts(const std::string& veth) {
  return {link_statistic(veth, "tx_bytes"), link_statistic(veth, "tx_packets"),
          link_statistic(veth, "rx_bytes"), link_statistic(veth, "rx_packets")};
}

std::optional<Counts> agent_counts(const std::string& metrics, const std::string& veth,
                                   const std::string& id, bool split) {
  std::map<std::string, std::string> labels{{"host_interface", veth}};
  if (!id.empty()) labels["container_id"] = id;
  const std::vector<std::string> protocols =
      split ? std::vector<std::string>{"tcp", "udp", "icmp", "other"}
            : std::vector<std::string>{""};
  uint64_t values[4] = {};
  for (int i = 0; i < 4; ++i) {
    for (const std::string& protocol : protocols) {
      if (split) labels["protocol"] = protocol;
      auto v = value_of(metrics, std::string("psnic_container_network_") + kTraffic[i] + "_total",
                        labels);
      if (!v) return std::nullopt;
      values[i] += static_cast<uint64_t>(*v);
    }
  }
  return Counts{values[0], values[1], values[2], values[3]};
}

Snapshot quiet_snapshot(uint16_t port, const std::string& veth, bool split) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::this_thread::sleep_for(300ms);
    const Counts before = kernel_counts(veth);
    std::string metrics = scrape(port);
    const Counts after = kernel_counts(veth);
    if (before != after) continue;
    std::optional<Counts> agent = agent_counts(metrics, veth, "", split);
    if (!agent) {
      ADD_FAILURE() << "no series of " << veth << ":\n" << metrics;
      return {};
    }
    return {*agent, after, metrics};
  }
  ADD_FAILURE() << "no quiet moment on " << veth;
  return {};
}

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

bool still_loaded(const std::string& id) {
  const std::string command = "bpftool " + id.substr(0, 4) + " show id " + id.substr(5);
  for (auto end = Clock::now() + 3s; run(command).status == 0;) {
    if (Clock::now() > end) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

}  // namespace psnic::test::e2e
