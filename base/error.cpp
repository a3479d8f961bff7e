#include "base/error.h"

#include <cctype>
#include <cstring>

namespace psnic {

Error::Error(std::string object, int errnum, std::string cause)
    : std::runtime_error(object + ": " + cause), object_(std::move(object)), errnum_(errnum) {}

Error system_error(std::string object, int errnum) {
  std::string cause = strerrordesc_np(errnum) ? strerrordesc_np(errnum) : "unknown error";
  if (!cause.empty())
    cause[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(cause[0])));
  return Error(std::move(object), errnum, std::move(cause));
}

}  // namespace psnic
