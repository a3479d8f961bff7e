#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/unix_server.h"

namespace psnic::test {

// A Docker daemon stand-in on a unix socket, served by one thread, one connection at a time
// (keep-alive honoured). It serves /_ping, /containers/json and /containers/{id}/json with or
// without a /vM.N prefix, refusing versions outside [min, max] as dockerd does; `raw` answers
// chosen paths (version prefix stripped) with anything.
class FakeDocker {
 public:
  struct Reply {
    Reply(int status_ = 200, std::string body_ = "") : status(status_), body(std::move(body_)) {}
    // Never answers.
    static Reply hanging() {
      Reply r;
      r.hang = true;
      return r;
    }
    // Without Content-Length: the body ends when the connection closes.
    static Reply until_close(int status, std::string body) {
      Reply r(status, std::move(body));
      r.no_length = true;
      return r;
    }
    static Reply redirect(const std::string& location) {
      Reply r(301);
      r.headers = "Location: " + location + "\r\n";
      return r;
    }

    int status;
    std::string body;
    bool hang = false;
    bool no_length = false;
    std::string headers;  // extra header lines, each ending in \r\n
  };

  FakeDocker() = default;
  FakeDocker(const FakeDocker&) = delete;
  FakeDocker& operator=(const FakeDocker&) = delete;

  const std::string& path() const { return server_.path(); }

  void set_versions(std::string min, std::string max) {
    std::lock_guard lock(mutex_);
    min_ = std::move(min);
    max_ = std::move(max);
  }
  void send_api_version(bool send) {
    std::lock_guard lock(mutex_);
    send_api_version_ = send;
  }
  void add_container(std::string id, std::string json) {
    std::lock_guard lock(mutex_);
    containers_[std::move(id)] = std::move(json);
  }
  void raw(std::string path, Reply reply) {
    std::lock_guard lock(mutex_);
    raw_[std::move(path)] = std::move(reply);
  }
  // The request targets received, in order.
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }

 private:
  static std::pair<int, int> version_of(const std::string& v) {
    const size_t dot = v.find('.');
    return {std::stoi(v.substr(0, dot)), std::stoi(v.substr(dot + 1))};
  }

  Reply answer(const std::string& target) {
    std::lock_guard lock(mutex_);
    requests_.push_back(target);
    std::string path = target;
    if (path.rfind("/v", 0) == 0) {
      const size_t slash = path.find('/', 1);
      const std::string version = path.substr(2, slash - 2);
      path = path.substr(slash);
      if (version_of(version) < version_of(min_))
        return {400, R"({"message":"client version )" + version +
                         " is too old. Minimum supported API version is " + min_ +
                         R"(, please upgrade your client to a newer version"})"};
      if (version_of(version) > version_of(max_))
        return {400, R"({"message":"client version )" + version +
                         " is too new. Maximum supported API version is " + max_ + "\"}"};
    }
    if (auto it = raw_.find(path); it != raw_.end()) return it->second;
    if (path == "/_ping") return {200, "OK"};
    if (path == "/containers/json") {
      std::string list = "[";
      for (const auto& [id, json] : containers_)
        list += (list.size() > 1 ? "," : "") + std::string(R"({"Id":")") + id +
                R"(","Names":["/x"],"Image":"psnic-test:latest","State":"running"})";
      return {200, list + "]"};
    }
    const std::string prefix = "/containers/";
    const std::string suffix = "/json";
    if (path.rfind(prefix, 0) == 0 && path.size() > prefix.size() + suffix.size() &&
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string ref =
          path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
      for (const auto& [id, json] : containers_)
        if (id.rfind(ref, 0) == 0) return {200, json};
      return {404, R"({"message":"No such container: )" + ref + "\"}"};
    }
    return {404, R"({"message":"page not found"})"};
  }

  bool wait_readable(int fd) { return server_.wait_readable(fd); }

  void serve_connection(int conn) {
    {
      std::lock_guard lock(mutex_);
      ++connections_;
    }
    std::string buffer;
    for (;;) {
      size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!wait_readable(conn)) return;
        char chunk[4096];
        const ssize_t n = read(conn, chunk, sizeof(chunk));
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      const std::string head = buffer.substr(0, end);
      buffer.erase(0, end + 4);
      const size_t sp1 = head.find(' ');
      const size_t sp2 = head.find(' ', sp1 + 1);
      const Reply reply = answer(head.substr(sp1 + 1, sp2 - sp1 - 1));
      if (reply.hang) {
        while (wait_readable(conn)) {
          char chunk[4096];
          if (read(conn, chunk, sizeof(chunk)) <= 0) return;
        }
        return;
      }
      std::string response = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n" +
                             "Content-Type: application/json\r\n" + reply.headers;
      {
        std::lock_guard lock(mutex_);
        if (send_api_version_) response += "Api-Version: " + max_ + "\r\n";
      }
      response += reply.no_length ? std::string("Connection: close\r\n")
                                  : "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
      response += "\r\n" + reply.body;
      for (size_t sent = 0; sent < response.size();) {
        const ssize_t n = send(conn, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<size_t>(n);
      }
      if (reply.no_length) return;
    }
  }

  mutable std::mutex mutex_;
  std::string min_ = "1.12";
  std::string max_ = "1.41";
  bool send_api_version_ = true;
  std::map<std::string, std::string> containers_;
  std::map<std::string, Reply> raw_;
  std::vector<std::string> requests_;
  int connections_ = 0;
  // Last: it serves from its own thread, with the members above.
  test::UnixSocketServer server_{[this](int conn) {
    serve_connection(conn);
    close(conn);
  }};
};

}  // namespace psnic::test
