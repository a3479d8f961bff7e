// --web-config-file: TLS and basic auth for the endpoint, in the YAML format of Prometheus's
// exporter-toolkit (node_exporter's --web.config.file), so one file serves both.
//
//   tls_server_config:
//     cert_file: server.crt          # relative paths: from the file's own directory
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert
//     client_ca_file: clients-ca.crt
//     min_version: TLS12             # TLS12 (default) or TLS13
//     max_version: TLS13             # TLS12 or TLS13 (default)
//   basic_auth_users:
//     prometheus: $2y$10$...         # bcrypt ($2a$, $2b$, $2y$)
//
// Every other key is refused by name, those exporter-toolkit knows (cipher_suites,
// http_server_config...) included: a setting that would be ignored could leave the endpoint
// weaker than its operator believes.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace psnic {

// Go's crypto/tls names, which exporter-toolkit uses.
enum class ClientAuth {
  kNoClientCert,                // no certificate asked for
  kRequestClientCert,           // asked for, not required, not verified
  kRequireAnyClientCert,        // required, not verified
  kVerifyClientCertIfGiven,     // not required; verified against client_ca_file when sent
  kRequireAndVerifyClientCert,  // required and verified against client_ca_file
};

enum class TlsVersion { kTls12, kTls13 };

struct TlsServerConfig {
  // Paths as given, relative ones joined to the config file's directory.
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // empty: none
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
};

struct WebConfig {
  std::optional<TlsServerConfig> tls;  // none: plain HTTP
  // User name -> bcrypt hash; empty: no authentication.
  std::map<std::string, std::string> basic_auth_users;
};

// Largest config file read: a real one is a few hundred bytes.
inline constexpr size_t kMaxWebConfigSize = 1 << 20;

// Parses the file's text, nothing else: no file is opened, so any bytes are safe to feed it.
// Relative paths are joined to `base_dir` (the config file's directory). Throws Error whose
// message is one line naming the key and the cause, "tls_server_config.client_auth_type:
// unknown value \"Foo\" (expected NoClientCert, ...)", or the place of a YAML syntax error.
WebConfig parse_web_config(std::string_view yaml, const std::string& base_dir);

// A parsed config with the files it names read and checked: what the server is started with.
struct WebSecurity {
  WebConfig config;
  // PEM text, NUL-terminated as libmicrohttpd wants it. Empty without TLS.
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;  // empty without client_ca_file
};

// Reads `path`, parses it, reads the certificate, key and client CA it names and checks them
// (each parses, the key belongs to the certificate). Throws Error "web config PATH: <cause>".
std::shared_ptr<const WebSecurity> load_web_config(const std::string& path);

// Whether `hash` is a bcrypt hash libcrypt checks: $2a$, $2b$ or $2y$, a two-digit cost from 04
// to 31, and 53 characters of bcrypt's base64 (22 of salt, 31 of hash).
bool is_bcrypt_hash(std::string_view hash);

}  // namespace psnic
