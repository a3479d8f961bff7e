#include "exporter/basic_auth.h"

#include <crypt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <memory>
#include <utility>

namespace psnic {

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

namespace {

std::string_view view(const std::array<unsigned char, 32>& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

}  // namespace

BasicAuth::BasicAuth(std::map<std::string, std::string> users)
    : users_(users.begin(), users.end()) {
  // Keyed, so that what is remembered is no password hash anyone could test guesses against
  // quickly: the key never leaves this process.
  gnutls_rnd(GNUTLS_RND_KEY, key_.data(), key_.size());
}

BasicAuth::Digest BasicAuth::digest(std::string_view password) const {
  Digest out{};
  gnutls_hmac_fast(GNUTLS_MAC_SHA256, key_.data(), key_.size(), password.data(), password.size(),
                   out.data());
  return out;
}

bool BasicAuth::bcrypt_matches(std::string_view password, const std::string& hash) {
  ++bcrypt_runs_;
  // crypt_r's state is 32 KiB: on the heap, not the server thread's stack. A password with a NUL
  // would be cut short by crypt_r, so it never matches.
  if (password.find('\0') != std::string_view::npos) return false;
  auto data = std::make_unique<crypt_data>();
  const std::string phrase(password);
  const char* result = crypt_r(phrase.c_str(), hash.c_str(), data.get());
  // libcrypt fails with a string starting with '*', or null.
  return result != nullptr && result[0] != '*' && equal_in_constant_time(result, hash);
}

bool BasicAuth::check(std::string_view user, std::string_view password) {
  if (users_.empty()) return true;
  const Digest presented = digest(password);
  std::lock_guard lock(mutex_);
  const auto known = users_.find(user);
  if (known == users_.end()) {
    // As long as a known user's check, and never true.
    bcrypt_matches(password, users_.begin()->second);
    return false;
  }
  Remembered& remembered = remembered_[known->first];
  auto same = [&](const std::optional<Digest>& kept) {
    return kept && equal_in_constant_time(view(presented), view(*kept));
  };
  if (same(remembered.accepted)) return true;
  if (same(remembered.refused)) return false;
  const bool ok = bcrypt_matches(password, known->second);
  (ok ? remembered.accepted : remembered.refused) = presented;
  return ok;
}

size_t BasicAuth::bcrypt_runs() const {
  std::lock_guard lock(mutex_);
  return bcrypt_runs_;
}

}  // namespace psnic
