#pragma once

// What the tests of psnic's shipped artifacts share: the runtime spec (deploy/runtime.json, the
// one source of truth for the capabilities and mounts the agent needs), rendered as the
// `docker run` options README documents, and the images the deploy fixture builds.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/e2e/e2e_support.h"
#include "tests/e2e/prometheus.h"

namespace psnic::test::deploy {

// The project version (CMake's), which the image is tagged with.
std::string version();
// psnic-agent:VERSION, built by the deploy.image fixture (docker/build-image.sh --offline).
std::string agent_image();
// The source tree, where docker/ and deploy/ are.
std::string source_path(const std::string& relative);

struct Mount {
  std::string path;
  bool read_only = false;
  bool host_propagation = false;
  bool kubernetes = false;
};

struct RuntimeSpec {
  std::vector<std::string> capabilities;  // "NET_ADMIN", no CAP_ prefix
  bool host_pid = false;
  bool host_network = false;
  bool read_only_root = false;
  int port = 0;
  std::vector<Mount> mounts;
};

RuntimeSpec runtime_spec();

// The options of README's `docker run` line, one word each, rendered from `spec`:
// --pid host, --network host, --read-only, --cap-drop ALL, --cap-add X..., -v SRC:DST[:ro,rslave].
std::vector<std::string> docker_run_options(const RuntimeSpec& spec);

// Scrapes 127.0.0.1:port until each host veth of `named` has a receive series labelled with its
// container's name, for up to 20 s: the last exposition read, and whether they all had.
struct NamedScrape {
  bool named = false;
  std::string metrics;
};
NamedScrape scrape_until_named(uint16_t port,
                               const std::vector<std::pair<std::string, std::string>>& named);

// Joins words with spaces (none of them needs quoting: they are paths and names).
std::string join(const std::vector<std::string>& words);

}  // namespace psnic::test::deploy

namespace psnic::test::deploy {

// The compose stack's Prometheus is asked through the e2e tier's client.
using e2e::http_get;
using e2e::HttpAnswer;
using e2e::PrometheusApi;

}  // namespace psnic::test::deploy
