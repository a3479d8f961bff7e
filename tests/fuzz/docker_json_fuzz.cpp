// What the Docker daemon answers: GET /containers/{id}/json (parse_container_json),
// GET /containers/json (parse_running_json), an error body (daemon_message), the Api-Version
// header (choose_api_version), and any of it made fit for an error line (printable). A malformed
// answer is an Error(EBADMSG), never another exception; what parses holds only valid ids.
#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "fuzz_check.h"
#include "resolver/cgroup.h"
#include "runtime/docker.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  try {
    const psnic::ContainerInfo info = psnic::parse_container_json(text);
    PSNIC_FUZZ_CHECK(psnic::is_full_container_id(info.id));
    PSNIC_FUZZ_CHECK(info.pid >= 0);
    PSNIC_FUZZ_CHECK(info.network_mode != "default");
    PSNIC_FUZZ_CHECK(info.host_network == (info.network_mode == "host"));
  } catch (const psnic::Error& e) {
    PSNIC_FUZZ_CHECK(e.errnum() == EBADMSG);
  }

  try {
    for (const std::string& id : psnic::parse_running_json(text))
      PSNIC_FUZZ_CHECK(psnic::is_full_container_id(id));
  } catch (const psnic::Error& e) {
    PSNIC_FUZZ_CHECK(e.errnum() == EBADMSG);
  }

  (void)psnic::daemon_message(std::string(text));

  const std::string version = psnic::choose_api_version(text);
  if (!version.empty()) {
    // Never above what psnic speaks, and itself a version it would choose again.
    PSNIC_FUZZ_CHECK(psnic::choose_api_version(version) == version);
    PSNIC_FUZZ_CHECK(psnic::choose_api_version(std::string(psnic::kDockerApiNewest)) ==
                     psnic::kDockerApiNewest);
  }

  const std::string shown = psnic::printable(text);
  PSNIC_FUZZ_CHECK(shown.size() <= 200 + 3);
  for (char c : shown) {
    const auto u = static_cast<unsigned char>(c);
    PSNIC_FUZZ_CHECK(u >= 0x20 && u != 0x7f);
  }
  // The cut at 200 bytes falls between characters.
  if (psnic::fuzz::is_utf8(text)) PSNIC_FUZZ_CHECK(psnic::fuzz::is_utf8(shown));
  return 0;
}
