#include "tests/support/support.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace psnic::test {

bool is_root() { return geteuid() == 0; }

CommandResult run(const std::string& command) {
  char out_path[] = "/tmp/psnictest-out-XXXXXX";
  char err_path[] = "/tmp/psnictest-err-XXXXXX";
  int out_fd = mkstemp(out_path);
  int err_fd = mkstemp(err_path);
  CommandResult result;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  auto slurp = [](const char* path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  close(out_fd);
  close(err_fd);
  unlink(out_path);
  unlink(err_path);
  return result;
}

std::string must(const std::string& command) {
  CommandResult r = run(command);
  if (r.status != 0)
    ADD_FAILURE() << "command failed (" << r.status << "): " << command << "\n" << r.err;
  return r.out;
}

std::string unique_name(char tag) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string base36;
  for (unsigned pid = static_cast<unsigned>(getpid()); pid > 0; pid /= 36)
    base36.insert(base36.begin(), digits[pid % 36]);
  return "psnictest" + base36 + tag;
}

std::string chomp(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

TestNetns::TestNetns(char tag) : name_(unique_name(tag)) { must("ip netns add " + name_); }

TestNetns::~TestNetns() {
  // The kernel tears a deleted namespace down later, in a work queue, and its veths' host peers
  // with it: delete the veths now so their names are free for the next test at once.
  run("for l in $(ip -n " + name_ +
      " -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1); do ip -n " + name_ +
      " link del \"$l\"; done");
  run("ip netns pids " + name_ + " | xargs -r kill -9");
  run("ip netns del " + name_);
}

std::string TestNetns::ip(const std::string& args) const {
  return must("ip -n " + name_ + " " + args);
}

Sleeper::Sleeper(const std::string& netns_path) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) throw std::runtime_error("pipe");
  pid_ = fork();
  if (pid_ == 0) {
    if (!netns_path.empty()) {
      int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) _exit(126);
    }
    // The exec closes the pipe: the parent knows the child is in place.
    execl("/bin/sleep", "sleep", "3600", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(ready[1]);
  char byte;
  while (read(ready[0], &byte, 1) < 0 && errno == EINTR) {
  }
  close(ready[0]);
}

Sleeper::~Sleeper() { stop(); }

void Sleeper::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

TestVeth::TestVeth(char tag, bool addressed)
    : ns(tag), host(unique_name(static_cast<char>(std::toupper(static_cast<unsigned char>(tag))))) {
  must("ip link add " + host + " type veth peer name eth0 netns " + ns.name());
  if (!addressed) return;
  static int pairs_made = 0;
  unsigned subnet = (static_cast<unsigned>(getpid()) % 8192) * 4 + (pairs_made++ % 4);
  unsigned base = (198u << 24) | (18u << 16) | (subnet << 2);  // 198.18.0.0/15 holds 32768 /30s
  auto dotted = [](unsigned a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
  };
  host_address = dotted(base + 1);
  inside_address = dotted(base + 2);
  must("sysctl -qw net.ipv6.conf." + host + ".disable_ipv6=1");
  ns.ip("link set lo up");
  must("ip netns exec " + ns.name() + " sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1");
  must("ip addr add " + host_address + "/30 dev " + host);
  ns.ip("addr add " + inside_address + "/30 dev eth0");
  must("ip link set " + host + " up");
  ns.ip("link set eth0 up");
}

TestVeth::~TestVeth() { run("ip link del " + host); }

TcpSink::TcpSink(const std::string& netns_path, uint16_t port) {
  int ready[2];
  if (pipe(ready) < 0) throw std::runtime_error("pipe");
  pid_ = fork();
  if (pid_ == 0) {
    close(ready[0]);
    int fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) _exit(126);
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(server, 8) < 0)
      _exit(125);
    char ok = 1;
    if (write(ready[1], &ok, 1) != 1) _exit(124);
    close(ready[1]);
    char buffer[65536];
    for (;;) {
      int client = accept(server, nullptr, nullptr);
      if (client < 0) continue;
      while (read(client, buffer, sizeof buffer) > 0) {
      }
      close(client);
    }
  }
  close(ready[1]);
  char ok = 0;
  while (read(ready[0], &ok, 1) < 0 && errno == EINTR) {
  }
  close(ready[0]);
  if (ok != 1) ADD_FAILURE() << "tcp sink did not start in " << netns_path;
}

TcpSink::~TcpSink() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

bool send_tcp(const std::string& address, uint16_t port, size_t bytes) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  std::string chunk(65536, 'p');
  for (size_t sent = 0; ok && sent < bytes;) {
    ssize_t n = write(fd, chunk.data(), std::min(chunk.size(), bytes - sent));
    if (n <= 0)
      ok = false;
    else
      sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  close(fd);
  return ok;
}

bool send_udp(const std::string& address, uint16_t port, size_t size, int count) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  std::string payload(size, 'u');
  bool ok = fd >= 0;
  for (int i = 0; ok && i < count; ++i)
    ok = sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                sizeof addr) == static_cast<ssize_t>(payload.size());
  close(fd);
  return ok;
}

uint64_t link_statistic(const std::string& name, const std::string& counter) {
  std::ifstream in("/sys/class/net/" + name + "/statistics/" + counter);
  uint64_t value = 0;
  in >> value;
  return value;
}

std::string psnic_binary() { return PSNIC_BINARY; }
std::string agent_binary() { return PSNIC_AGENT_BINARY; }

unsigned host_ifindex(const std::string& name) {
  std::ifstream in("/sys/class/net/" + name + "/ifindex");
  unsigned index = 0;
  in >> index;
  return index;
}

std::vector<uint32_t> tcx_chain(uint32_t ifindex, int attach_type) {
  uint32_t ids[64] = {};
  uint32_t count = 64;
  uint32_t flags = 0;
  if (bpf_prog_query(static_cast<int>(ifindex), static_cast<bpf_attach_type>(attach_type), 0,
                     &flags, ids, &count) < 0)
    return {};
  return std::vector<uint32_t>(ids, ids + count);
}

size_t psnic_programs(const std::string& name) {
  size_t found = 0;
  if (unsigned ifindex = if_nametoindex(name.c_str())) {
    for (int hook : {kTcxIngress, kTcxEgress})
      for (uint32_t id : tcx_chain(ifindex, hook)) {
        int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0) continue;
        bpf_prog_info info{};
        uint32_t length = sizeof info;
        if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
            std::string_view(info.name).rfind("psnic_", 0) == 0)
          ++found;
        close(fd);
      }
  }
  for (const char* hook : {"ingress", "egress"}) {
    const std::string filters = run("tc filter show dev " + name + " " + hook).out;
    // "... handle 0x5053 psnic_ingress:[7] direct-action not_in_hw id 7 name psnic_ingress ..."
    for (size_t at = filters.find(" name psnic_"); at != std::string::npos;
         at = filters.find(" name psnic_", at + 1))
      ++found;
  }
  return found;
}

namespace {
constexpr const char* kRcuExpedited = "/sys/kernel/rcu_expedited";
}  // namespace

void set_rcu_expedited(const std::string& value) {
  std::ofstream knob(kRcuExpedited);
  knob << value << "\n";
  knob.flush();
  EXPECT_TRUE(knob.good()) << "writing " << value << " to " << kRcuExpedited;
}

std::string rcu_expedited() {
  std::ifstream knob(kRcuExpedited);
  std::string value;
  knob >> value;
  return value;
}

RcuExpeditedAt::RcuExpeditedAt(const std::string& value) : saved_(rcu_expedited()) {
  EXPECT_FALSE(saved_.empty()) << kRcuExpedited << " cannot be read";
  set_rcu_expedited(value);
}

RcuExpeditedAt::~RcuExpeditedAt() {
  if (!saved_.empty()) set_rcu_expedited(saved_);
}

std::vector<std::string> make_host_veths(const TestNetns& ns, size_t count) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  // IFNAMSIZ leaves 6 characters after "psnictest": the PID's last 4 base-36 digits, then 2.
  std::string base = "psnictest";
  for (unsigned pid = static_cast<unsigned>(getpid()) % (36 * 36 * 36 * 36), n = 0; n < 4;
       ++n, pid /= 36)
    base.insert(base.begin() + 9, digits[pid % 36]);
  std::vector<std::string> names;
  std::string batch;
  for (size_t i = 0; i < count && i < 36 * 36; ++i) {
    names.push_back(base + digits[i / 36] + digits[i % 36]);
    batch += "link add " + names.back() + " type veth peer name e" + std::to_string(i) + " netns " +
             ns.name() + "\n";
  }
  char path[] = "/tmp/psnictest-batch-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  if (fd >= 0) {
    EXPECT_EQ(write(fd, batch.data(), batch.size()), static_cast<ssize_t>(batch.size()));
    close(fd);
    must(std::string("ip -batch ") + path);
    unlink(path);
  }
  return names;
}

}  // namespace psnic::test
