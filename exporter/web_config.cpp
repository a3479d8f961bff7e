#include "exporter/web_config.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <yaml.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/text.h"

namespace psnic {
namespace {

// The file is three levels deep; anything deeper is refused before it costs memory.
constexpr size_t kMaxDepth = 8;

// A YAML document as the config needs it: scalars, mappings (ordered, duplicate keys
// refused) and sequences. Built from libyaml's events without recursion, so hostile nesting
// costs a depth check, not the stack.
struct Entry;
struct Node {
  enum class Kind { kNull, kScalar, kMapping, kSequence };
  Kind kind = Kind::kNull;
  std::string value;           // kScalar
  std::vector<Entry> entries;  // kMapping
  size_t items = 0;            // kSequence: only counted
  size_t line = 0;             // 1-based
};
// A mapping's key and value. (Not a std::pair: a pair of a type still being defined is ill-formed,
// which clang's libstdc++ checks enforce.)
struct Entry {
  std::string key;
  Node value;
};

Error config_error(const std::string& key, std::string cause) {
  return Error(key, EINVAL, std::move(cause));
}

// A value as the user wrote it, quoted and escaped, for messages.
std::string quoted(std::string_view value) {
  std::string out = "\"";
  append_escaped(out, value.substr(0, 64));
  out += value.size() > 64 ? "...\"" : "\"";
  return out;
}

bool is_null_scalar(const yaml_event_t& event) {
  if (event.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const std::string_view text(reinterpret_cast<const char*>(event.data.scalar.value),
                              event.data.scalar.length);
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

class Parser {
 public:
  explicit Parser(std::string_view yaml) {
    if (!yaml_parser_initialize(&parser_)) throw Error("yaml", ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(yaml.data()),
                                 yaml.size());
  }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
  ~Parser() { yaml_parser_delete(&parser_); }

  // The one document's root; kNull for an empty file.
  Node document() {
    Node root;
    // Open collections, innermost last, with the key each waits to fill (mappings).
    struct Open {
      Node node;
      std::optional<std::string> key;
      std::set<std::string> keys;  // a mapping's so far: a duplicate costs a lookup, not a scan
    };
    std::vector<Open> open;
    bool documents = false;
    for (;;) {
      Event event(parser_);
      const size_t line = event->start_mark.line + 1;
      Node node;
      node.line = line;
      switch (event->type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
          continue;
        case YAML_STREAM_END_EVENT:
          return root;
        case YAML_DOCUMENT_START_EVENT:
          if (documents) throw syntax(line, "more than one document");
          documents = true;
          continue;
        case YAML_ALIAS_EVENT:
          // Aliases multiply a small file into a large tree; the format never needs them.
          throw syntax(line, "aliases (*name) are not supported");
        case YAML_SCALAR_EVENT:
          if (!is_null_scalar(*event)) {
            node.kind = Node::Kind::kScalar;
            node.value.assign(reinterpret_cast<const char*>(event->data.scalar.value),
                              event->data.scalar.length);
          }
          break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
          if (open.size() >= kMaxDepth) throw syntax(line, "nested too deep");
          node.kind = event->type == YAML_MAPPING_START_EVENT ? Node::Kind::kMapping
                                                              : Node::Kind::kSequence;
          open.push_back({std::move(node), std::nullopt, {}});
          continue;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
          node = std::move(open.back().node);
          open.pop_back();
          break;
        default:
          continue;
      }
      // A complete node: the root, a mapping's key or value, or a sequence's item.
      if (open.empty()) {
        root = std::move(node);
        continue;
      }
      Open& parent = open.back();
      if (parent.node.kind == Node::Kind::kSequence) {
        ++parent.node.items;
      } else if (!parent.key) {
        if (node.kind != Node::Kind::kScalar) throw syntax(line, "a key must be a plain string");
        if (!parent.keys.insert(node.value).second)
          throw syntax(line, "duplicate key " + quoted(node.value));
        parent.key = std::move(node.value);
      } else {
        parent.node.entries.push_back({std::move(*parent.key), std::move(node)});
        parent.key.reset();
      }
    }
  }

 private:
  // One event, deleted when done with.
  class Event {
   public:
    explicit Event(yaml_parser_t& parser) {
      if (!yaml_parser_parse(&parser, &event_)) {
        const yaml_mark_t& mark = parser.problem_mark;
        std::string cause = parser.problem ? parser.problem : "unreadable";
        throw Error("invalid yaml at line " + std::to_string(mark.line + 1) + ", column " +
                        std::to_string(mark.column + 1),
                    EINVAL, cause);
      }
    }
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    ~Event() { yaml_event_delete(&event_); }
    const yaml_event_t* operator->() const { return &event_; }
    const yaml_event_t& operator*() const { return event_; }

   private:
    yaml_event_t event_{};
  };

  static Error syntax(size_t line, std::string cause) {
    return Error("invalid yaml at line " + std::to_string(line), EINVAL, std::move(cause));
  }

  yaml_parser_t parser_{};
};

const char* kind_name(Node::Kind kind) {
  switch (kind) {
    case Node::Kind::kNull:
      return "nothing";
    case Node::Kind::kScalar:
      return "a string";
    case Node::Kind::kMapping:
      return "a mapping";
    case Node::Kind::kSequence:
      return "a list";
  }
  return "?";
}

// A scalar's text; null is "" (as exporter-toolkit's Go structs read it).
std::string string_of(const Node& node, const std::string& key) {
  if (node.kind == Node::Kind::kNull) return "";
  if (node.kind != Node::Kind::kScalar)
    throw config_error(key, std::string("expected a string, found ") + kind_name(node.kind));
  return node.value;
}

// A mapping's entries; null is none.
const std::vector<Entry>& entries_of(const Node& node, const std::string& key) {
  static const std::vector<Entry> none;
  if (node.kind == Node::Kind::kNull) return none;
  if (node.kind != Node::Kind::kMapping)
    throw config_error(key, std::string("expected a mapping, found ") + kind_name(node.kind));
  return node.entries;
}

// Keys exporter-toolkit reads that psnic does not implement: refused, since ignoring them
// could leave the endpoint weaker (cipher_suites) or not as configured.
Error not_supported(const std::string& key) {
  return config_error(key, "not supported by psnic (exporter-toolkit has it; remove it)");
}

Error unknown_key(const std::string& key) { return config_error(key, "unknown key"); }

std::string resolved(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir.back() == '/' ? base_dir + path : base_dir + "/" + path;
}

ClientAuth parse_client_auth(const std::string& text, const std::string& key) {
  static const std::pair<const char*, ClientAuth> kNames[] = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  };
  if (text.empty()) return ClientAuth::kNoClientCert;
  std::string expected;
  for (const auto& [name, value] : kNames) {
    if (text == name) return value;
    expected += expected.empty() ? name : std::string(", ") + name;
  }
  throw config_error(key, "unknown value " + quoted(text) + " (expected " + expected + ")");
}

TlsVersion parse_tls_version(const std::string& text, const std::string& key, TlsVersion fallback) {
  if (text.empty()) return fallback;
  if (text == "TLS12") return TlsVersion::kTls12;
  if (text == "TLS13") return TlsVersion::kTls13;
  if (text == "TLS10" || text == "TLS11")
    throw config_error(key, quoted(text) + " is not supported by psnic (TLS12 or TLS13)");
  throw config_error(key, "unknown value " + quoted(text) + " (expected TLS12 or TLS13)");
}

TlsServerConfig parse_tls(const Node& node, const std::string& base_dir) {
  const std::string prefix = "tls_server_config.";
  TlsServerConfig tls;
  std::string client_auth;
  std::string min_version;
  std::string max_version;
  for (const auto& [name, value] : entries_of(node, "tls_server_config")) {
    const std::string key = prefix + name;
    if (name == "cert_file")
      tls.cert_file = resolved(string_of(value, key), base_dir);
    else if (name == "key_file")
      tls.key_file = resolved(string_of(value, key), base_dir);
    else if (name == "client_ca_file")
      tls.client_ca_file = resolved(string_of(value, key), base_dir);
    else if (name == "client_auth_type")
      tls.client_auth = parse_client_auth(string_of(value, key), key);
    else if (name == "min_version")
      tls.min_version = parse_tls_version(string_of(value, key), key, TlsVersion::kTls12);
    else if (name == "max_version")
      tls.max_version = parse_tls_version(string_of(value, key), key, TlsVersion::kTls13);
    else if (name == "cert" || name == "key" || name == "client_ca" ||
             name == "client_allowed_sans" || name == "cipher_suites" ||
             name == "curve_preferences" || name == "prefer_server_cipher_suites")
      throw not_supported(key);
    else
      throw unknown_key(key);
  }
  if (tls.cert_file.empty()) throw config_error(prefix + "cert_file", "missing");
  if (tls.key_file.empty()) throw config_error(prefix + "key_file", "missing");
  if (tls.min_version > tls.max_version)
    throw config_error(prefix + "min_version", "TLS13 is above max_version TLS12");
  const bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                        tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
  // As exporter-toolkit: CAs without a policy that uses them are a mistake, not a default.
  if (!tls.client_ca_file.empty() && !verifies)
    throw config_error(prefix + "client_ca_file",
                       "given, but client_auth_type does not verify client certificates "
                       "(VerifyClientCertIfGiven or RequireAndVerifyClientCert)");
  // Go would verify against the system's CAs; psnic trusts only what it is told to.
  if (verifies && tls.client_ca_file.empty())
    throw config_error(prefix + "client_ca_file",
                       "missing (client_auth_type verifies "
                       "client certificates against it)");
  return tls;
}

std::map<std::string, std::string> parse_users(const Node& node) {
  std::map<std::string, std::string> users;
  for (const auto& [name, value] : entries_of(node, "basic_auth_users")) {
    const std::string key = "basic_auth_users." + name;
    // RFC 7617: the user-id ends at the first colon.
    if (name.empty() || name.find(':') != std::string::npos)
      throw config_error("basic_auth_users",
                         "user name " + quoted(name) + " is empty or has a colon");
    std::string hash = string_of(value, key);
    if (!is_bcrypt_hash(hash))
      throw config_error(key, "not a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from htpasswd -nB)");
    users.emplace(name, std::move(hash));
  }
  return users;
}

// The whole of a file no larger than kMaxWebConfigSize. Errors name `object`: the config file
// itself, or the key and the path of a file it names.
std::string read_file(const std::string& path, const std::string& object) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw system_error(object, errno ? errno : EIO);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw system_error(object, EIO);
  std::string contents = std::move(text).str();
  if (contents.size() > kMaxWebConfigSize) throw Error(object, EFBIG, "larger than 1 MiB");
  return contents;
}

gnutls_datum_t datum(const std::string& text) {
  return {reinterpret_cast<unsigned char*>(const_cast<char*>(text.data())),
          static_cast<unsigned>(text.size())};
}

std::string lowercase_first(const char* message) {
  std::string text = message ? message : "unknown error";
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  while (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

// The certificate, key and client CA parse, and the key is the certificate's: checked here,
// so that a bad file fails the start (or the reload) in one line, not each handshake.
void check_tls_files(const WebSecurity& security) {
  const TlsServerConfig& tls = *security.config.tls;
  const gnutls_datum_t cert = datum(security.cert_pem);
  const gnutls_datum_t key = datum(security.key_pem);
  // Each file parsed on its own first, so that the line names the one that is wrong.
  auto refuse_if_failed = [](int imported, const std::string& key, const std::string& path,
                             const char* expected) {
    if (imported < 0)
      throw config_error(key, path + ": not " + expected + " (" +
                                  lowercase_first(gnutls_strerror(imported)) + ")");
  };
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init(&crt);
  const int crt_imported = gnutls_x509_crt_import(crt, &cert, GNUTLS_X509_FMT_PEM);
  gnutls_x509_crt_deinit(crt);
  refuse_if_failed(crt_imported, "tls_server_config.cert_file", tls.cert_file, "a PEM certificate");
  gnutls_x509_privkey_t privkey;
  gnutls_x509_privkey_init(&privkey);
  const int key_imported =
      gnutls_x509_privkey_import2(privkey, &key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN);
  gnutls_x509_privkey_deinit(privkey);
  refuse_if_failed(key_imported, "tls_server_config.key_file", tls.key_file,
                   "an unencrypted PEM private key");
  gnutls_certificate_credentials_t credentials;
  if (gnutls_certificate_allocate_credentials(&credentials) < 0)
    throw Error("tls_server_config", ENOMEM, "out of memory");
  std::unique_ptr<gnutls_certificate_credentials_st, void (*)(gnutls_certificate_credentials_t)>
      owned(credentials, gnutls_certificate_free_credentials);
  const int paired = gnutls_certificate_set_x509_key_mem2(credentials, &cert, &key,
                                                          GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (paired == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
    throw config_error("tls_server_config.key_file",
                       tls.key_file + ": not the key of " + tls.cert_file + "'s certificate");
  if (paired < 0)
    throw config_error("tls_server_config.cert_file",
                       tls.cert_file + ": " + lowercase_first(gnutls_strerror(paired)));
  if (!security.client_ca_pem.empty()) {
    const gnutls_datum_t ca = datum(security.client_ca_pem);
    const int trusted =
        gnutls_certificate_set_x509_trust_mem(credentials, &ca, GNUTLS_X509_FMT_PEM);
    if (trusted <= 0)
      throw config_error(
          "tls_server_config.client_ca_file",
          tls.client_ca_file + ": no PEM certificate in it" +
              (trusted < 0 ? " (" + lowercase_first(gnutls_strerror(trusted)) + ")" : ""));
  }
}

}  // namespace

bool is_bcrypt_hash(std::string_view hash) {
  // "$2b$10$" then 53 of [./A-Za-z0-9].
  if (hash.size() != 60 || hash.substr(0, 2) != "$2" || hash[3] != '$' || hash[6] != '$')
    return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (!std::isdigit(static_cast<unsigned char>(hash[4])) ||
      !std::isdigit(static_cast<unsigned char>(hash[5])))
    return false;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (char c : hash.substr(7))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '/') return false;
  return true;
}

WebConfig parse_web_config(std::string_view yaml, const std::string& base_dir) {
  if (yaml.size() > kMaxWebConfigSize) throw Error("the file", EFBIG, "larger than 1 MiB");
  const Node root = Parser(yaml).document();
  WebConfig config;
  for (const auto& [name, value] : entries_of(root, "the top level")) {
    if (name == "tls_server_config") {
      // Empty or null: no TLS, as exporter-toolkit serves plain HTTP then.
      if (!entries_of(value, name).empty()) config.tls = parse_tls(value, base_dir);
    } else if (name == "basic_auth_users") {
      config.basic_auth_users = parse_users(value);
    } else if (name == "http_server_config") {
      throw not_supported(name);
    } else {
      throw unknown_key(name);
    }
  }
  return config;
}

std::shared_ptr<const WebSecurity> load_web_config(const std::string& path) {
  const std::string object = "web config " + path;
  auto security = std::make_shared<WebSecurity>();
  const std::string text = read_file(path, object);
  try {
    const size_t slash = path.rfind('/');
    const std::string base_dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    security->config = parse_web_config(text, base_dir);
    if (const auto& tls = security->config.tls) {
      security->cert_pem =
          read_file(tls->cert_file, "tls_server_config.cert_file: " + tls->cert_file);
      security->key_pem = read_file(tls->key_file, "tls_server_config.key_file: " + tls->key_file);
      if (!tls->client_ca_file.empty())
        security->client_ca_pem = read_file(
            tls->client_ca_file, "tls_server_config.client_ca_file: " + tls->client_ca_file);
      check_tls_files(*security);
    }
  } catch (const Error& e) {
    // "web config /etc/psnic/web.yml: tls_server_config.key_file: ...".
    throw Error(object, e.errnum(), e.what());
  }
  return security;
}

}  // namespace psnic
