#pragma once

#include <stdexcept>
#include <string>

namespace psnic {

// A failed operation on one named object (a PID, an interface, a socket). what() is the
// one-line message the CLI prints: "<object>: <cause>", lowercase.
class Error : public std::runtime_error {
 public:
  Error(std::string object, int errnum, std::string cause);

  const std::string& object() const { return object_; }
  // The errno behind the failure, or 0 when it is not a system error.
  int errnum() const { return errnum_; }

 private:
  std::string object_;
  int errnum_;
};

// An Error whose cause is strerror(errnum) in lowercase: "4242: no such process".
Error system_error(std::string object, int errnum);

}  // namespace psnic
