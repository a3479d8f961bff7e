#include "tests/e2e/prometheus.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <thread>

namespace psnic::test::e2e {
namespace {

size_t append_body(char* data, size_t size, size_t count, void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

std::string url_encoded(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

}  // namespace

HttpAnswer http_get(const std::string& url) {
  HttpAnswer answer;
  CURL* curl = curl_easy_init();
  if (!curl) return answer;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  if (curl_easy_perform(curl) == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_easy_cleanup(curl);
  return answer;
}

bool PrometheusApi::ready() const {
  return http_get("http://127.0.0.1:" + std::to_string(port_) + "/-/ready").status == 200;
}

nlohmann::json PrometheusApi::get(const std::string& path_and_query) const {
  HttpAnswer answer = http_get("http://127.0.0.1:" + std::to_string(port_) + path_and_query);
  nlohmann::json json = nlohmann::json::parse(answer.body, nullptr, false);
  if (answer.status != 200 || json.is_discarded() || json.value("status", "") != "success") {
    ADD_FAILURE() << "GET " << path_and_query << ": " << answer.status << " " << answer.body;
    return nlohmann::json::object();
  }
  return json.at("data");
}

nlohmann::json PrometheusApi::query(const std::string& expr) const {
  nlohmann::json data = get("/api/v1/query?query=" + url_encoded(expr));
  return data.contains("result") ? data.at("result") : nlohmann::json::array();
}

std::optional<double> PrometheusApi::value(const std::string& expr) const {
  nlohmann::json result = query(expr);
  if (!result.is_array() || result.empty()) return std::nullopt;
  if (result.size() > 1) ADD_FAILURE() << expr << " selects " << result.size() << " series";
  return std::stod(result[0].at("value")[1].get<std::string>());
}

nlohmann::json PrometheusApi::rule_groups() const {
  nlohmann::json data = get("/api/v1/rules");
  return data.contains("groups") ? data.at("groups") : nlohmann::json::array();
}

}  // namespace psnic::test::e2e

namespace psnic::test::e2e {

PrometheusServer::PrometheusServer(const std::string& scrape_configs)
    : port_(free_port()),
      dir_("/tmp/psnictest" + std::to_string(getpid()) + "-prometheus-" + std::to_string(port_)) {
  must("rm -rf " + dir_ + " && mkdir -p " + dir_);
  std::ofstream(dir_ + "/prometheus.yml") << "global:\n  scrape_interval: 1s\n"
                                          << "  scrape_timeout: 1s\n"
                                          << "scrape_configs:\n"
                                          << scrape_configs;
  const std::string config = "--config.file=" + dir_ + "/prometheus.yml";
  const std::string storage = "--storage.tsdb.path=" + dir_ + "/data";
  const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
  const std::string log = dir_ + "/log";
  pid_ = fork();
  if (pid_ == 0) {
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    dup2(out, 1);
    dup2(out, 2);
    execl(kPrometheusBinary, kPrometheusBinary, config.c_str(), storage.c_str(), listen.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
}

PrometheusServer::~PrometheusServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  run("rm -rf " + dir_);
}

std::string PrometheusServer::log() const {
  std::ifstream file(dir_ + "/log");
  return std::string(std::istreambuf_iterator<char>(file), {});
}

}  // namespace psnic::test::e2e
