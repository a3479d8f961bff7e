// HTTP basic auth against bcrypt hashes (web config's basic_auth_users), with the verdicts of
// recent checks remembered so that a scraper's every request does not cost a bcrypt.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace psnic {

class BasicAuth {
 public:
  // User name -> bcrypt hash, as parse_web_config checked them.
  explicit BasicAuth(std::map<std::string, std::string> users);

  bool enabled() const { return !users_.empty(); }

  // Whether `password` is `user`'s. A bcrypt costs tens of milliseconds on the server's one
  // thread, so the last accepted and the last refused password of each user are remembered (as
  // keyed hashes, never in clear): Prometheus sending the same credentials every 15 s costs one
  // bcrypt in all, and so does a scraper retrying a stale password. Any other password costs one,
  // and so does any unknown user (checked against a real hash, so that the time taken does not
  // tell which users exist). Thread-safe.
  bool check(std::string_view user, std::string_view password);

  // bcrypt runs so far, for tests.
  size_t bcrypt_runs() const;

 private:
  using Digest = std::array<unsigned char, 32>;  // HMAC-SHA-256
  struct Remembered {
    std::optional<Digest> accepted;
    std::optional<Digest> refused;
  };

  Digest digest(std::string_view password) const;
  bool bcrypt_matches(std::string_view password, const std::string& hash);

  std::map<std::string, std::string, std::less<>> users_;
  std::array<unsigned char, 32> key_{};  // random, this process's only
  mutable std::mutex mutex_;
  std::map<std::string, Remembered, std::less<>> remembered_;
  size_t bcrypt_runs_ = 0;
};

// Whether two byte strings are equal, in a time that depends on their length only.
bool equal_in_constant_time(std::string_view a, std::string_view b);

}  // namespace psnic
