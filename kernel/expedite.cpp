#include "kernel/expedite.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"
#include "base/log.h"

namespace psnic {
namespace {

// The knob's value as the kernel shows it ("0\n"), without the newline; nullopt and errno set
// when it cannot be read.
std::optional<std::string> read_value(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  char buffer[32];
  const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
  if (n < 0) return std::nullopt;
  std::string value(buffer, static_cast<size_t>(n));
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

// The kernel parses the knob with kstrtoint(): an optional sign and decimal digits.
bool is_integer(const std::string& value) {
  size_t i = !value.empty() && (value[0] == '-' || value[0] == '+') ? 1 : 0;
  if (i == value.size()) return false;
  for (; i < value.size(); ++i)
    if (value[i] < '0' || value[i] > '9') return false;
  return true;
}

// 0 or errno.
int write_value(const std::string& path, const std::string& value) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd.valid()) return errno;
  const std::string line = value + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return errno != 0 ? errno : EIO;
  return 0;
}

std::optional<std::string> read_record(const std::string& record) {
  char target[64];
  const ssize_t n = readlink(record.c_str(), target, sizeof target);
  if (n < 0 || static_cast<size_t>(n) == sizeof target) return std::nullopt;
  return std::string(target, static_cast<size_t>(n));
}

}  // namespace

void ExpeditedGracePeriods::warn_once(const std::string& cause) {
  if (!unusable_)
    log_warn("--expedite-attach: " + cause + "; attaching with ordinary RCU grace periods",
             {{"knob", knob_}});
  unusable_ = true;
}

bool ExpeditedGracePeriods::usable() {
  if (unusable_) return false;
  Fd fd(::open(knob_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) warn_once(knob_ + ": " + std::strerror(errno));
  return !unusable_;
}

bool ExpeditedGracePeriods::begin() {
  if (held()) return true;
  if (unusable_) return false;
  std::optional<std::string> value = read_value(knob_);
  if (!value) {
    warn_once(knob_ + ": " + std::strerror(errno));
    return false;
  }
  if (!is_integer(*value)) {
    warn_once(knob_ + ": reads \"" + *value + "\", not a number");
    return false;
  }
  if (*value != "0") return false;  // expedited already: someone else's, to restore
  // The record first: an agent killed between the two leaves a record of the true value.
  if (symlink(value->c_str(), record_.c_str()) < 0) {
    if (errno != EEXIST) {
      warn_once("recording the value of " + knob_ + " in " + record_ + ": " + std::strerror(errno));
      return false;
    }
    // An earlier agent's record that nobody restored: it holds the value from before that
    // agent, which this one restores in turn.
    std::optional<std::string> recorded = read_record(record_);
    if (!recorded || !is_integer(*recorded)) {
      warn_once(record_ + ": not a value psnic recorded");
      return false;
    }
    value = recorded;
  }
  if (int error = write_value(knob_, "1"); error != 0) {
    unlink(record_.c_str());
    warn_once("setting " + knob_ + ": " + std::strerror(error));
    return false;
  }
  previous_ = *value;
  log_info(knob_ + " set to 1 (was " + *value +
               "): expedited RCU grace periods while a backlog "
               "of TCX links is attached or detached",
           {{"knob", knob_}, {"value", "1"}, {"previous", *value}});
  return true;
}

void ExpeditedGracePeriods::end() {
  if (!held()) return;
  const std::string previous = *previous_;
  previous_.reset();
  if (int error = write_value(knob_, previous); error != 0) {
    log_warn("restoring " + knob_ + " to " + previous + ": " + std::strerror(error) +
                 " (recorded in " + record_ + " for psnic-agent --cleanup)",
             {{"knob", knob_}, {"value", previous}});
    unusable_ = true;  // a knob that cannot be put back is not set again
    return;
  }
  unlink(record_.c_str());
  log_info(knob_ + " restored to " + previous, {{"knob", knob_}, {"value", previous}});
}

std::optional<std::string> restore_expedited(const std::string& knob, const std::string& record) {
  std::optional<std::string> recorded = read_record(record);
  if (!recorded) return std::nullopt;
  if (!is_integer(*recorded)) {
    log_warn(record + ": \"" + *recorded + "\" is not a value psnic recorded; removed",
             {{"knob", knob}});
    unlink(record.c_str());
    return std::nullopt;
  }
  if (int error = write_value(knob, *recorded); error != 0) {
    log_warn("restoring " + knob + " to " + *recorded + " as recorded in " + record + ": " +
                 std::strerror(error),
             {{"knob", knob}, {"value", *recorded}});
    return std::nullopt;
  }
  unlink(record.c_str());
  log_info(knob + " restored to " + *recorded + ", as an agent that stopped while expediting " +
               "grace periods recorded in " + record,
           {{"knob", knob}, {"value", *recorded}});
  return recorded;
}

}  // namespace psnic
