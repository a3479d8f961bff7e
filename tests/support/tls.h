// TLS material and an HTTPS client for the web config's tests: certificates made at test time
// with openssl, bcrypt hashes with libcrypt, and requests with libcurl.
#pragma once

#include <string>
#include <vector>

namespace psnic::test {

// A directory /tmp/psnictest<pid>-tls-<tag> holding, all PEM, made on construction and removed
// on destruction:
//   ca.crt, ca.key                  a CA
//   server.crt, server.key          for 127.0.0.1, signed by the CA, serial kServerSerial
//   server2.crt, server2.key        the same, serial kServer2Serial (a reload's new certificate)
//   client.crt, client.key          a client certificate signed by the CA (clientAuth)
//   stranger.crt, stranger.key      a self-signed client certificate the CA never signed
class TlsFiles {
 public:
  static constexpr const char* kServerSerial = "7e57a1";
  static constexpr const char* kServer2Serial = "7e57b2";

  explicit TlsFiles(const std::string& tag);
  TlsFiles(const TlsFiles&) = delete;
  TlsFiles& operator=(const TlsFiles&) = delete;
  ~TlsFiles();

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // Writes `text` to dir()/name; returns the path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string dir_;
};

// A bcrypt hash of `password` (cost 4: tests need no strength).
std::string bcrypt(const std::string& password);

struct HttpsRequest {
  std::string url;      // https://127.0.0.1:PORT/metrics, or http://
  std::string ca_file;  // verify the server against it; empty: no verification
  std::string client_cert, client_key;
  std::string user, password;  // basic auth when user is set
  bool tls13_only = false;     // TLS 1.3 only
  bool tls12_only = false;     // TLS 1.2 only
};

struct HttpsResponse {
  bool ok = false;  // a response came; else `error` says why
  std::string error;
  long status = 0;
  std::string headers;
  std::string body;
  std::string server_serial;  // the server certificate's serial, lowercase hex without colons
};

// One request on a new connection (none is reused). Never throws.
HttpsResponse https_get(const HttpsRequest& request);

}  // namespace psnic::test
