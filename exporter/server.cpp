#include "exporter/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "exporter/basic_auth.h"
#include "exporter/pages.h"
#include "exporter/web_config.h"

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

namespace {

// The GnuTLS priority string for a version range: GnuTLS's defaults otherwise.
std::string tls_priorities(const TlsServerConfig& tls) {
  std::string priorities = "NORMAL:-VERS-ALL";
  if (tls.max_version >= TlsVersion::kTls13) priorities += ":+VERS-TLS1.3";
  if (tls.min_version <= TlsVersion::kTls12) priorities += ":+VERS-TLS1.2";
  return priorities;
}

// The basic auth users of `web`; none (every request allowed) without a web config.
std::shared_ptr<BasicAuth> users_of(const std::shared_ptr<const WebSecurity>& web) {
  return std::make_shared<BasicAuth>(web ? web->config.basic_auth_users
                                         : std::map<std::string, std::string>{});
}

// Whether a TLS connection's client certificate satisfies `policy`. Checked on each request
// before anything is answered: libmicrohttpd has the handshake only ask for a certificate, so
// a missing or untrusted one is refused here, with the connection closed unanswered.
bool client_certificate_accepted(MHD_Connection* connection, ClientAuth policy) {
  if (policy == ClientAuth::kNoClientCert || policy == ClientAuth::kRequestClientCert) return true;
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (info == nullptr || info->tls_session == nullptr) return false;
  auto session = static_cast<gnutls_session_t>(info->tls_session);
  unsigned count = 0;
  const gnutls_datum_t* chain = gnutls_certificate_get_peers(session, &count);
  if (chain == nullptr || count == 0) return policy == ClientAuth::kVerifyClientCertIfGiven;
  if (policy == ClientAuth::kRequireAnyClientCert) return true;
  // Against client_ca_file only (the daemon's trust list), for client authentication, as Go's
  // crypto/tls verifies one: a certificate whose extended key usage excludes it is refused.
  gnutls_typed_vdata_st purpose{};
  purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
  purpose.data = reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT));
  unsigned status = 0;
  return gnutls_certificate_verify_peers(session, &purpose, 1, &status) == 0 && status == 0;
}

}  // namespace

// Everything the server's threads touch. Requests are answered on each libmicrohttpd daemon's
// one thread; while a reload retires the old daemon, two answer at once: the pages and the
// collectables are thread-safe, basic auth locks.
class MetricsServer::Endpoint {
 public:
  Endpoint(std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
           EndpointOptions options)
      : log_(options.log), web_(options.web), pages_(std::move(collectables), std::move(options)) {}
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint() {
    // Retiring daemons first: their threads answer with this endpoint's pages and users.
    retiring_.clear();
    current_.reset();
  }

  void start(const std::string& listen);
  void reload(std::shared_ptr<const WebSecurity> web);
  uint16_t port() const { return port_; }

 private:
  // One libmicrohttpd daemon on the listening socket, with the web config it was started with.
  struct Daemon {
    Endpoint* endpoint = nullptr;
    std::shared_ptr<const WebSecurity> web;
    MHD_Daemon* mhd = nullptr;
    ~Daemon() {
      if (mhd) MHD_stop_daemon(mhd);  // joins the thread, closes every socket
    }
  };
  // A quiesced daemon finishing its connections on a thread of its own.
  struct Retiring {
    std::shared_ptr<std::atomic<bool>> done;
    std::jthread thread;
  };

  std::unique_ptr<Daemon> start_daemon(std::shared_ptr<const WebSecurity> web);
  void retire(std::unique_ptr<Daemon> daemon);
  std::shared_ptr<BasicAuth> auth() const {
    std::lock_guard lock(auth_mutex_);
    return auth_;
  }

  static MHD_Result answer(void* daemon, MHD_Connection* connection, const char* url,
                           const char* method, const char* version, const char* upload_data,
                           size_t* upload_data_size, void** request);
  static void connection_started(void* daemon, MHD_Connection* connection, void** context,
                                 MHD_ConnectionNotificationCode code);
  static void log_message(void* self, const char* format, va_list args);

  std::function<void(const std::string&)> log_;  // EndpointOptions::log
  std::shared_ptr<const WebSecurity> web_;       // EndpointOptions::web, for start()
  EndpointPages pages_;
  std::string listen_;
  ListenAddress address_;
  Fd listener_;  // psnic's; each daemon gets a duplicate
  uint16_t port_ = 0;

  mutable std::mutex auth_mutex_;
  std::shared_ptr<BasicAuth> auth_;  // the current users, whichever daemon asks

  std::mutex log_mutex_;
  bool starting_ = false;  // messages are kept for the start-up error
  std::vector<std::string> startup_messages_;
  std::chrono::steady_clock::time_point last_log_{};

  std::unique_ptr<Daemon> current_;
  std::vector<Retiring> retiring_;
};

void MetricsServer::Endpoint::start(const std::string& listen) {
  listen_ = listen;
  address_ = parse_listen(listen);
  listener_ = open_listener(address_, listen);
  port_ = bound_port(listener_.get());
  // Before the daemon: its first request reads the users.
  auth_ = users_of(web_);
  current_ = start_daemon(web_);
}

std::unique_ptr<MetricsServer::Endpoint::Daemon> MetricsServer::Endpoint::start_daemon(
    std::shared_ptr<const WebSecurity> web) {
  auto daemon = std::make_unique<Daemon>();
  daemon->endpoint = this;
  daemon->web = std::move(web);
  const TlsServerConfig* tls =
      daemon->web && daemon->web->config.tls ? &*daemon->web->config.tls : nullptr;

  // libmicrohttpd closes the socket it is given when it stops, and on some of its start-up
  // failures but not all: it gets a duplicate, and psnic closes its own either way. A reload
  // gives the next daemon another one of the same socket: nothing is unbound meanwhile.
  Fd given(fcntl(listener_.get(), F_DUPFD_CLOEXEC, 0));
  if (!given.valid()) throw system_error("listen " + listen_, errno);

  // ITC: a reload quiesces the old daemon (MHD_quiesce_daemon needs it).
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
  // The socket is bound already (IPV6_V6ONLY set as these flags say); they tell libmicrohttpd
  // its family.
  if (address_.ipv6) flags |= dual_stack(address_) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  if (tls) flags |= MHD_USE_TLS;
  const std::string priorities = tls ? tls_priorities(*tls) : "";
  // The TLS options, when there is TLS; MHD_OPTION_ARRAY ends at the END.
  std::vector<MHD_OptionItem> chosen;
  auto text_option = [&](MHD_OPTION option, const std::string& text) {
    chosen.push_back({option, 0, const_cast<char*>(text.c_str())});
  };
  if (tls) {
    text_option(MHD_OPTION_HTTPS_MEM_CERT, daemon->web->cert_pem);
    text_option(MHD_OPTION_HTTPS_MEM_KEY, daemon->web->key_pem);
    text_option(MHD_OPTION_HTTPS_PRIORITIES, priorities);
    // The client CA list, which also makes every handshake ask for a certificate.
    if (!daemon->web->client_ca_pem.empty())
      text_option(MHD_OPTION_HTTPS_MEM_TRUST, daemon->web->client_ca_pem);
  }
  chosen.push_back({MHD_OPTION_END, 0, nullptr});
  {
    std::lock_guard lock(log_mutex_);
    starting_ = true;
    startup_messages_.clear();
  }
  daemon->mhd = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Endpoint::answer, daemon.get(),
      // First, so that nothing of start-up goes to libmicrohttpd's own stderr logger.
      MHD_OPTION_EXTERNAL_LOGGER, &Endpoint::log_message, this,  //
      MHD_OPTION_LISTEN_SOCKET, given.get(),                     //
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(kConnectionTimeout.count()),
      MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,                               //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kConnectionsPerClient,                  //
      MHD_OPTION_NOTIFY_CONNECTION, &Endpoint::connection_started, daemon.get(),  //
      MHD_OPTION_ARRAY, chosen.data(),                                            //
      MHD_OPTION_END);
  std::lock_guard lock(log_mutex_);
  starting_ = false;
  if (!daemon->mhd) {
    std::string cause =
        startup_messages_.empty() ? "the http server did not start" : startup_messages_.front();
    throw Error("listen " + listen_, 0, cause);
  }
  given.release();
  startup_messages_.clear();
  return daemon;
}

void MetricsServer::Endpoint::reload(std::shared_ptr<const WebSecurity> web) {
  std::unique_ptr<Daemon> fresh = start_daemon(web);
  {
    std::lock_guard lock(auth_mutex_);
    auth_ = users_of(web);
  }
  retire(std::exchange(current_, std::move(fresh)));
}

void MetricsServer::Endpoint::retire(std::unique_ptr<Daemon> daemon) {
  std::erase_if(retiring_, [](const Retiring& retiring) { return retiring.done->load(); });
  // The old daemon accepts no more; its duplicate of the listening socket comes back to be
  // closed, while the new daemon's keeps listening.
  const MHD_socket quiesced = MHD_quiesce_daemon(daemon->mhd);
  if (quiesced == MHD_INVALID_SOCKET) return;  // cannot drain: stopped at once by ~Daemon
  close(quiesced);
  auto done = std::make_shared<std::atomic<bool>>(false);
  // Until its connections are done (a scrape being answered, a keep-alive connection going
  // idle), at most a connection timeout and a second; the server's destruction cuts it short.
  std::jthread thread([daemon = std::move(daemon), done](std::stop_token stop) mutable {
    const auto deadline =
        std::chrono::steady_clock::now() + kConnectionTimeout + std::chrono::seconds(1);
    while (!stop.stop_requested() && std::chrono::steady_clock::now() < deadline) {
      const MHD_DaemonInfo* info =
          MHD_get_daemon_info(daemon->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
      if (info == nullptr || info->num_connections == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    daemon.reset();
    done->store(true);
  });
  retiring_.push_back({std::move(done), std::move(thread)});
}

void MetricsServer::Endpoint::connection_started(void* cls, MHD_Connection* connection, void**,
                                                 MHD_ConnectionNotificationCode code) {
  const auto* daemon = static_cast<const Daemon*>(cls);
  if (code != MHD_CONNECTION_NOTIFY_STARTED || !daemon->web || !daemon->web->config.tls) return;
  const ClientAuth policy = daemon->web->config.tls->client_auth;
  if (policy == ClientAuth::kNoClientCert) return;
  // Before the handshake: libmicrohttpd asks for a certificate only with a client CA list, and
  // never requires one. The require policies make the handshake itself fail without one.
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (info == nullptr || info->tls_session == nullptr) return;  // refused at its request
  const bool required = policy == ClientAuth::kRequireAnyClientCert ||
                        policy == ClientAuth::kRequireAndVerifyClientCert;
  gnutls_certificate_server_set_request(static_cast<gnutls_session_t>(info->tls_session),
                                        required ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
}

MHD_Result MetricsServer::Endpoint::answer(void* cls, MHD_Connection* connection, const char* url,
                                           const char* method, const char*, const char*, size_t*,
                                           void**) {
  // A C callback: nothing may throw through it. Failing to answer closes the connection.
  try {
    const auto* daemon = static_cast<const Daemon*>(cls);
    Endpoint& endpoint = *daemon->endpoint;
    if (daemon->web && daemon->web->config.tls &&
        !client_certificate_accepted(connection, daemon->web->config.tls->client_auth))
      return MHD_NO;
    const std::string_view path = url ? url : "";
    Reply reply;
    // /healthz is open, so that a liveness probe (kubelet's) needs no password; it tells only
    // whether the agent's loop turns.
    std::shared_ptr<BasicAuth> auth = endpoint.auth();
    bool authorized = !auth->enabled() || path == "/healthz";
    if (!authorized) {
      char* password = nullptr;
      char* user = MHD_basic_auth_get_username_password(connection, &password);
      authorized = user != nullptr && password != nullptr && auth->check(user, password);
      MHD_free(user);
      MHD_free(password);
    }
    if (authorized) {
      const char* accept_encoding =
          MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
      reply = endpoint.pages_.answer(path, method ? method : "", accept_encoding);
    } else {
      reply.status = MHD_HTTP_UNAUTHORIZED;
      reply.body = "unauthorized\n";
      reply.headers.emplace_back(MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"psnic\"");
    }
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

void MetricsServer::reload(std::shared_ptr<const WebSecurity> web) {
  endpoint_->reload(std::move(web));
}

std::vector<int> MetricsServer::ports() const { return {endpoint_->port()}; }

}  // namespace psnic
