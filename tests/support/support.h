#pragma once

#include <sys/types.h>

#include <string>

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

// Path of the built psnic binary (set by CMake).
std::string psnic_binary();

// The ifindex of a link in the caller's namespace, read from /sys/class/net (valid for the
// host's own links only).
unsigned host_ifindex(const std::string& name);

}  // namespace psnic::test
