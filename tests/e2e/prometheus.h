// A real Prometheus for the end-to-end tiers: Debian's server run as a child process of the
// test, and a client of its HTTP API.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tests/e2e/e2e_support.h"

namespace psnic::test::e2e {

struct HttpAnswer {
  long status = 0;  // 0: no answer
  std::string body;
};

// GET `url` (loopback only), with a 10 s timeout.
HttpAnswer http_get(const std::string& url);

// A Prometheus server's HTTP API on 127.0.0.1:port.
class PrometheusApi {
 public:
  explicit PrometheusApi(uint16_t port) : port_(port) {}
  bool ready() const;
  // The instant vector of `expr` now: `data.result` of /api/v1/query. A failure (and an empty
  // array) unless the query succeeded.
  nlohmann::json query(const std::string& expr) const;
  // The value of the one series `expr` selects, nullopt when none does.
  std::optional<double> value(const std::string& expr) const;
  // `data.groups` of /api/v1/rules.
  nlohmann::json rule_groups() const;

 private:
  nlohmann::json get(const std::string& path_and_query) const;
  uint16_t port_;
};

inline constexpr const char* kPrometheusBinary = "/usr/bin/prometheus";

// /usr/bin/prometheus on a free loopback port, scraping every second what `scrape_configs` (the
// YAML list under scrape_configs:, each item indented by two spaces) says, with its files in
// /tmp/psnictest<pid>-prometheus-<port>. Stopped by its PID and its files removed on
// destruction.
class PrometheusServer {
 public:
  explicit PrometheusServer(const std::string& scrape_configs);
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;
  ~PrometheusServer();

  uint16_t port() const { return port_; }
  PrometheusApi api() const { return PrometheusApi(port_); }
  // What it wrote on stdout and stderr, for failure messages.
  std::string log() const;

 private:
  uint16_t port_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace psnic::test::e2e
