#include "tests/deploy/deploy_support.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace psnic::test::deploy {

std::string version() { return PSNIC_VERSION_STRING; }

std::string agent_image() { return "psnic-agent:" + version(); }

std::string source_path(const std::string& relative) {
  return std::string(PSNIC_SOURCE_DIR) + "/" + relative;
}

RuntimeSpec runtime_spec() {
  std::ifstream file(source_path("deploy/runtime.json"));
  nlohmann::json json = nlohmann::json::parse(file);
  RuntimeSpec spec;
  for (const auto& capability : json.at("capabilities"))
    spec.capabilities.push_back(capability.at("name").get<std::string>());
  spec.host_pid = json.at("host_pid").get<bool>();
  spec.host_network = json.at("host_network").get<bool>();
  spec.read_only_root = json.at("read_only_root_filesystem").get<bool>();
  spec.port = json.at("port").get<int>();
  for (const auto& mount : json.at("mounts")) {
    spec.mounts.push_back({mount.at("path").get<std::string>(), mount.at("read_only").get<bool>(),
                           mount.at("host_propagation").get<bool>(),
                           mount.at("kubernetes").get<bool>()});
  }
  return spec;
}

NamedScrape scrape_until_named(uint16_t port,
                               const std::vector<std::pair<std::string, std::string>>& named) {
  using namespace std::chrono_literals;
  NamedScrape result;
  for (auto deadline = e2e::Clock::now() + 20s; e2e::Clock::now() < deadline;
       std::this_thread::sleep_for(200ms)) {
    result.metrics = e2e::scrape(port);
    result.named = std::all_of(named.begin(), named.end(), [&](const auto& veth_and_name) {
      return e2e::value_of(result.metrics, "psnic_container_network_receive_bytes_total",
                           {{"host_interface", veth_and_name.first},
                            {"container_name", veth_and_name.second}})
          .has_value();
    });
    if (result.named) break;
  }
  return result;
}

std::vector<std::string> docker_run_options(const RuntimeSpec& spec) {
  std::vector<std::string> words;
  if (spec.host_pid) words.insert(words.end(), {"--pid", "host"});
  if (spec.host_network) words.insert(words.end(), {"--network", "host"});
  if (spec.read_only_root) words.push_back("--read-only");
  words.insert(words.end(), {"--cap-drop", "ALL"});
  for (const std::string& capability : spec.capabilities)
    words.insert(words.end(), {"--cap-add", capability});
  for (const Mount& mount : spec.mounts) {
    std::string flags;
    if (mount.read_only) flags = "ro";
    if (mount.host_propagation) flags += std::string(flags.empty() ? "" : ",") + "rslave";
    words.insert(words.end(),
                 {"-v", mount.path + ":" + mount.path + (flags.empty() ? "" : ":" + flags)});
  }
  return words;
}

std::string join(const std::vector<std::string>& words) {
  std::ostringstream out;
  for (size_t i = 0; i < words.size(); ++i) out << (i ? " " : "") << words[i];
  return out.str();
}

}  // namespace psnic::test::deploy

namespace psnic::test::deploy {
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

}  // namespace psnic::test::deploy
