// The HTTP endpoint: /metrics for Prometheus, a landing page at /, and /healthz, served by
// libmicrohttpd from one event-driven thread.
#pragma once

#include <prometheus/collectable.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/views.h"

namespace psnic {

class SelfMetrics;
struct WebSecurity;

// Where /metrics is served unless told otherwise. 9867 is in the 9100-9999 range Prometheus's
// "Default port allocations" list keeps for exporters, in a stretch that list marked free, and no
// exporter we found defaults to it (node_exporter 9100, cAdvisor 8080, ebpf_exporter 9435). Tools
// known to use it are desktop ones on localhost (Zed's `zed serve`, PinchTab); the agent's
// listen flag moves it. IPv4 only by default: "[::]:9867" serves both families, but fails on a
// host booted with ipv6.disable=1.
inline constexpr std::string_view kDefaultListen = "0.0.0.0:9867";

// A listen address: "ADDR:PORT" with a numeric IPv4 address, "[IPv6]:PORT", or ":PORT" for all
// IPv4 addresses. PORT is 1-65535, or 0 for a free port the kernel picks. "[::]:PORT" listens on
// both families (IPv4 clients appear as ::ffff:a.b.c.d).
struct ListenAddress {
  std::string host;  // numeric, without brackets
  uint16_t port = 0;
  bool ipv6 = false;
};
// Throws Error("listen <text>", EINVAL, <what is wrong>).
ListenAddress parse_listen(std::string_view text);

// A connection that has sent nothing for this long is closed: a request that never ends, or an
// idle keep-alive connection.
inline constexpr std::chrono::seconds kConnectionTimeout{10};
// Connections one client address may hold at once; more are closed as they are accepted. A
// scraper needs one.
inline constexpr unsigned kConnectionsPerClient = 64;
// Connections held at once, all clients together: beyond it the server accepts none until one
// closes. Each costs a socket and up to 32 KiB of buffer, never a thread.
inline constexpr unsigned kMaxConnections = 2048;
// How long the agent's loop may go without turning before /healthz answers 503.
inline constexpr std::chrono::seconds kDefaultHealthTimeout{30};

// What the endpoint shows besides /metrics, read from the agent's views.
struct EndpointOptions {
  using Clock = LoopHeartbeat::Clock;

  // The landing page's attach mode ("tcx" or "tc"); empty when unknown.
  std::string attach_mode;
  // The landing page's count of counted interfaces (psnic_attached_interfaces, every mode).
  // May be null.
  std::shared_ptr<const SelfMetrics> self;
  // The agent loop's heartbeat: /healthz answers 503 once it is older than `health_timeout`.
  // Null: /healthz always answers 200.
  std::shared_ptr<const LoopHeartbeat> heartbeat;
  std::chrono::milliseconds health_timeout = kDefaultHealthTimeout;
  // The clock /healthz reads (tests move it). Called from the server's thread.
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  // Where libmicrohttpd's run-time messages go (a client that broke off, a limit reached): one
  // line each with control bytes escaped, at most one line per 10 s. Null drops them. Start-up
  // failures are thrown, not logged.
  std::function<void(const std::string&)> log;
  // TLS and basic auth (--web-config-file, load_web_config). Null: plain HTTP, no auth.
  std::shared_ptr<const WebSecurity> web;
};

// Serves, on one address, from one thread in epoll mode:
//   GET/HEAD /metrics  the collectables in Prometheus's text format (version 0.0.4), gzipped
//                      when the client accepts gzip
//   GET/HEAD /         a small HTML page: version, attach mode, counted interfaces, links
//   GET/HEAD /healthz  200 "ok" while the agent's loop turns, 503 and the reason when it stalled
// Anything else is 404; another method on those paths 405. Idle and slow clients cost memory,
// never a thread: a scrape is not kept waiting by them. Nothing is read from disk.
// With a web config: TLS, client certificates as its client_auth_type says (a connection
// whose certificate is missing or fails verification gets no answer), and basic auth on every
// path but /healthz (401 with WWW-Authenticate: Basic realm="psnic").
class MetricsServer {
 public:
  // Listens before returning. Throws Error with one line, "listen 127.0.0.1:80: address already
  // in use", when the address is malformed or cannot be bound; the HTTP library's own messages
  // are never printed.
  MetricsServer(const std::string& listen,
                std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                EndpointOptions options = {});
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  ~MetricsServer();

  // The bound port (one): the one asked for, or the kernel's pick for port 0.
  std::vector<int> ports() const;

  // Serves with `web` (null: plain HTTP, no auth) from now on, on the same listening socket:
  // a new daemon starts with it, the old one stops accepting and finishes what its connections
  // are doing (at most kConnectionTimeout), then stops. New users and passwords apply at once to
  // every connection, old ones included. Throws Error when the new daemon cannot start: the
  // old one then serves on unchanged.
  void reload(std::shared_ptr<const WebSecurity> web);

  class Endpoint;  // the server's state, shared with its thread

 private:
  std::unique_ptr<Endpoint> endpoint_;
};

}  // namespace psnic
