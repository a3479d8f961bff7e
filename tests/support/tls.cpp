#include "tests/support/tls.h"

#include <crypt.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <memory>

#include "tests/support/support.h"

namespace psnic::test {

namespace {

// A certificate for `name` (dir/name.crt, dir/name.key) with `extensions` (an openssl
// extfile's lines), signed by the CA or, when `self_signed`, by itself.
void make_certificate(const TlsFiles& files, const std::string& name, const std::string& serial,
                      const std::string& extensions, bool self_signed = false) {
  const std::string crt = files.path(name + ".crt");
  const std::string key = files.path(name + ".key");
  const std::string ext = files.write(name + ".ext", extensions);
  must("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=psnictest-" +
       name + " -keyout " + key + " -out " + files.path(name + ".csr") + " 2>&1");
  const std::string signer =
      self_signed ? " -signkey " + key
                  : " -CA " + files.path("ca.crt") + " -CAkey " + files.path("ca.key");
  must("openssl x509 -req -days 2 -in " + files.path(name + ".csr") + signer + " -set_serial 0x" +
       serial + " -extfile " + ext + " -out " + crt + " 2>&1");
}

}  // namespace

TlsFiles::TlsFiles(const std::string& tag) {
  dir_ = "/tmp/psnictest" + std::to_string(getpid()) + "-tls-" + tag;
  must("rm -rf " + dir_ + " && mkdir -p " + dir_);
  must(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=psnictest-ca -keyout " +
      path("ca.key") + " -out " + path("ca.crt") + " 2>&1");
  const std::string server = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
  make_certificate(*this, "server", kServerSerial, server);
  make_certificate(*this, "server2", kServer2Serial, server);
  make_certificate(*this, "client", "c1", "extendedKeyUsage=clientAuth\n");
  make_certificate(*this, "stranger", "c2", "extendedKeyUsage=clientAuth\n", true);
}

TlsFiles::~TlsFiles() { run("rm -rf " + dir_); }

std::string TlsFiles::write(const std::string& name, const std::string& text) const {
  const std::string file = path(name);
  std::ofstream(file) << text;
  return file;
}

std::string bcrypt(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt), nullptr);
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(password.c_str(), salt, data.get());
  EXPECT_TRUE(hash != nullptr && hash[0] == '$');
  return hash ? hash : "";
}

HttpsResponse https_get(const HttpsRequest& request) {
  HttpsResponse response;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    response.error = "curl_easy_init failed";
    return response;
  }
  CURL* c = curl.get();
  auto append = +[](char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
  };
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &response.headers);
  curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
  if (request.ca_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  } else {
    curl_easy_setopt(c, CURLOPT_CAINFO, request.ca_file.c_str());
  }
  if (!request.client_cert.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, request.client_cert.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, request.client_key.c_str());
  }
  if (request.tls13_only)
    curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_3));
  if (request.tls12_only)
    curl_easy_setopt(c, CURLOPT_SSLVERSION,
                     static_cast<long>(CURL_SSLVERSION_TLSv1_2) | CURL_SSLVERSION_MAX_TLSv1_2);
  if (!request.user.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, request.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, request.password.c_str());
  }
  const CURLcode code = curl_easy_perform(c);
  if (code != CURLE_OK) {
    response.error = curl_easy_strerror(code);
    return response;
  }
  response.ok = true;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  curl_certinfo* info = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &info) == CURLE_OK && info &&
      info->num_of_certs > 0) {
    for (curl_slist* field = info->certinfo[0]; field; field = field->next) {
      const std::string text = field->data;
      const std::string prefix = "Serial Number:";
      if (text.rfind(prefix, 0) != 0) continue;
      for (char ch : text.substr(prefix.size()))
        if (std::isxdigit(static_cast<unsigned char>(ch)))
          response.server_serial += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  return response;
}

}  // namespace psnic::test
