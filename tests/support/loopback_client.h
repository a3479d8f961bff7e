// A minimal HTTP/1.1 client over TCP to a loopback address, for the tests and the scrape
// benchmark: it checks what a scraper sees without curl or another process. Header-only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <string>
#include <vector>

#include "base/error.h"

namespace psnic::loopback {

struct HttpResponse {
  int status = 0;
  std::string headers;  // status line and headers, without the blank line
  std::string body;

  // The value of header `name` (any case), "" when absent.
  std::string header(const std::string& name) const {
    size_t at = headers.find("\r\n");
    while (at != std::string::npos) {
      const size_t begin = at + 2;
      const size_t end = headers.find("\r\n", begin);
      const std::string line = headers.substr(begin, end == std::string::npos ? end : end - begin);
      const size_t colon = line.find(':');
      if (colon == name.size()) {
        bool same = true;
        for (size_t i = 0; i < colon && same; ++i)
          same = std::tolower(static_cast<unsigned char>(line[i])) ==
                 std::tolower(static_cast<unsigned char>(name[i]));
        if (same) {
          const size_t value = line.find_first_not_of(' ', colon + 1);
          return value == std::string::npos ? "" : line.substr(value);
        }
      }
      at = end;
    }
    return "";
  }
};

// A connected socket to `address` (numeric IPv4 or IPv6), `port`, whose reads and writes time
// out after `timeout_seconds` without progress. `source`, when given, is the local IPv4 address
// to connect from (127.0.0.2 and up are loopback too: other clients, as the server sees them).
// Throws Error.
inline int connect_to(int port, int timeout_seconds, const std::string& address = "127.0.0.1",
                      const std::string& source = "") {
  const bool ipv6 = address.find(':') != std::string::npos;
  const std::string where = (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw system_error("socket", errno);
  timeval timeout{timeout_seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  auto fail = [&](const std::string& what, int saved) {
    close(fd);
    return system_error(what, saved);
  };
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (ipv6 || inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1)
      throw fail("bind " + source, EINVAL);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
      throw fail("bind " + source, errno);
  }
  int connected;
  if (ipv6) {
    sockaddr_in6 remote{};
    remote.sin6_family = AF_INET6;
    remote.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, address.c_str(), &remote.sin6_addr) != 1)
      throw fail("connect " + where, EINVAL);
    connected = connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote));
  } else {
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, address.c_str(), &remote.sin_addr) != 1)
      throw fail("connect " + where, EINVAL);
    connected = connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote));
  }
  if (connected != 0) throw fail("connect " + where, errno);
  return fd;
}

struct Request {
  std::string method = "GET";
  std::string path = "/metrics";
  std::string headers;                // extra header lines, each ending in "\r\n"
  std::string address = "127.0.0.1";  // numeric IPv4 or IPv6
  int timeout_seconds = 3;
};

// Sends `request` with "Connection: close" and reads the response to the end. Throws Error on
// any failure, a timeout included.
inline HttpResponse send_request(int port, const Request& request) {
  int fd = connect_to(port, request.timeout_seconds, request.address);
  const std::string text = request.method + " " + request.path +
                           " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: psnic-test\r\n" +
                           request.headers + "Connection: close\r\n\r\n";
  std::string raw;
  int failed = 0;
  const char* what = "send";
  if (send(fd, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
    failed = errno ? errno : EIO;
  }
  char buffer[65536];
  while (!failed) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      failed = errno;
      what = "recv";
      break;
    }
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  if (failed)
    throw system_error(std::string(what) + " " + request.address + " port " + std::to_string(port),
                       failed);

  HttpResponse response;
  size_t end = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || raw.size() < 12 || end == std::string::npos)
    throw Error("http response", 0, "malformed: " + raw.substr(0, 80));
  response.status = std::stoi(raw.substr(9, 3));
  response.headers = raw.substr(0, end);
  response.body = raw.substr(end + 4);
  return response;
}

// GET `path` from 127.0.0.1 with `extra_headers` (each line ending in "\r\n").
inline HttpResponse get(int port, const std::string& path, int timeout_seconds = 3,
                        const std::string& extra_headers = "") {
  Request request;
  request.path = path;
  request.headers = extra_headers;
  request.timeout_seconds = timeout_seconds;
  return send_request(port, request);
}

// Slow clients (slowloris), for the tests and the scrape benchmark: each sent the start of a
// request and never its end. Their sockets are closed on destruction, whatever the caller
// asserted.
struct HeldConnections {
  std::vector<int> fds;
  HeldConnections() = default;
  HeldConnections(const HeldConnections&) = delete;
  HeldConnections& operator=(const HeldConnections&) = delete;
  ~HeldConnections() {
    for (int fd : fds) close(fd);
  }
  // One more, from `source` (127.0.0.2 and up are loopback too: other clients).
  int hold(int port, const std::string& source) {
    int fd = connect_to(port, 3, "127.0.0.1", source);
    fds.push_back(fd);
    const std::string partial = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n";
    (void)send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
    return fd;
  }
  // How many the server still holds: nothing to read yet, and no end of stream.
  size_t open() const {
    size_t n = 0;
    for (int fd : fds) {
      char byte;
      if (recv(fd, &byte, 1, MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ++n;
    }
    return n;
  }
};

}  // namespace psnic::loopback
