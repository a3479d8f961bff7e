#include "exporter/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "exporter/pages.h"

namespace psnic {

namespace {

// The least time between two of libmicrohttpd's run-time messages: clients can make it talk.
constexpr std::chrono::seconds kLogInterval{10};

Error bad_listen(std::string_view text, std::string cause) {
  return Error("listen " + std::string(text), EINVAL, std::move(cause));
}

// One of libmicrohttpd's printf-style messages as one line: without its trailing newline and
// full stop, lowercase first, every byte outside printable ASCII (and the backslash) as \xNN,
// since a client's URL can be in it.
std::string one_line(const char* format, va_list args) {
  char buffer[512];
  const int n = std::vsnprintf(buffer, sizeof buffer, format, args);
  if (n < 0) return "unreadable message";
  std::string_view raw(buffer, std::min(static_cast<size_t>(n), sizeof buffer - 1));
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == '.' || raw.back() == ' '))
    raw.remove_suffix(1);
  std::string line;
  for (unsigned char c : raw) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      line += static_cast<char>(c);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      line += escaped;
    }
  }
  if (!line.empty()) line[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(line[0])));
  return line;
}

// "[::]", "[0::0]"...: every address of both families.
bool dual_stack(const ListenAddress& address) {
  in6_addr binary{};
  return address.ipv6 && inet_pton(AF_INET6, address.host.c_str(), &binary) == 1 &&
         IN6_IS_ADDR_UNSPECIFIED(&binary);
}

// The listening socket. psnic binds it rather than libmicrohttpd, so that a failure is the errno
// of the call that failed ("address already in use"), never a message to parse.
Fd open_listener(const ListenAddress& address, const std::string& listen) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (address.ipv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr);  // parse_listen checked it
    length = sizeof(*in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(address.port);
    inet_pton(AF_INET, address.host.c_str(), &in->sin_addr);
    length = sizeof(*in);
  }
  Fd fd(socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) throw system_error("listen " + listen, errno);
  // A restarted agent binds again while its last connections are in TIME_WAIT. (On Linux this
  // never lets two listeners share a port.)
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (address.ipv6) {
    // "[::]" serves IPv4 clients too, whatever net.ipv6.bindv6only says; a specific IPv6
    // address only its own family.
    const int v6only = dual_stack(address) ? 0 : 1;
    if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
      throw system_error("listen " + listen, errno);
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0 ||
      ::listen(fd.get(), SOMAXCONN) != 0)
    throw system_error("listen " + listen, errno);
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return 0;
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
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

// Everything the server's thread touches. Requests are answered on libmicrohttpd's one thread,
// one at a time; the collectables are thread-safe anyway.
class MetricsServer::Endpoint {
 public:
  Endpoint(std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
           EndpointOptions options)
      : log_(options.log), pages_(std::move(collectables), std::move(options)) {}
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint() {
    if (daemon_) MHD_stop_daemon(daemon_);  // joins the thread, closes every socket
  }

  void start(const std::string& listen);
  uint16_t port() const { return port_; }

 private:
  static MHD_Result answer(void* self, MHD_Connection* connection, const char* url,
                           const char* method, const char* version, const char* upload_data,
                           size_t* upload_data_size, void** request);
  static void log_message(void* self, const char* format, va_list args);

  std::function<void(const std::string&)> log_;  // EndpointOptions::log
  EndpointPages pages_;
  MHD_Daemon* daemon_ = nullptr;
  uint16_t port_ = 0;

  std::mutex log_mutex_;
  bool starting_ = false;  // messages are kept for the start-up error
  std::vector<std::string> startup_messages_;
  std::chrono::steady_clock::time_point last_log_{};
};

void MetricsServer::Endpoint::start(const std::string& listen) {
  const ListenAddress address = parse_listen(listen);
  Fd listener = open_listener(address, listen);
  port_ = bound_port(listener.get());

  // libmicrohttpd closes the socket it is given when it stops, and on some of its start-up
  // failures but not all: it gets a duplicate, and psnic closes its own either way.
  Fd given(fcntl(listener.get(), F_DUPFD_CLOEXEC, 0));
  if (!given.valid()) throw system_error("listen " + listen, errno);

  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
  // The socket is bound already (IPV6_V6ONLY set as these flags say); they tell libmicrohttpd
  // its family.
  if (address.ipv6) flags |= dual_stack(address) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  {
    std::lock_guard lock(log_mutex_);
    starting_ = true;
  }
  daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Endpoint::answer, this,
      // First, so that nothing of start-up goes to libmicrohttpd's own stderr logger.
      MHD_OPTION_EXTERNAL_LOGGER, &Endpoint::log_message, this,  //
      MHD_OPTION_LISTEN_SOCKET, given.get(),                     //
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(kConnectionTimeout.count()),
      MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,               //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kConnectionsPerClient,  //
      MHD_OPTION_END);
  std::lock_guard lock(log_mutex_);
  starting_ = false;
  if (!daemon_) {
    std::string cause =
        startup_messages_.empty() ? "the http server did not start" : startup_messages_.front();
    throw Error("listen " + listen, 0, cause);
  }
  given.release();
  startup_messages_.clear();
}

MHD_Result MetricsServer::Endpoint::answer(void* self, MHD_Connection* connection, const char* url,
                                           const char* method, const char*, const char*, size_t*,
                                           void**) {
  // A C callback: nothing may throw through it. Failing to answer closes the connection.
  try {
    const char* accept_encoding =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    Reply reply = static_cast<Endpoint*>(self)->pages_.answer(url ? url : "", method ? method : "",
                                                              accept_encoding);
    // The body goes to libmicrohttpd as it is, freed when the response is.
    auto* body = new std::string(std::move(reply.body));
    MHD_Response* response = MHD_create_response_from_buffer_with_free_callback_cls(
        body->size(), body->data(), [](void* owned) { delete static_cast<std::string*>(owned); },
        body);
    if (!response) {
      delete body;
      return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type);
    for (const auto& [name, value] : reply.headers)
      MHD_add_response_header(response, name, value.c_str());
    const MHD_Result queued = MHD_queue_response(connection, reply.status, response);
    MHD_destroy_response(response);
    return queued;
  } catch (...) {
    return MHD_NO;
  }
}

void MetricsServer::Endpoint::log_message(void* self, const char* format, va_list args) {
  auto* endpoint = static_cast<Endpoint*>(self);
  try {
    std::string line = one_line(format, args);
    std::lock_guard lock(endpoint->log_mutex_);
    if (endpoint->starting_) {
      endpoint->startup_messages_.push_back(std::move(line));
      return;
    }
    if (!endpoint->log_) return;
    const auto now = std::chrono::steady_clock::now();
    if (endpoint->last_log_ != std::chrono::steady_clock::time_point{} &&
        now - endpoint->last_log_ < kLogInterval)
      return;
    endpoint->last_log_ = now;
    endpoint->log_("http: " + line);
  } catch (...) {
    // A message lost beats an exception through C.
  }
}

MetricsServer::MetricsServer(const std::string& listen,
                             std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                             EndpointOptions options)
    : endpoint_(std::make_unique<Endpoint>(std::move(collectables), std::move(options))) {
  endpoint_->start(listen);
}

MetricsServer::~MetricsServer() = default;

std::vector<int> MetricsServer::ports() const { return {endpoint_->port()}; }

}  // namespace psnic
