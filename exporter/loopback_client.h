// A minimal HTTP/1.1 GET over TCP to 127.0.0.1, for the tests and the scrape benchmark: it
// checks what a scraper sees without curl or another process. Header-only, so the exporter
// library does not carry it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "resolver/error.h"

namespace psnic::loopback {

struct HttpResponse {
  int status = 0;
  std::string headers;  // status line and headers, without the blank line
  std::string body;
};

// A connected socket to 127.0.0.1:port whose reads and writes time out after `timeout_seconds`
// without progress. Throws Error.
inline int connect_to(int port, int timeout_seconds) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw system_error("socket", errno);
  timeval timeout{timeout_seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    int saved = errno;
    close(fd);
    throw system_error("connect 127.0.0.1:" + std::to_string(port), saved);
  }
  return fd;
}

// GET `path` with "Connection: close" and `extra_headers` (each line ending in "\r\n"), and
// read the response to the end. Throws Error on any failure, a timeout included.
inline HttpResponse get(int port, const std::string& path, int timeout_seconds = 3,
                        const std::string& extra_headers = "") {
  int fd = connect_to(port, timeout_seconds);
  const std::string request = "GET " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: psnic-test\r\n" +
                              extra_headers + "Connection: close\r\n\r\n";
  std::string raw;
  int failed = 0;
  const char* what = "send";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
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
  if (failed) throw system_error(std::string(what) + " 127.0.0.1:" + std::to_string(port), failed);

  HttpResponse response;
  size_t end = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || raw.size() < 12 || end == std::string::npos)
    throw Error("http response", 0, "malformed: " + raw.substr(0, 80));
  response.status = std::stoi(raw.substr(9, 3));
  response.headers = raw.substr(0, end);
  response.body = raw.substr(end + 4);
  return response;
}

}  // namespace psnic::loopback
