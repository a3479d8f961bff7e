#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace psnic::test {

bool is_root();

// Privileged and e2e tests need root. As root they never skip (CI fails on any skip).
#define PSNIC_REQUIRE_ROOT()                                     \
  do {                                                           \
    if (!::psnic::test::is_root()) GTEST_SKIP() << "needs root"; \
  } while (0)

struct CommandResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `command` with /bin/sh -c and collects its output.
CommandResult run(const std::string& command);

// Runs `command` and fails the calling test (ADD_FAILURE) unless it exits 0. Returns stdout.
std::string must(const std::string& command);

// A name no other test process uses: "psnictest" + this process's PID in base 36 + `tag`,
// at most 15 characters, so it is a valid interface name too.
std::string unique_name(char tag);

// Trims trailing newlines.
std::string chomp(std::string s);

// A named network namespace (`ip netns add`), deleted with everything in it on destruction.
class TestNetns {
 public:
  explicit TestNetns(char tag);
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;
  ~TestNetns();

  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  // Runs an iproute2 command inside: exec("link add ...").
  std::string ip(const std::string& args) const;

 private:
  std::string name_;
};

// A process sleeping in the namespace at `netns_path` (or in the caller's when empty), killed
// by its PID and reaped on destruction.
class Sleeper {
 public:
  explicit Sleeper(const std::string& netns_path = "");
  Sleeper(const Sleeper&) = delete;
  Sleeper& operator=(const Sleeper&) = delete;
  ~Sleeper();

  pid_t pid() const { return pid_; }
  // Kills and reaps it now.
  void stop();

 private:
  pid_t pid_ = -1;
};

// A namespace whose eth0 is paired with a host veth (the namespace's tag in lower case, the
// host veth's in upper case). With `addressed`, both ends are up with a /30 of 198.18.0.0/15
// (RFC 2544's benchmarking range) chosen from this process's PID, and IPv6 is off on both, so
// that only the test's own traffic crosses the pair.
class TestVeth {
 public:
  explicit TestVeth(char tag, bool addressed = false);
  TestVeth(const TestVeth&) = delete;
  TestVeth& operator=(const TestVeth&) = delete;
  ~TestVeth();

  TestNetns ns;
  std::string host;            // the host-side veth
  std::string host_address;    // "198.18.x.y", when addressed
  std::string inside_address;  // eth0's address, when addressed
};

// A TCP server inside a namespace that reads and discards whatever it is sent, in a child
// process killed by its PID on destruction.
class TcpSink {
 public:
  TcpSink(const std::string& netns_path, uint16_t port);
  TcpSink(const TcpSink&) = delete;
  TcpSink& operator=(const TcpSink&) = delete;
  ~TcpSink();

 private:
  pid_t pid_ = -1;
};

// Connects to address:port and sends `bytes` bytes; returns false on any failure.
bool send_tcp(const std::string& address, uint16_t port, size_t bytes);
// Sends `count` UDP datagrams of `size` bytes to address:port.
bool send_udp(const std::string& address, uint16_t port, size_t size, int count);

// The kernel's own statistics of a host link: /sys/class/net/<name>/statistics/<counter>.
uint64_t link_statistic(const std::string& name, const std::string& counter);

// TCX hooks, absent from Debian 12's uapi headers (BPF_TCX_INGRESS, BPF_TCX_EGRESS).
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;

// Program ids attached to an interface's TCX hook (kTcxIngress, kTcxEgress), head first.
std::vector<uint32_t> tcx_chain(uint32_t ifindex, int attach_type);

// The programs named psnic_* on a host interface: in its TCX chains and in its tc filters (any
// handle). Two, one each way, when psnic counts it once; more is a duplicate attachment.
size_t psnic_programs(const std::string& name);

// Paths of the built psnic and psnic-agent binaries (set by CMake).
std::string psnic_binary();
std::string agent_binary();

// The ifindex of a link in the caller's namespace, read from /sys/class/net (valid for the
// host's own links only).
unsigned host_ifindex(const std::string& name);

// The host's /sys/kernel/rcu_expedited, which --expedite-attach sets while a backlog is
// attached, as it reads ("0"). A test that changes it holds an RcuExpeditedAt.
std::string rcu_expedited();
// Writes `value` to it (a test's TearDown giving the machine its value back).
void set_rcu_expedited(const std::string& value);

// Holds the host's rcu_expedited at `value` (for a test that needs ordinary grace periods to see
// psnic set the knob), then gives it back the exact value it had, also when the test fails.
class RcuExpeditedAt {
 public:
  explicit RcuExpeditedAt(const std::string& value);
  RcuExpeditedAt(const RcuExpeditedAt&) = delete;
  RcuExpeditedAt& operator=(const RcuExpeditedAt&) = delete;
  ~RcuExpeditedAt();

 private:
  std::string saved_;
};

// `count` host veths (named psnictest<PID's last 4 base-36 digits><2 more>), each paired with an
// interface in `ns` (gone with it), made by one `ip -batch`. Their names.
std::vector<std::string> make_host_veths(const TestNetns& ns, size_t count);

}  // namespace psnic::test
