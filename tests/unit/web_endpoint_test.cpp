// The endpoint with a web config: TLS, client certificates, basic auth, and a reload that swaps
// certificate and users under a scrape loop. Certificates are made with openssl at test time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "exporter/basic_auth.h"
#include "exporter/metrics.h"
#include "exporter/server.h"
#include "exporter/web_config.h"
#include "tests/support/loopback_client.h"
#include "tests/support/tls.h"

namespace psnic {
namespace {

using test::https_get;
using test::HttpsRequest;
using test::HttpsResponse;
using test::TlsFiles;

// Made once: openssl takes a while.
class WebEndpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { files_ = new TlsFiles("endpoint"); }
  static void TearDownTestSuite() {
    delete files_;
    files_ = nullptr;
  }

  // Serves /metrics (self metrics) on a free loopback port with `yaml` as the web config.
  void serve(const std::string& yaml) {
    EndpointOptions options;
    options.self = self_;
    options.web = config(yaml);
    server_ = std::make_unique<MetricsServer>(
        "127.0.0.1:0", std::vector<std::shared_ptr<prometheus::Collectable>>{self_->registry()},
        std::move(options));
    port_ = server_->ports().at(0);
  }
  std::shared_ptr<const WebSecurity> config(const std::string& yaml) {
    return load_web_config(files_->write("web-" + std::to_string(++configs_) + ".yml", yaml));
  }
  HttpsRequest request(const std::string& path = "/metrics") const {
    HttpsRequest request;
    request.url = "https://127.0.0.1:" + std::to_string(port_) + path;
    request.ca_file = files_->path("ca.crt");
    return request;
  }
  HttpsRequest with_client(const std::string& name) const {
    HttpsRequest r = request();
    r.client_cert = files_->path(name + ".crt");
    r.client_key = files_->path(name + ".key");
    return r;
  }
  static std::string tls(const std::string& extra = "") {
    return "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra;
  }

  static TlsFiles* files_;
  int configs_ = 0;
  std::shared_ptr<SelfMetrics> self_ = std::make_shared<SelfMetrics>();
  std::unique_ptr<MetricsServer> server_;
  int port_ = 0;
};
TlsFiles* WebEndpoint::files_ = nullptr;

void expect_scraped(const HttpsResponse& response) {
  ASSERT_TRUE(response.ok) << response.error;
  EXPECT_EQ(response.status, 200);
  EXPECT_NE(response.body.find("psnic_build_info"), std::string::npos);
}

void expect_refused(const HttpsResponse& response) {
  EXPECT_FALSE(response.ok) << "status " << response.status;
  EXPECT_EQ(response.body, "");
}

TEST_F(WebEndpoint, ServesTlsWithItsCertificate) {
  serve(tls());
  const HttpsResponse response = https_get(request());
  expect_scraped(response);
  EXPECT_EQ(response.server_serial, TlsFiles::kServerSerial);
  const HttpsResponse health = https_get(request("/healthz"));
  EXPECT_TRUE(health.ok) << health.error;
  EXPECT_EQ(health.status, 200);
}

TEST_F(WebEndpoint, PlainHttpOnTheTlsPortGetsNoData) {
  serve(tls());
  const int fd = loopback::connect_to(port_, 5);
  const std::string get = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ASSERT_EQ(send(fd, get.data(), get.size(), MSG_NOSIGNAL), static_cast<ssize_t>(get.size()));
  char buffer[4096];
  std::string received;
  for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) received.append(buffer, n);
  close(fd);
  EXPECT_EQ(received.find("HTTP/1."), std::string::npos);
  EXPECT_EQ(received.find("psnic_"), std::string::npos);
  // http:// with curl as well.
  HttpsRequest plain = request();
  plain.url = "http://127.0.0.1:" + std::to_string(port_) + "/metrics";
  EXPECT_FALSE(https_get(plain).ok && https_get(plain).status == 200);
}

TEST_F(WebEndpoint, BasicAuthAcceptsTheRightPasswordOnly) {
  serve(tls("basic_auth_users:\n  prometheus: " + test::bcrypt("s3cret") + "\n"));
  HttpsRequest right = request();
  right.user = "prometheus";
  right.password = "s3cret";
  expect_scraped(https_get(right));

  HttpsRequest wrong = right;
  wrong.password = "s3cret!";
  HttpsRequest unknown = right;
  unknown.user = "grafana";
  for (const HttpsRequest& refused : {wrong, unknown, request()}) {
    const HttpsResponse response = https_get(refused);
    ASSERT_TRUE(response.ok) << response.error;
    EXPECT_EQ(response.status, 401) << refused.user << ":" << refused.password;
    EXPECT_NE(response.headers.find("WWW-Authenticate: Basic realm=\"psnic\""), std::string::npos)
        << response.headers;
    EXPECT_EQ(response.body.find("psnic_"), std::string::npos);
  }
  // Every path but /healthz, which a liveness probe reaches without a password.
  EXPECT_EQ(https_get(request("/")).status, 401);
  EXPECT_EQ(https_get(request("/nothing")).status, 401);
  EXPECT_EQ(https_get(request("/healthz")).status, 200);
}

TEST(BasicAuth, RepeatedCredentialsCostOneBcrypt) {
  BasicAuth auth({{"prometheus", test::bcrypt("s3cret")}, {"other", test::bcrypt("x")}});
  ASSERT_TRUE(auth.enabled());
  for (int scrape = 0; scrape < 5; ++scrape) EXPECT_TRUE(auth.check("prometheus", "s3cret"));
  EXPECT_EQ(auth.bcrypt_runs(), 1u);
  // A scraper retrying a stale password: one bcrypt too.
  for (int scrape = 0; scrape < 5; ++scrape) EXPECT_FALSE(auth.check("prometheus", "old"));
  EXPECT_EQ(auth.bcrypt_runs(), 2u);
  EXPECT_TRUE(auth.check("prometheus", "s3cret"));
  EXPECT_FALSE(auth.check("prometheus", "s3cret\n"));
  EXPECT_FALSE(auth.check("other", "s3cret"));
  EXPECT_FALSE(auth.check("nobody", "s3cret"));  // costs a bcrypt, as a known user's would
  EXPECT_FALSE(auth.check("prometheus", std::string("s3cret\0x", 8)));
  EXPECT_FALSE(BasicAuth({}).enabled());
  EXPECT_TRUE(BasicAuth({}).check("anyone", "anything"));
}

// Each client_auth_type, as Go's crypto/tls means it, against a client with no certificate,
// with one the CA never signed, and with one it did. Refused: the connection closes unanswered.
TEST_F(WebEndpoint, ClientAuthTypesAcceptAndRefuseAsCryptoTls) {
  struct Row {
    const char* policy;
    bool none, stranger, signed_by_ca;  // served?
  };
  const std::string ca = "  client_ca_file: ca.crt\n";
  const Row rows[] = {
      {"NoClientCert", true, true, true},
      {"RequestClientCert", true, true, true},
      {"RequireAnyClientCert", false, true, true},
      {"VerifyClientCertIfGiven", true, false, true},
      {"RequireAndVerifyClientCert", false, false, true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.policy);
    const std::string policy = row.policy;
    const bool verifies = policy.find("Verify") != std::string::npos;
    serve(tls("  client_auth_type: " + policy + "\n" + (verifies ? ca : "")));
    for (const auto& [client, served] : {std::pair<std::string, bool>{"", row.none},
                                         {"stranger", row.stranger},
                                         {"client", row.signed_by_ca}}) {
      SCOPED_TRACE(client.empty() ? "no certificate" : client);
      const HttpsResponse response = https_get(client.empty() ? request() : with_client(client));
      if (served)
        expect_scraped(response);
      else
        expect_refused(response);
    }
  }
}

// min_version TLS13 refuses a client that speaks TLS 1.2 at most; max_version TLS12 one that
// speaks only TLS 1.3.
TEST_F(WebEndpoint, VersionBoundsRefuseClientsOutsideThem) {
  for (const bool min_tls13 : {true, false}) {
    serve(tls(min_tls13 ? "  min_version: TLS13\n" : "  max_version: TLS12\n"));
    HttpsRequest tls12 = request();
    tls12.tls12_only = true;
    HttpsRequest tls13 = request();
    tls13.tls13_only = true;
    expect_refused(https_get(min_tls13 ? tls12 : tls13));
    expect_scraped(https_get(min_tls13 ? tls13 : tls12));
  }
}

// A reload swaps certificate and users on the same port while a scraper keeps scraping with
// credentials both configs accept: no scrape fails, and the new certificate is what clients see.
TEST_F(WebEndpoint, ReloadSwapsCertificateAndUsersUnderAScrapeLoop) {
  const std::string both = test::bcrypt("both");
  serve(
      tls("basic_auth_users:\n  prometheus: " + both + "\n  leaving: " + test::bcrypt("l") + "\n"));
  HttpsRequest leaving = request();
  leaving.user = "leaving";
  leaving.password = "l";
  EXPECT_EQ(https_get(leaving).status, 200);

  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0};
  std::atomic<int> failures{0};
  std::string first_failure;
  std::thread scraper([&] {
    HttpsRequest scrape = request();
    scrape.user = "prometheus";
    scrape.password = "both";
    while (!stop) {
      const HttpsResponse response = https_get(scrape);
      if (!response.ok || response.status != 200) {
        if (failures++ == 0)
          first_failure = response.ok ? std::to_string(response.status) : response.error;
      }
      ++scrapes;
    }
  });
  while (scrapes < 5) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (const char* cert : {"server2", "server", "server2"}) {
    server_->reload(config("tls_server_config:\n  cert_file: " + std::string(cert) +
                           ".crt\n  key_file: " + cert + ".key\nbasic_auth_users:\n  prometheus: " +
                           both + "\n  arriving: " + test::bcrypt("a") + "\n"));
    const int before = scrapes;
    while (scrapes < before + 5) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  scraper.join();
  EXPECT_EQ(failures, 0) << "first failure: " << first_failure;
  EXPECT_GE(scrapes, 20);

  const HttpsResponse after = https_get(request("/healthz"));
  EXPECT_EQ(after.server_serial, TlsFiles::kServer2Serial);
  EXPECT_EQ(https_get(leaving).status, 401);
  HttpsRequest arriving = request();
  arriving.user = "arriving";
  arriving.password = "a";
  expect_scraped(https_get(arriving));
  EXPECT_EQ(server_->ports().at(0), port_);
}

// From TLS back to plain HTTP and to TLS again: the web config decides, the port stays.
TEST_F(WebEndpoint, ReloadTurnsTlsOnAndOff) {
  serve(tls());
  server_->reload(nullptr);
  HttpsRequest plain = request();
  plain.url = "http://127.0.0.1:" + std::to_string(port_) + "/metrics";
  expect_scraped(https_get(plain));
  server_->reload(config(tls()));
  expect_scraped(https_get(request()));
}

}  // namespace
}  // namespace psnic
