#pragma once

// A server on a unix socket in a fresh directory under /tmp, for the stand-ins of daemons
// (dockerd) that unit tests talk to. One thread accepts the connections, one at a time, and
// hands each to the handler, which then owns it (closes it, or keeps it open).
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

namespace psnic::test {

class UnixSocketServer {
 public:
  // `handle` runs on the server's thread. The server starts at once: make it the last member of
  // the class whose members the handler uses, so that it is stopped before they are destroyed.
  explicit UnixSocketServer(std::function<void(int connection)> handle)
      : handle_(std::move(handle)) {
    char dir[] = "/tmp/psnictest-docker-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    path_ = dir_ + "/docker.sock";
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listen_fd_, 8) != 0)
      throw std::runtime_error(std::string("unix socket server: ") + std::strerror(errno));
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { accept_loop(); });
  }
  UnixSocketServer(const UnixSocketServer&) = delete;
  UnixSocketServer& operator=(const UnixSocketServer&) = delete;
  ~UnixSocketServer() {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
    close(stop_fd_);
    close(listen_fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  const std::string& path() const { return path_; }

  // For the handler: waits for `fd` to be readable; false when the server is stopping.
  bool wait_readable(int fd) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    while (poll(fds, 2, -1) < 0)
      if (errno != EINTR) return false;
    return !(fds[1].revents & POLLIN);
  }

 private:
  void accept_loop() {
    while (wait_readable(listen_fd_)) {
      const int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection >= 0) handle_(connection);
    }
  }

  std::function<void(int)> handle_;
  std::string dir_;
  std::string path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace psnic::test
