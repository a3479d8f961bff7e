#pragma once

// The one HTTP transport to the Docker daemon, for runtime/ only: DockerClient's single requests
// and DockerEvents' never-ending GET /events both go through libcurl easy handles configured here,
// negotiate the API version here, and report failures here, in one format:
//   "<socket>: cannot connect to the docker daemon: <connect errno>"
//   "<socket>: GET <path>: <cause>"  (ETIMEDOUT, EMSGSIZE, EPROTO for a bad head or HTTP status)

#include <curl/curl.h>

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.h"

namespace psnic {

// What a request got: status, the header the negotiation needs, and the body as far as read.
struct DockerResponse {
  std::string path;  // as requested, with its version prefix, without the query
  long status = 0;
  std::string body;
  std::string api_version;  // the Api-Version header, "" when absent
};

// One libcurl easy handle speaking HTTP/1.1 to the daemon on a unix socket: never a proxy
// (whatever http_proxy says), never a redirect, http only, no signals. The response head is
// bounded by kMaxHeadBytes and must be HTTP/1.x; the body is kept up to `max_body_bytes`.
// A blocking request gives up within kStopCheckMs of `stop` being requested (ECANCELED), so that
// a thread stuck on a hung daemon can be stopped. Not movable: libcurl's callbacks point at it.
class DockerHandle {
 public:
  static constexpr size_t kMaxHeadBytes = size_t{64} << 10;
  // How often a blocking request, waiting for the daemon, looks at its stop token.
  static constexpr int kStopCheckMs = 20;

  enum class Kind {
    kRequest,  // the whole exchange within `timeout_ms`, the connection kept alive
    kStream,   // only the connect within `timeout_ms`; the caller bounds the wait for the head
  };

  DockerHandle(std::string socket, Kind kind, long timeout_ms, size_t max_body_bytes,
               std::stop_token stop = {});
  ~DockerHandle();
  DockerHandle(const DockerHandle&) = delete;
  DockerHandle& operator=(const DockerHandle&) = delete;

  const std::string& socket() const { return socket_; }
  CURL* curl() const { return curl_; }
  const std::stop_token& stop_token() const { return stop_; }

  // Makes the handle's next transfer GET <path><query>, forgetting the last response. Throws
  // the connect error of a socket path that cannot be one.
  void prepare(std::string path, std::string_view query = "");
  // prepare() and one blocking request: the response, whatever its status; throws
  // transport_error() when there is none.
  DockerResponse perform(std::string path);

  // Whether the final response head (status >= 200) has been read.
  bool head_complete() const { return head_complete_; }
  // The response so far, without its body.
  DockerResponse response_head() const;
  // The same with the body read so far, which is moved out: a stream's is taken piece by piece.
  DockerResponse take_response();
  std::string take_body();
  bool has_body() const { return !body_.empty(); }
  bool header_contains(const char* name, std::string_view value) const;

  // The transfer ended with `rc`: throws transport_error() unless rc is CURLE_OK and the head
  // was read.
  void check_finished(CURLcode rc) const;
  Error transport_error(CURLcode rc) const;
  // libcurl's own words on why a transfer failed, made one line.
  std::string failure_text(CURLcode rc) const;
  // "<socket>: GET <path>: <cause>".
  Error request_error(int errnum, const std::string& cause) const;
  Error timed_out(long timeout_ms) const;
  // ECANCELED: the request was given up because `stop` was requested.
  Error stopped() const;

 private:
  static size_t on_header(char* data, size_t size, size_t count, void* self);
  static size_t on_body(char* data, size_t size, size_t count, void* self);
  void configure(Kind kind, long timeout_ms);
  // curl_easy_perform, but on a multi handle polled in short waits, so that `stop` is heard.
  CURLcode transfer();

  struct MultiCleanup {
    void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
  };

  std::string socket_;
  long timeout_ms_;
  size_t max_body_bytes_;
  std::stop_token stop_;
  CURL* curl_ = nullptr;
  // Holds the kept-alive connection between requests; made at the first one.
  std::unique_ptr<CURLM, MultiCleanup> multi_;
  char errbuf_[CURL_ERROR_SIZE] = {};
  // Of the current request.
  std::string path_;
  std::string body_;
  size_t head_bytes_ = 0;
  bool head_complete_ = false;
  bool head_too_large_ = false;
  bool body_too_large_ = false;
  bool stopped_ = false;
};

// EPROTO: "<socket>: GET <path>: HTTP <status>: <the daemon's message, made one line>".
Error http_error(const std::string& socket, const DockerResponse& response);

// The Engine API version spoken to one daemon. No single version is accepted by every daemon in
// use: 20.10 serves at most 1.41, while 29.0 refuses anything below 1.44. So, as the docker CLI
// does, before the first versioned request GET /_ping (unversioned) is asked, and the daemon's
// Api-Version capped at kDockerApiNewest is spoken. A request refused with "client version ...
// is too old/new" (the daemon was upgraded or downgraded meanwhile) renegotiates and is sent once
// more; if the daemon's own version was the one refused, unversioned paths are used.
class ApiVersionNegotiation {
 public:
  // Sends GET <path> and returns the response whatever its status; throws on no response.
  using Send = std::function<DockerResponse(const std::string& path)>;

  // `socket` is the object named by errors.
  explicit ApiVersionNegotiation(std::string socket) : socket_(std::move(socket)) {}

  // GET of an API path ("/containers/json") at the negotiated version, through `send`;
  // negotiating first (through `ping`) when no version is known yet.
  DockerResponse get(const std::string& path, const Send& ping, const Send& send);
  // A GET /_ping answered elsewhere (DockerClient::available()) settles the version too.
  void learn(const DockerResponse& pong);

  bool negotiated() const { return version_.has_value(); }
  // "1.41", or "" before the negotiation or when speaking unversioned paths.
  const std::string& spoken() const;

 private:
  void negotiate(const Send& ping);
  std::string versioned(const std::string& path) const;

  std::string socket_;
  std::optional<std::string> version_;  // "" for unversioned paths; nullopt until negotiated
};

}  // namespace psnic
