// What the endpoint makes of values from containers and from scrapers: label values of any
// bytes (TrafficCollector, exporter/metrics.cpp) through the text format the endpoint writes
// (write_exposition, exporter/exposition.cpp), and the scraper's Accept-Encoding header
// (accepts_gzip). The exposition stays valid UTF-8, one line per sample, and each label reads
// back as valid_utf8 of what was given: no value breaks the line or forges a label.
//
// Input: six label values, each ended by a backslash and one other byte (FuzzedDataProvider's
// strings; "\\\\" is one backslash), then the Accept-Encoding header.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "agent/views.h"
#include "base/text.h"
#include "exporter/exposition.h"
#include "exporter/metrics.h"
#include "exporter/pages.h"
#include "fuzz_check.h"

namespace {

constexpr uint32_t kIfindex = 7;

// The label values of one sample line, `name{a="...",b="..."} value`, unescaped as the text
// format says (\\, \", \n); false when the line is not of that shape.
bool read_labels(std::string_view line, std::vector<std::pair<std::string, std::string>>& labels) {
  size_t at = line.find('{');
  if (at == std::string_view::npos) return false;
  ++at;
  while (at < line.size() && line[at] != '}') {
    const size_t equals = line.find("=\"", at);
    if (equals == std::string_view::npos) return false;
    std::string name(line.substr(at, equals - at)), value;
    at = equals + 2;
    for (;; ++at) {
      if (at >= line.size()) return false;
      const char c = line[at];
      if (c == '"') break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (++at >= line.size()) return false;
      if (line[at] == 'n')
        value += '\n';
      else if (line[at] == '\\' || line[at] == '"')
        value += line[at];
      else
        return false;
    }
    labels.emplace_back(std::move(name), std::move(value));
    ++at;  // the closing quote
    if (at < line.size() && line[at] == ',') ++at;
  }
  return at < line.size() && line.substr(at) == "} 1";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  psnic::InterfaceLabels given;
  for (std::string* value : {&given.container_id, &given.container_name, &given.pod,
                             &given.namespace_name, &given.interface, &given.host_interface})
    *value = provider.ConsumeRandomLengthString();
  const std::string accept_encoding = provider.ConsumeRemainingBytesAsString();
  (void)psnic::accepts_gzip(accept_encoding);

  auto snapshot = std::make_shared<psnic::LabelSnapshot>();
  snapshot->publish(
      std::make_shared<const psnic::LabelTable>(psnic::LabelTable{{kIfindex, given}}));
  const psnic::TrafficCollector collector(
      [](uint32_t) {
        psnic_traffic traffic{};
        traffic.ingress.bytes = traffic.ingress.packets = 1;
        traffic.egress.bytes = traffic.egress.packets = 1;
        return std::optional<psnic_traffic>(traffic);
      },
      snapshot, nullptr);
  const std::string text = psnic::write_exposition(collector.Collect());
  PSNIC_FUZZ_CHECK(psnic::fuzz::is_utf8(text));

  const std::vector<std::pair<std::string, std::string>> expected = {
      {"container_id", psnic::valid_utf8(given.container_id)},
      {"container_name", psnic::valid_utf8(given.container_name)},
      {"pod", psnic::valid_utf8(given.pod)},
      {"namespace", psnic::valid_utf8(given.namespace_name)},
      {"interface", psnic::valid_utf8(given.interface)},
      {"host_interface", psnic::valid_utf8(given.host_interface)},
  };
  std::istringstream lines(text);
  int samples = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) continue;
    std::vector<std::pair<std::string, std::string>> labels;
    PSNIC_FUZZ_CHECK(read_labels(line, labels));
    PSNIC_FUZZ_CHECK(labels == expected);
    ++samples;
  }
  PSNIC_FUZZ_CHECK(samples == 4);  // receive and transmit, bytes and packets
  return 0;
}
