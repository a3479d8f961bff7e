// Text that comes from other processes and the kernel (interface, container and namespace names:
// whatever bytes their creator chose), made safe for where psnic writes it. Prometheus requires
// label values in UTF-8 (one invalid byte makes it reject the whole exposition), JSON must be
// UTF-8, and a log line must stay one line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace psnic {

// "1 interface", "3 interfaces": a count and its noun, in the plural unless there is one.
std::string counted(size_t n, std::string_view noun);

// U+FFFD, what replaces each byte that is not part of a well-formed UTF-8 sequence.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it is not one (or `s` is empty).
size_t utf8_sequence(std::string_view s);

// `text` with every byte that is not part of a well-formed sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

// Appends `value` escaped as the inside of a double-quoted JSON (or logfmt) string: '"', '\\'
// and control characters escaped, bytes that are not UTF-8 replaced by U+FFFD.
void append_escaped(std::string& out, std::string_view value);

}  // namespace psnic
