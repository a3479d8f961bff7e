#include "tests/support/support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
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

std::string psnic_binary() { return PSNIC_BINARY; }

unsigned host_ifindex(const std::string& name) {
  std::ifstream in("/sys/class/net/" + name + "/ifindex");
  unsigned index = 0;
  in >> index;
  return index;
}

}  // namespace psnic::test
