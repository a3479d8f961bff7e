// --web-config-file end to end: the real psnic-agent serving TLS with basic auth to a real
// Prometheus (Debian's), SIGHUP swapping its certificate while Prometheus keeps scraping, a bad
// reload logged and survived, and a bad file refused at start in one line with status 1.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/e2e/e2e_support.h"
#include "tests/e2e/prometheus.h"
#include "tests/support/support.h"
#include "tests/support/tls.h"

namespace psnic::test::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPassword = "psnictest-scrape";

std::string web_config(const std::string& cert) {
  return "tls_server_config:\n  cert_file: " + cert + ".crt\n  key_file: " + cert +
         ".key\n  min_version: TLS12\nbasic_auth_users:\n  prometheus: " + bcrypt(kPassword) + "\n";
}

// Polls `expr` until it has a series with value `want`, up to `timeout`.
bool eventually(const PrometheusApi& prometheus, const std::string& expr, double want,
                std::chrono::seconds timeout) {
  for (auto end = Clock::now() + timeout; Clock::now() < end; std::this_thread::sleep_for(500ms)) {
    const nlohmann::json result = prometheus.query(expr);
    for (const auto& series : result)
      if (std::stod(series.at("value")[1].get<std::string>()) == want) return true;
  }
  return false;
}

class WebConfigE2e : public E2eTest {};

TEST_F(WebConfigE2e, PrometheusScrapesOverTlsWithBasicAuthAcrossAReload) {
  TlsFiles files("e2e");
  const std::string config = files.write("web.yml", web_config("server"));
  Agent agent({"--no-pin", "--web-config-file", config});
  ASSERT_TRUE(agent.serving()) << agent.err();

  PrometheusServer server(
      "  - job_name: psnictest\n"
      "    scheme: https\n"
      "    tls_config:\n"
      "      ca_file: " +
      files.path("ca.crt") +
      "\n"
      "    basic_auth:\n"
      "      username: prometheus\n"
      "      password: " +
      std::string(kPassword) +
      "\n"
      "    static_configs:\n"
      "      - targets: [\"127.0.0.1:" +
      std::to_string(agent.port()) + "\"]\n");
  const PrometheusApi prometheus = server.api();
  for (auto end = Clock::now() + 60s; Clock::now() < end && !prometheus.ready();)
    std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(prometheus.ready()) << server.log();
  ASSERT_TRUE(eventually(prometheus, "up{job=\"psnictest\"}", 1, 60s)) << server.log();
  EXPECT_TRUE(eventually(prometheus, "count(psnic_build_info{job=\"psnictest\"})", 1, 10s));

  // Without the password, or over plain HTTP, nothing.
  HttpsRequest anonymous;
  anonymous.url = "https://127.0.0.1:" + std::to_string(agent.port()) + "/metrics";
  anonymous.ca_file = files.path("ca.crt");
  EXPECT_EQ(https_get(anonymous).status, 401);
  HttpsRequest scraper = anonymous;
  scraper.user = "prometheus";
  scraper.password = kPassword;
  EXPECT_EQ(https_get(scraper).server_serial, TlsFiles::kServerSerial);

  // SIGHUP with a new certificate: the agent says so, clients see it, Prometheus stays up.
  files.write("web.yml", web_config("server2"));
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(agent.wait_for_log("web config reloaded", {{"file", config}})) << agent.err();
  const HttpsResponse after = https_get(scraper);
  EXPECT_EQ(after.status, 200) << after.error;
  EXPECT_EQ(after.server_serial, TlsFiles::kServer2Serial);

  // SIGHUP with a broken file: one error line, and the agent serves on as before.
  files.write("web.yml", "tls_server_config:\n  cert_file: server2.crt\n  key_file: server.key\n");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  const auto refused = agent.wait_for_log_where([&](const LogRecord& line) {
    return line.at("level") == "error" && line.at("msg").rfind("web config " + config, 0) == 0;
  });
  ASSERT_TRUE(refused) << agent.err();
  EXPECT_EQ(refused->at("msg"), "web config " + config +
                                    ": tls_server_config.key_file: " + files.path("server.key") +
                                    ": not the key of " + files.path("server2.crt") +
                                    "'s certificate (serving with the previous one)");
  EXPECT_EQ(https_get(scraper).server_serial, TlsFiles::kServer2Serial);
  // Prometheus's own scrapes go on (one a second), each up.
  const auto scrapes = [&] {
    return prometheus.value("sum_over_time(up{job=\"psnictest\"}[10m])").value_or(0);
  };
  const double before = scrapes();
  std::this_thread::sleep_for(3s);
  EXPECT_GT(scrapes(), before);
  EXPECT_TRUE(eventually(prometheus, "up{job=\"psnictest\"}", 1, 5s));
  EXPECT_EQ(agent.interrupt(), 0);
}

TEST_F(WebConfigE2e, ABadFileIsOneLineAndStatusOneWithNothingAttached) {
  TlsFiles files("bad");
  const std::string mismatched = files.write(
      "mismatched.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server2.key\n");
  const std::string unknown = files.write("unknown.yml", "tls_server_config:\n  certfile: a\n");
  const std::string missing = files.path("missing.yml");
  const std::pair<std::string, std::string> cases[] = {
      {missing, "no such file or directory"},
      {unknown, "tls_server_config.certfile: unknown key"},
      {mismatched, "tls_server_config.key_file: " + files.path("server2.key") +
                       ": not the key of " + files.path("server.crt") + "'s certificate"},
  };
  for (const auto& [file, cause] : cases) {
    Agent agent({"--no-pin", "--web-config-file", file});
    EXPECT_EQ(agent.wait_exit(10s), 1) << file;
    EXPECT_EQ(agent.err(), "psnic-agent: web config " + file + ": " + cause + "\n");
    EXPECT_EQ(agent.out(), "");
  }
}

}  // namespace
}  // namespace psnic::test::e2e
