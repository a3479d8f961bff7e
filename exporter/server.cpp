#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include "exporter/metrics.h"
#include "resolver/error.h"

namespace psnic {

namespace {

// civetweb's option values. Worker threads each serve one connection at a time, and a client
// that connects and says nothing holds its worker until the request timeout: with 8 workers and
// 5 s, a few idle or slow clients cannot starve Prometheus. No document_root: only the
// registered handler (/metrics) answers, nothing is read from disk.
constexpr const char* kWorkerThreads = "8";
constexpr const char* kRequestTimeoutMs = "5000";

// civetweb feature bit for IPv6 (mg_check_feature): Debian 12's civetweb is built without it.
constexpr unsigned kCivetwebIpv6 = 8;

Error bad_listen(std::string_view text, std::string cause) {
  return Error("listen " + std::string(text), EINVAL, std::move(cause));
}

// The messages civetweb reports while the thread that calls mg_start (through the Exposer)
// starts the server; nullptr outside that window.
thread_local std::vector<std::string>* startup_messages = nullptr;

// civetweb's log_message callback: keep what start-up says for the error, and never let
// civetweb print (returning 1 tells it the message was handled).
int capture_civetweb_message(const mg_connection*, const char* message) {
  if (startup_messages && message) {
    try {
      startup_messages->emplace_back(message);
    } catch (...) {
    }
  }
  return 1;
}

// civetweb's socket errors read "cannot bind to 127.0.0.1:80: 98 (Address already in use)":
// the errno is the number after the last ": ".
int errno_in(const std::string& message) {
  size_t colon = message.rfind(": ");
  if (colon == std::string::npos) return 0;
  int number = 0;
  const char* begin = message.data() + colon + 2;
  const char* end = message.data() + message.size();
  auto [rest, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || rest == begin || rest == end || *rest != ' ') return 0;
  return number > 0 ? number : 0;
}

// One line for a failed start: the errno civetweb saw, or else its first message.
Error start_failure(const std::string& listen, const std::vector<std::string>& messages) {
  for (const std::string& message : messages) {
    if (int number = errno_in(message)) return system_error("listen " + listen, number);
  }
  std::string cause = messages.empty() ? "the http server did not start" : messages.front();
  for (char& c : cause) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (!cause.empty())
    cause[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(cause[0])));
  return Error("listen " + listen, 0, cause);
}

// Connects to the server and hangs up at once; the address is numeric, so nothing here blocks
// for long.
void knock(const ListenAddress& address) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (address.ipv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    if (inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr) != 1) return;
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) in6->sin6_addr = in6addr_loopback;
    length = sizeof(*in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(address.port);
    if (inet_pton(AF_INET, address.host.c_str(), &in->sin_addr) != 1) return;
    if (in->sin_addr.s_addr == htonl(INADDR_ANY)) in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof(*in);
  }
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  // Non-blocking, so a remote address cannot hold us. On a local address the handshake completes
  // inside connect(): the listening socket has a connection to accept, and its poll wakes.
  (void)connect(fd, reinterpret_cast<const sockaddr*>(&storage), length);
  close(fd);
}

}  // namespace

ListenAddress parse_listen(std::string_view text) {
  ListenAddress address;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t bracket = text.find(']');
    if (bracket == std::string_view::npos)
      throw bad_listen(text, "missing ']' after the ipv6 address");
    host = text.substr(1, bracket - 1);
    std::string_view after = text.substr(bracket + 1);
    if (after.empty() || after.front() != ':')
      throw bad_listen(text, "expected [IPV6]:PORT, e.g. [::1]:9867");
    port = after.substr(1);
    address.ipv6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      throw bad_listen(text, "expected ADDR:PORT, e.g. " + std::string(kDefaultListen));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      throw bad_listen(text, "an ipv6 address goes in brackets: [ADDR]:PORT");
  }

  if (address.ipv6) {
    in6_addr binary;
    if (!inet_pton(AF_INET6, std::string(host).c_str(), &binary))
      throw bad_listen(text, "invalid ipv6 address \"" + std::string(host) + "\"");
    address.host = std::string(host);
  } else if (host.empty()) {
    address.host = "0.0.0.0";
  } else {
    in_addr binary;
    // inet_pton takes only the dotted quad: no names, no "1.2.3", no octets above 255.
    if (!inet_pton(AF_INET, std::string(host).c_str(), &binary))
      throw bad_listen(text, "invalid ipv4 address \"" + std::string(host) +
                                 "\" (a numeric address is needed, not a name)");
    address.host = std::string(host);
  }

  unsigned number = 0;
  auto [rest, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc() || rest != port.data() + port.size() || number > 65535)
    throw bad_listen(text, "invalid port \"" + std::string(port) +
                               "\": expected 1-65535, or 0 for any free port");
  address.port = static_cast<uint16_t>(number);
  return address;
}

MetricsServer::MetricsServer(const std::string& listen,
                             std::vector<std::shared_ptr<prometheus::Collectable>> collectables)
    : collectables_(std::move(collectables)) {
  const ListenAddress address = parse_listen(listen);
  if (address.ipv6 && !mg_check_feature(kCivetwebIpv6))
    throw Error("listen " + listen, EAFNOSUPPORT,
                "ipv6 is not supported by this civetweb build: listen on an ipv4 address");
  const std::string ports = address.ipv6 ? "[" + address.host + "]:" + std::to_string(address.port)
                                         : address.host + ":" + std::to_string(address.port);

  CivetCallbacks callbacks;
  callbacks.log_message = capture_civetweb_message;
  std::vector<std::string> messages;
  startup_messages = &messages;
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", ports, "num_threads", kWorkerThreads,
                                 "request_timeout_ms", kRequestTimeoutMs},
        &callbacks);
  } catch (const std::exception&) {
    // CivetException: "null context when constructing CivetServer. Possible problem binding to
    // port." The cause is in what civetweb tried to log.
    startup_messages = nullptr;
    throw start_failure(listen, messages);
  }
  startup_messages = nullptr;

  bound_ = address;
  if (std::vector<int> bound = exposer_->GetListeningPorts(); !bound.empty())
    bound_.port = static_cast<uint16_t>(bound.front());
  for (const auto& collectable : collectables_) exposer_->RegisterCollectable(collectable);
}

MetricsServer::~MetricsServer() {
  // civetweb's accept loop looks at its stop flag only between polls of up to 2 s (its
  // SOCKET_TIMEOUT_QUANTUM), so stopping would take that long. A connection wakes the poll:
  // knock until the server is gone. (Knocks before the stop are accepted and closed at once.)
  std::atomic<bool> stopped{false};
  std::thread knocker;
  try {
    knocker = std::thread([this, &stopped] {
      while (!stopped.load()) {
        knock(bound_);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  } catch (...) {
    // No thread: stopping just takes longer.
  }
  exposer_.reset();
  stopped = true;
  if (knocker.joinable()) knocker.join();
}

std::vector<int> MetricsServer::ports() const { return exposer_->GetListeningPorts(); }

}  // namespace psnic
