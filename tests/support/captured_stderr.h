#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "base/log.h"

namespace psnic::test {

// Reads what log() wrote to stderr, which is redirected to a pipe meanwhile.
class CapturedStderr {
 public:
  CapturedStderr() {
    EXPECT_EQ(pipe2(pipe_, O_NONBLOCK), 0);
    saved_ = dup(STDERR_FILENO);
    dup2(pipe_[1], STDERR_FILENO);
  }
  ~CapturedStderr() {
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    close(pipe_[0]);
    close(pipe_[1]);
    configure_log(LogFormat::kLogfmt, LogLevel::kInfo);
  }
  std::string read() {
    std::string out;
    char buffer[4096];
    for (ssize_t n; (n = ::read(pipe_[0], buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
    return out;
  }

 private:
  int pipe_[2] = {-1, -1};
  int saved_ = -1;
};

}  // namespace psnic::test
