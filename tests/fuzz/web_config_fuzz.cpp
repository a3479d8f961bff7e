// The --web-config-file parser (parse_web_config), fed any bytes: it opens no file, so what it
// returns or throws is all there is. Invariants: a refusal is an Error of one line (no newline,
// however the YAML is laid out); what parses holds only bcrypt hashes, absolute paths for a
// base directory that is absolute, both of a certificate and its key, a version range that is
// not empty, and a client CA only where the client auth type verifies against it.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "exporter/web_config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  psnic::WebConfig config;
  try {
    config = psnic::parse_web_config(yaml, "/etc/psnic");
  } catch (const psnic::Error& e) {
    const std::string_view message = e.what();
    PSNIC_FUZZ_CHECK(!message.empty());
    PSNIC_FUZZ_CHECK(message.find('\n') == std::string_view::npos);
    PSNIC_FUZZ_CHECK(psnic::fuzz::is_utf8(message));
    return 0;
  }
  for (const auto& [user, hash] : config.basic_auth_users)
    PSNIC_FUZZ_CHECK(psnic::is_bcrypt_hash(hash));
  if (config.tls) {
    const psnic::TlsServerConfig& tls = *config.tls;
    PSNIC_FUZZ_CHECK(!tls.cert_file.empty() && tls.cert_file[0] == '/');
    PSNIC_FUZZ_CHECK(!tls.key_file.empty() && tls.key_file[0] == '/');
    PSNIC_FUZZ_CHECK(tls.client_ca_file.empty() || tls.client_ca_file[0] == '/');
    PSNIC_FUZZ_CHECK(tls.min_version <= tls.max_version);
    const bool verifies = tls.client_auth == psnic::ClientAuth::kVerifyClientCertIfGiven ||
                          tls.client_auth == psnic::ClientAuth::kRequireAndVerifyClientCert;
    PSNIC_FUZZ_CHECK(verifies == !tls.client_ca_file.empty());
  }
  return 0;
}
