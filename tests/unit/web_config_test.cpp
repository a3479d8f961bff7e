// The web config's parser: what exporter-toolkit's format means to psnic, and one line naming
// the key for everything it refuses.
#include "exporter/web_config.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "base/error.h"
#include "tests/support/support.h"
#include "tests/support/tls.h"

namespace psnic {
namespace {

// Shaped as a bcrypt hash: the parser checks the shape, libcrypt the password.
const std::string kHash = "$2b$04$zZ0aTnG7Yk.w9eZ9nG6e4OJ0u1KfJ6dQmE1K0w8iT1dH0p5mY3bHy";

std::string parse_error(const std::string& yaml) {
  try {
    parse_web_config(yaml, "/etc/psnic");
  } catch (const Error& e) {
    return e.what();
  }
  return "<parsed>";
}

TEST(WebConfig, ParsesEveryKeyAndResolvesRelativePathsAgainstTheFilesDirectory) {
  const WebConfig config = parse_web_config(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: /keys/server.key\n"
      "  client_ca_file: ca/clients.crt\n"
      "  client_auth_type: RequireAndVerifyClientCert\n"
      "  min_version: TLS13\n"
      "  max_version: TLS13\n"
      "basic_auth_users:\n"
      "  prometheus: " +
          kHash +
          "\n"
          "  'other': \"" +
          kHash + "\"\n",
      "/etc/psnic");
  ASSERT_TRUE(config.tls);
  EXPECT_EQ(config.tls->cert_file, "/etc/psnic/server.crt");
  EXPECT_EQ(config.tls->key_file, "/keys/server.key");
  EXPECT_EQ(config.tls->client_ca_file, "/etc/psnic/ca/clients.crt");
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(config.tls->min_version, TlsVersion::kTls13);
  EXPECT_EQ(config.tls->max_version, TlsVersion::kTls13);
  EXPECT_EQ(config.basic_auth_users.size(), 2u);
  EXPECT_EQ(config.basic_auth_users.at("prometheus"), kHash);
}

TEST(WebConfig, DefaultsAreExporterToolkits) {
  const WebConfig config =
      parse_web_config("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n", "");
  ASSERT_TRUE(config.tls);
  EXPECT_EQ(config.tls->cert_file, "a.crt");  // no directory: as given
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kNoClientCert);
  EXPECT_EQ(config.tls->min_version, TlsVersion::kTls12);
  EXPECT_EQ(config.tls->max_version, TlsVersion::kTls13);
  EXPECT_TRUE(config.basic_auth_users.empty());
}

TEST(WebConfig, EmptyFileOrSectionsMeanPlainHttpWithoutAuth) {
  for (const char* yaml : {"", "\n# nothing\n", "---\n", "tls_server_config:\nbasic_auth_users:\n",
                           "tls_server_config: {}\nbasic_auth_users: {}\n"}) {
    const WebConfig config = parse_web_config(yaml, "/etc");
    EXPECT_FALSE(config.tls) << yaml;
    EXPECT_TRUE(config.basic_auth_users.empty()) << yaml;
  }
}

TEST(WebConfig, EveryRefusalIsOneLineNamingTheKey) {
  const std::string tls = "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n";
  const std::pair<std::string, std::string> cases[] = {
      {tls + "  client_auth_type: Foo\n",
       "tls_server_config.client_auth_type: unknown value \"Foo\" (expected NoClientCert, "
       "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
       "RequireAndVerifyClientCert)"},
      {"tls_sever_config: {}\n", "tls_sever_config: unknown key"},
      {tls + "  cert_fil: x\n", "tls_server_config.cert_fil: unknown key"},
      {"http_server_config:\n  http2: false\n",
       "http_server_config: not supported by psnic (exporter-toolkit has it; remove it)"},
      {tls + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
       "tls_server_config.cipher_suites: not supported by psnic (exporter-toolkit has it; remove "
       "it)"},
      {"tls_server_config: yes\n", "tls_server_config: expected a mapping, found a string"},
      {"- a\n- b\n", "the top level: expected a mapping, found a list"},
      {"tls_server_config:\n  cert_file: [a]\n",
       "tls_server_config.cert_file: expected a string, found a list"},
      {"tls_server_config:\n  cert_file: a.crt\n", "tls_server_config.key_file: missing"},
      {"tls_server_config:\n  key_file: a.key\n", "tls_server_config.cert_file: missing"},
      {tls + "  min_version: TLS10\n",
       "tls_server_config.min_version: \"TLS10\" is not supported by psnic (TLS12 or TLS13)"},
      {tls + "  max_version: TLS14\n",
       "tls_server_config.max_version: unknown value \"TLS14\" (expected TLS12 or TLS13)"},
      {tls + "  min_version: TLS13\n  max_version: TLS12\n",
       "tls_server_config.min_version: TLS13 is above max_version TLS12"},
      {tls + "  client_ca_file: ca.crt\n",
       "tls_server_config.client_ca_file: given, but client_auth_type does not verify client "
       "certificates (VerifyClientCertIfGiven or RequireAndVerifyClientCert)"},
      {tls + "  client_auth_type: VerifyClientCertIfGiven\n",
       "tls_server_config.client_ca_file: missing (client_auth_type verifies client "
       "certificates against it)"},
      {"basic_auth_users:\n  alice: secret\n",
       "basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from htpasswd -nB)"},
      {"basic_auth_users:\n  alice: $1$abc$def\n",
       "basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from htpasswd -nB)"},
      {"basic_auth_users:\n  \"a:b\": " + kHash + "\n",
       "basic_auth_users: user name \"a:b\" is empty or has a colon"},
      {"basic_auth_users:\n  alice: [x]\n",
       "basic_auth_users.alice: expected a string, found a list"},
      {"basic_auth_users:\n  alice: " + kHash + "\n  alice: " + kHash + "\n",
       "invalid yaml at line 3: duplicate key \"alice\""},
      {"a: &x {b: 1}\nc: *x\n", "invalid yaml at line 2: aliases (*name) are not supported"},
      {"a: [b\n", "invalid yaml at line 2, column 1: did not find expected ',' or ']'"},
      {"a: 1\n---\nb: 2\n", "invalid yaml at line 2: more than one document"},
      {std::string(100, '['), "invalid yaml at line 1: nested too deep"},
      {"? [a]\n: b\n", "invalid yaml at line 1: a key must be a plain string"},
  };
  for (const auto& [yaml, expected] : cases) {
    const std::string message = parse_error(yaml);
    EXPECT_EQ(message, expected) << yaml;
    EXPECT_EQ(message.find('\n'), std::string::npos) << yaml;
  }
}

TEST(WebConfig, ValuesInMessagesAreEscapedAndCut) {
  const std::string message = parse_error(
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: \"x\\ny\\u001b" +
      std::string(200, 'z') + "\"\n");
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_LT(message.size(), 400u);
}

TEST(WebConfig, BcryptHashesAreCheckedForShape) {
  EXPECT_TRUE(is_bcrypt_hash(kHash));
  EXPECT_TRUE(is_bcrypt_hash(test::bcrypt("secret")));
  EXPECT_TRUE(is_bcrypt_hash("$2y$10$" + kHash.substr(7)));
  EXPECT_FALSE(is_bcrypt_hash("$2x$04$" + kHash.substr(7)));
  EXPECT_FALSE(is_bcrypt_hash("$2b$03$" + kHash.substr(7)));  // cost below 4
  EXPECT_FALSE(is_bcrypt_hash("$2b$32$" + kHash.substr(7)));
  EXPECT_FALSE(is_bcrypt_hash(kHash.substr(0, 59)));
  EXPECT_FALSE(is_bcrypt_hash(kHash.substr(0, 59) + "!"));
}

// Whatever the bytes, the parser returns or throws psnic::Error: never a crash, never another
// exception (a libFuzzer harness will go further).
TEST(WebConfig, ArbitraryBytesNeverCrash) {
  const std::string valid =
      "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: "
      "RequireAndVerifyClientCert\n  client_ca_file: ca.crt\nbasic_auth_users:\n  u: " +
      kHash + "\n";
  std::mt19937 random(42);
  auto survives = [](const std::string& yaml) {
    try {
      parse_web_config(yaml, "/d");
    } catch (const Error&) {
    }
  };
  for (size_t cut = 0; cut <= valid.size(); ++cut) survives(valid.substr(0, cut));
  for (int round = 0; round < 3000; ++round) {
    std::string mutated = valid;
    for (int flips = 0; flips < 4; ++flips)
      mutated[random() % mutated.size()] = static_cast<char>(random() % 256);
    survives(mutated);
    std::string noise(random() % 200, '\0');
    for (char& c : noise) c = static_cast<char>(random() % 256);
    survives(noise);
  }
  survives(std::string(1 << 16, '['));
  survives(std::string(1 << 16, '{'));
  survives("a: " + std::string(1 << 16, '-'));
  // Many keys in one mapping: each is checked for a duplicate by lookup, so this is quick.
  std::string many = "basic_auth_users:\n";
  for (int i = 0; i < 50000; ++i) many += "  u" + std::to_string(i) + ": x\n";
  EXPECT_THROW(parse_web_config(many, ""), Error);
  EXPECT_THROW(parse_web_config(std::string(kMaxWebConfigSize + 1, ' '), ""), Error);
}

TEST(WebConfig, LoadingNamesTheFileAndWhatIsWrongWithIt) {
  test::TlsFiles files("load");
  auto load_error = [&](const std::string& yaml) {
    const std::string path = files.write("web.yml", yaml);
    try {
      load_web_config(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<loaded>");
  };
  const std::string prefix = "web config " + files.path("web.yml") + ": ";
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"),
            "<loaded>");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: nothing.crt\n  key_file: server.key\n"),
            prefix + "tls_server_config.cert_file: " + files.path("nothing.crt") +
                ": no such file or directory");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server2.key\n"),
            prefix + "tls_server_config.key_file: " + files.path("server2.key") +
                ": not the key of " + files.path("server.crt") + "'s certificate");
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n")
                .rfind(prefix + "tls_server_config.cert_file: " + files.path("server.key") +
                           ": not a PEM certificate",
                       0),
            0u);
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n")
                .rfind(prefix + "tls_server_config.key_file: " + files.path("server.crt") +
                           ": not an unencrypted PEM private key",
                       0),
            0u);
  EXPECT_EQ(load_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                       "  client_auth_type: RequireAndVerifyClientCert\n"
                       "  client_ca_file: web.yml\n"),
            prefix + "tls_server_config.client_ca_file: " + files.path("web.yml") +
                ": no PEM certificate in it");
  EXPECT_EQ(load_error("basic_auth_users:\n  a: b\n"),
            prefix +
                "basic_auth_users.a: not a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from "
                "htpasswd -nB)");
  try {
    load_web_config(files.path("missing.yml"));
    ADD_FAILURE() << "loaded a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "web config " + files.path("missing.yml") + ": no such file or directory");
  }
}

}  // namespace
}  // namespace psnic
