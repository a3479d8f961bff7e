// Text the kernel and kubelet hand psnic about a process: /proc/PID/cgroup (parse_cgroup, any
// runtime's layout, nested containers, hostile paths), the state letter of /proc/PID/stat
// (process_state) and kubelet's pod log directory names (parse_pod_log_dir). Whatever the input,
// an id or pod uid that comes out is a strictly valid one, found in the input, never a guess.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "resolver/cgroup.h"
#include "resolver/namespace.h"
#include "runtime/pods.h"

namespace {

bool is_lower_hex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// 32 hex digits (a static pod's uid) or a dashed 8-4-4-4-12 UUID.
bool is_pod_uid(std::string_view uid) {
  if (uid.size() == 32) return is_lower_hex(uid);
  if (uid.size() != 36) return false;
  for (size_t i = 0; i < uid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? uid[i] != '-' : !is_lower_hex(uid.substr(i, 1))) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const psnic::ContainerIdentity identity = psnic::parse_cgroup(text);
  PSNIC_FUZZ_CHECK(identity.runtime.empty() || identity.runtime == "docker" ||
                   identity.runtime == "containerd" || identity.runtime == "cri-o" ||
                   identity.runtime == "podman");
  PSNIC_FUZZ_CHECK(identity.id.empty() || psnic::is_full_container_id(identity.id));
  PSNIC_FUZZ_CHECK(identity.id.empty() || text.find(identity.id) != std::string_view::npos);
  PSNIC_FUZZ_CHECK(identity.pod_uid.empty() || is_pod_uid(identity.pod_uid));

  const char state = psnic::process_state(text);
  PSNIC_FUZZ_CHECK(state == 0 || text.find(std::string(") ") + state) != std::string_view::npos);

  // A directory name is split at its underscores: the uid is what follows the last one.
  const size_t underscore = text.rfind('_');
  const std::string_view uid =
      underscore == std::string_view::npos ? std::string_view() : text.substr(underscore + 1);
  if (const auto pod = psnic::parse_pod_log_dir(text, uid)) {
    PSNIC_FUZZ_CHECK(!pod->namespace_name.empty() && !pod->name.empty());
    PSNIC_FUZZ_CHECK(pod->namespace_name.find('_') == std::string::npos);
    PSNIC_FUZZ_CHECK(pod->name.find('_') == std::string::npos);
    PSNIC_FUZZ_CHECK(pod->namespace_name + "_" + pod->name + "_" + std::string(uid) == text);
  }
  return 0;
}
