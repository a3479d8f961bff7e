// A container runtime's daemon that has hung, for host_agent_bench.sh: listens on the unix socket
// given, accepts every connection, and never reads or answers. Runs until SIGTERM or SIGINT;
// removes its socket then. Usage: hung_daemon PATH
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hung_daemon PATH\n");
    return 2;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(argv[1]) >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "hung_daemon: %s: path too long\n", argv[1]);
    return 2;
  }
  std::strcpy(addr.sun_path, argv[1]);
  // The stop signals are taken with sigwait on this thread, between accepts.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, 128) != 0) {
    std::fprintf(stderr, "hung_daemon: %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  const timespec turn{0, 10 * 1000 * 1000};
  for (;;) {
    // Accepted connections are kept open, never read: the client's request waits forever.
    while (accept4(fd, nullptr, nullptr, SOCK_CLOEXEC) >= 0) {
    }
    if (sigtimedwait(&stop, nullptr, &turn) > 0) break;
  }
  unlink(argv[1]);
  return 0;
}
