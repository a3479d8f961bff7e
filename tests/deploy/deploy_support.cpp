#include "tests/deploy/deploy_support.h"

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
