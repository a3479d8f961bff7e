#pragma once

// What the end-to-end tests of psnic-agent and psnic share: containers of the real dockerd, the
// agent as a child process, its /metrics read over loopback, and the kernel's own view to check
// it against (traffic counters of a host veth, BPF objects). In psnic::test::e2e, apart from the
// general helpers of tests/support/support.h (psnic::test), because all of it needs dockerd and
// the local psnic-test:latest image (tests/e2e/ensure-docker.sh makes both). The e2e test files
// open this namespace too, so that they use both without using-declarations.
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/agent_log.h"
#include "tests/support/support.h"

namespace psnic::test::e2e {

using Clock = std::chrono::steady_clock;

// Local only (busybox): nothing is ever pulled.
constexpr const char* kImage = "psnic-test:latest";

// The fixture of the tests that use these: skipped unless root (PSNIC_REQUIRE_ROOT), failed
// unless dockerd is there with the local image.
class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override;
};

// A free TCP port on the loopback address (free when asked: the caller binds it soon after).
uint16_t free_port();

// "127.0.0.1:PORT", what psnic-agent's --listen takes and its "serving" line names.
std::string listen_address(uint16_t port);

// The host end of eth0 in the network namespace of process `pid`, without psnic: the host veth
// "N: NAME@ifM:" whose ifindex N is eth0's iflink and whose peer M is eth0's ifindex (both
// checked: ifindexes collide across namespaces). "" (after a failure) when there is none.
std::string host_veth_of(const std::string& pid);

// A container sleeping in psnic-test:latest, force-removed on destruction. `options` go to
// every `docker run` of it ("--network host", say). A failure to start it is a test failure
// (non-fatal here: check HasFailure() before going on).
class Container {
 public:
  explicit Container(char tag, std::string options = "");
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;
  ~Container();

  const std::string& name() const { return name_; }
  const std::string& id() const { return id_; }  // full 64-hex id
  const std::string& pid() const { return pid_; }
  const std::string& address() const { return address_; }  // "" without a network of its own
  // When the last `docker run` or `docker restart` returned.
  Clock::time_point up_at() const { return up_at_; }

  void restart();
  void remove();
  // `docker run` again under the same name (after remove()): a new container.
  void start();

  // Runs `command` in it with `docker exec`; its stdout.
  std::string exec(const std::string& command) const;
  // Runs an iproute2 command in its network namespace, from the host (no `ip` needed inside).
  std::string ip(const std::string& args) const;

  // host_veth_of(its pid).
  std::string host_veth() const;

  // A TCP server on `port` that discards what it reads, listening when this returns.
  void start_sink(int port) const;
  // Sends `bytes` bytes to to's address:port with busybox nc.
  void send(const Container& to, int port, size_t bytes) const;

 private:
  void inspect();

  std::string name_;
  std::string options_;
  std::string id_;
  std::string pid_;
  std::string address_;
  Clock::time_point up_at_;
};

// The traffic of the exact-count tests, both ways between two containers: 20 pings from `a` to
// `b`, then `a_to_b` bytes from a to a sink on b (port 5000) and `b_to_a` bytes from b to a sink
// on a (port 5001).
void exchange(const Container& a, const Container& b, size_t a_to_b, size_t b_to_a);

// psnic-agent as a child process listening on a free loopback port (`--listen` comes first;
// `args` follow), its stdout and stderr in files. Stopped (by its PID) and reaped on destruction
// if it is still there. A host agent (no --pid) given neither --pin-dir nor --no-pin pins in a
// directory of its own, /sys/fs/bpf/psnictest-agent-*, which `psnic-agent --cleanup` clears on
// destruction.
class Agent {
 public:
  explicit Agent(std::vector<std::string> args = {}) : Agent(std::move(args), {agent_binary()}) {}
  // Started by `command` (an absolute path first) in place of the binary: a launcher such as
  // "capsh ... --shell=BINARY --", which execs the agent with the arguments that follow.
  Agent(std::vector<std::string> args, std::vector<std::string> command);
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;
  ~Agent();

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  // The pin directory it was given here, "" when none.
  const std::string& pin_dir() const { return pin_dir_; }
  Clock::time_point started_at() const { return started_at_; }
  std::string out() const;
  std::string err() const;
  // Its log lines so far (stderr parsed, logfmt or JSON; see tests/support/agent_log.h).
  std::vector<LogRecord> log() const;
  // Its first log line whose msg is `msg` and which has each of `fields`.
  std::optional<LogRecord> logged(const std::string& msg, const LogRecord& fields = {}) const;
  // The last line of its stderr, parsed; nullopt unless that is a whole log line.
  std::optional<LogRecord> last_log_line() const;

  // Waits up to `timeout` for `text` on stderr; false (and no more waiting) once it exited.
  bool wait_for_err(const std::string& text,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits up to `timeout` for a log line whose msg is `msg` with each of `fields`, or (the
  // second) one `match` accepts; the first such line, nullopt (and no more waiting) once it
  // exited.
  std::optional<LogRecord> wait_for_log(
      const std::string& msg, const LogRecord& fields = {},
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  std::optional<LogRecord> wait_for_log_where(
      const std::function<bool(const LogRecord&)>& match,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits for its "serving /metrics on 127.0.0.1:PORT" line (address=127.0.0.1:PORT).
  bool serving();
  // The exit status (or 128 + signal) once it has exited, within `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGINT (unless it has exited already), then wait_exit(timeout).
  std::optional<int> interrupt(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Its open file descriptors, and its resident set in kB (-1 when unknown).
  size_t fds() const;
  long rss_kb() const;

 private:
  bool exited();
  // Polls `done` every 10 ms up to `timeout`; false once it exited without `done`.
  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

  uint16_t port_;
  pid_t pid_ = -1;
  Clock::time_point started_at_;
  std::optional<int> status_;
  std::string pin_dir_;
  std::string out_path_;
  std::string err_path_;
};

// `psnic-agent --cleanup --pin-dir DIR`: its status and stderr.
CommandResult run_cleanup(const std::string& pin_dir);

// GET http://127.0.0.1:port/metrics; the body, after a failure unless the answer is a 200.
std::string scrape(uint16_t port);

// One sample line of the exposition: name{labels} value.
struct Series {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Series> parse(const std::string& metrics);

// Scrapes an agent every 25 ms on a thread of its own, from construction to stop(): every label
// set each host interface's traffic series had, and psnic_container_info's series.
class LabelWatch {
 public:
  explicit LabelWatch(uint16_t port)
      : thread_([this, port](std::stop_token stop) {
          while (!stop.stop_requested()) {
            const std::string metrics = scrape(port);
            std::lock_guard lock(mutex_);
            for (Series& s : parse(metrics)) {
              if (s.name.rfind("psnic_container_network_", 0) == 0)
                seen_[s.labels["host_interface"]].insert(s.labels);
              else if (s.name == "psnic_container_info")
                info_.insert(s.labels);
            }
            ++scrapes_;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
          }
        }) {}

  void stop() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  // The label sets `veth`'s series had.
  std::set<std::map<std::string, std::string>> of(const std::string& veth) {
    std::lock_guard lock(mutex_);
    return seen_[veth];
  }
  std::set<std::map<std::string, std::string>> info() {
    std::lock_guard lock(mutex_);
    return info_;
  }
  size_t scrapes() {
    std::lock_guard lock(mutex_);
    return scrapes_;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::set<std::map<std::string, std::string>>> seen_;
  std::set<std::map<std::string, std::string>> info_;
  size_t scrapes_ = 0;
  std::jthread thread_;  // last: it uses the members above
};

// The value of the one series `name` whose labels include all of `labels`; nullopt when there
// is none, and a failure too when there are several.
std::optional<double> value_of(const std::string& metrics, const std::string& name,
                               const std::map<std::string, std::string>& labels = {});

// Traffic in the container's view: receive is the host veth's transmit.
struct Counts {
  uint64_t receive_bytes = 0, receive_packets = 0, transmit_bytes = 0, transmit_packets = 0;
  bool operator==(const Counts&) const = default;
  Counts operator-(const Counts& o) const {
    return {receive_bytes - o.receive_bytes, receive_packets - o.receive_packets,
            transmit_bytes - o.transmit_bytes, transmit_packets - o.transmit_packets};
  }
  // Whether each count is at least o's.
  bool covers(const Counts& o) const {
    return receive_bytes >= o.receive_bytes && receive_packets >= o.receive_packets &&
           transmit_bytes >= o.transmit_bytes && transmit_packets >= o.transmit_packets;
  }
};

std::ostream& operator<<(std::ostream& out, const Counts& c);

// The kernel's own statistics of host veth `veth`, turned round to the container's view.
Counts kernel_counts(const std::string& veth);

// The exported counts of `veth` (of container `id` when given); nullopt unless each of the four
// series is there exactly once.
// With `split` (psnic-agent --split protocol), each is the sum of the four series of its
// protocols (tcp, udp, icmp, other), each there exactly once.
std::optional<Counts> agent_counts(const std::string& metrics, const std::string& veth,
                                   const std::string& id = "", bool split = false);

struct Snapshot {
  Counts agent;
  Counts kernel;
  std::string metrics;
};

// A scrape and the kernel's counters at one quiet moment: read right before and right after the
// scrape, and equal; tried again while background traffic moves them. A failure (and an empty
// snapshot) unless the scrape has the four series of `veth`.
Snapshot quiet_snapshot(uint16_t port, const std::string& veth, bool split = false);

// The ids of the BPF programs and links `pid` holds open, from /proc/PID/fdinfo: "prog 7",
// "link 3".
std::set<std::string> bpf_ids(pid_t pid);

// Whether "prog 7" (`bpftool prog show id 7`) is still there after up to 3 s: the kernel frees a
// program removed with its tc filter after an RCU grace period, in a work queue.
bool still_loaded(const std::string& id);

}  // namespace psnic::test::e2e
