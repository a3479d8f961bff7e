#include "runtime/docker_http.h"

#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "runtime/docker.h"

namespace psnic {
namespace {

std::string lowercase_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

CURLcode init_libcurl_once() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return result;
}

Error connect_error(const std::string& socket, int errnum) {
  const char* text = strerrordesc_np(errnum);
  return Error(
      socket, errnum,
      "cannot connect to the docker daemon: " + lowercase_first(text ? text : "unknown error"));
}

bool is_version_refusal(const DockerResponse& r) {
  return r.status == 400 && daemon_message(r.body).rfind("client version ", 0) == 0;
}

}  // namespace

DockerHandle::DockerHandle(std::string socket, Kind kind, long timeout_ms, size_t max_body_bytes,
                           std::stop_token stop)
    : socket_(std::move(socket)),
      timeout_ms_(timeout_ms),
      max_body_bytes_(max_body_bytes),
      stop_(std::move(stop)) {
  const CURLcode init = init_libcurl_once();
  if (init != CURLE_OK)
    throw Error(socket_, EIO,
                "cannot initialise libcurl: " + lowercase_first(curl_easy_strerror(init)));
  curl_ = curl_easy_init();
  if (!curl_) throw Error(socket_, ENOMEM, "cannot create a libcurl handle");
  try {
    configure(kind, timeout_ms);
  } catch (...) {
    curl_easy_cleanup(curl_);
    throw;
  }
}

DockerHandle::~DockerHandle() {
  // The easy handle is removed from the multi after each request; the multi goes first, with the
  // connection it kept.
  multi_.reset();
  curl_easy_cleanup(curl_);
}

void DockerHandle::configure(Kind kind, long timeout_ms) {
  auto set = [&](CURLoption option, auto value, const char* what) {
    const CURLcode rc = curl_easy_setopt(curl_, option, value);
    if (rc != CURLE_OK)
      throw Error(
          socket_, EINVAL,
          std::string("libcurl refuses ") + what + ": " + lowercase_first(curl_easy_strerror(rc)));
  };
  set(CURLOPT_UNIX_SOCKET_PATH, socket_.c_str(), "the unix socket path");
  // Never a proxy, whatever http_proxy/ALL_PROXY say: the daemon is on the socket.
  set(CURLOPT_PROXY, "", "disabling proxies");
  set(CURLOPT_NOPROXY, "*", "disabling proxies");
  set(CURLOPT_FOLLOWLOCATION, 0L, "disabling redirects");
#if LIBCURL_VERSION_NUM >= 0x075500
  set(CURLOPT_PROTOCOLS_STR, "http", "restricting protocols");
#else
  set(CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP), "restricting protocols");
#endif
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1), "HTTP/1.1");
  set(CURLOPT_NOSIGNAL, 1L, "no signals");  // timeouts without SIGALRM: thread-safe
  if (kind == Kind::kRequest) {
    set(CURLOPT_TIMEOUT_MS, timeout_ms, "the timeout");
    set(CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, DockerClient::kConnectTimeoutMs),
        "the connect timeout");
  } else {
    // A stream has no end to wait for; its connection is of no use to another request.
    set(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms, "the connect timeout");
    set(CURLOPT_FORBID_REUSE, 1L, "closing the connection after the stream");
  }
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_body_bytes_), "the size limit");
  set(CURLOPT_HEADERFUNCTION, &DockerHandle::on_header, "the header callback");
  set(CURLOPT_HEADERDATA, static_cast<void*>(this), "the header callback");
  set(CURLOPT_WRITEFUNCTION, &DockerHandle::on_body, "the write callback");
  set(CURLOPT_WRITEDATA, static_cast<void*>(this), "the write callback");
  set(CURLOPT_ERRORBUFFER, errbuf_, "the error buffer");
  set(CURLOPT_USERAGENT, "psnic-agent", "the user agent");
}

// libcurl rejects what is not an HTTP/1.x head itself (a status line of another protocol, a
// header line without a colon); this bounds its size and notes where it ends. Trailers of a
// chunked body come through here too, after the head.
size_t DockerHandle::on_header(char* data, size_t size, size_t count, void* user) {
  auto* self = static_cast<DockerHandle*>(user);
  const size_t n = size * count;
  if (self->head_complete_) return n;
  self->head_bytes_ += n;
  if (self->head_bytes_ > kMaxHeadBytes) {
    self->head_too_large_ = true;
    return 0;  // anything but n aborts the transfer
  }
  const std::string_view line(data, n);
  if (line == "\r\n" || line == "\n") {
    long status = 0;
    curl_easy_getinfo(self->curl_, CURLINFO_RESPONSE_CODE, &status);
    self->head_complete_ = status >= 200;  // not an interim 1xx head
    self->head_bytes_ = 0;
  }
  return n;
}

size_t DockerHandle::on_body(char* data, size_t size, size_t count, void* user) {
  auto* self = static_cast<DockerHandle*>(user);
  const size_t n = size * count;
  if (n > self->max_body_bytes_ - self->body_.size()) {
    self->body_too_large_ = true;
    return 0;
  }
  self->body_.append(data, n);
  return n;
}

void DockerHandle::prepare(std::string path, std::string_view query) {
  // An empty path would make libcurl connect to TCP localhost:80 instead.
  if (socket_.empty()) throw connect_error(socket_, ENOENT);
  if (socket_.size() >= sizeof(sockaddr_un::sun_path)) throw connect_error(socket_, ENAMETOOLONG);
  path_ = std::move(path);
  body_.clear();
  head_bytes_ = 0;
  head_complete_ = head_too_large_ = body_too_large_ = stopped_ = false;
  errbuf_[0] = '\0';
  const std::string url = "http://localhost" + path_ + std::string(query);
  const CURLcode rc = curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  if (rc != CURLE_OK)
    throw request_error(EINVAL,
                        "libcurl refuses the URL: " + lowercase_first(curl_easy_strerror(rc)));
}

DockerResponse DockerHandle::perform(std::string path) {
  prepare(std::move(path));
  check_finished(transfer());
  return take_response();
}

CURLcode DockerHandle::transfer() {
  if (stop_.stop_requested()) {
    stopped_ = true;
    return CURLE_ABORTED_BY_CALLBACK;
  }
  if (!multi_) multi_.reset(curl_multi_init());
  if (!multi_) return CURLE_OUT_OF_MEMORY;
  if (curl_multi_add_handle(multi_.get(), curl_) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode result = CURLE_OK;
  for (bool done = false; !done;) {
    int running = 0;
    if (curl_multi_perform(multi_.get(), &running) != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      result = message->data.result;
      done = true;
    }
    if (done) break;
    // libcurl's own timeouts (CURLOPT_TIMEOUT_MS) still apply; this only adds the stop.
    if (stop_.stop_requested()) {
      stopped_ = true;
      result = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    curl_multi_poll(multi_.get(), nullptr, 0, kStopCheckMs, nullptr);
  }
  curl_multi_remove_handle(multi_.get(), curl_);
  return result;
}

DockerResponse DockerHandle::response_head() const {
  DockerResponse r;
  r.path = path_;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
  struct curl_header* header = nullptr;
  if (curl_easy_header(curl_, "Api-Version", 0, CURLH_HEADER, -1, &header) == CURLHE_OK)
    r.api_version = header->value;
  return r;
}

DockerResponse DockerHandle::take_response() {
  DockerResponse r = response_head();
  r.body = take_body();
  return r;
}

std::string DockerHandle::take_body() { return std::exchange(body_, std::string()); }

bool DockerHandle::header_contains(const char* name, std::string_view value) const {
  struct curl_header* header = nullptr;
  return curl_easy_header(curl_, name, 0, CURLH_HEADER, -1, &header) == CURLHE_OK &&
         std::string_view(header->value).find(value) != std::string_view::npos;
}

void DockerHandle::check_finished(CURLcode rc) const {
  if (rc != CURLE_OK) throw transport_error(rc);
  if (!head_complete_) throw request_error(EPROTO, "connection closed before the response head");
}

Error DockerHandle::request_error(int errnum, const std::string& cause) const {
  return Error(socket_, errnum, "GET " + path_ + ": " + cause);
}

Error DockerHandle::timed_out(long timeout_ms) const {
  return request_error(ETIMEDOUT, "no answer within " + std::to_string(timeout_ms) + " ms");
}

Error DockerHandle::stopped() const {
  return request_error(ECANCELED, "given up: the agent is stopping");
}

Error DockerHandle::transport_error(CURLcode rc) const {
  if (stopped_) return stopped();
  if (head_too_large_)
    return request_error(
        EMSGSIZE, "response head larger than " + std::to_string(kMaxHeadBytes >> 10) + " KiB");
  if (body_too_large_ || rc == CURLE_FILESIZE_EXCEEDED)
    return request_error(EMSGSIZE,
                         "response larger than " + std::to_string(max_body_bytes_ >> 20) + " MiB");
  if (rc == CURLE_OPERATION_TIMEDOUT) return timed_out(timeout_ms_);
  long os_errno = 0;
  curl_easy_getinfo(curl_, CURLINFO_OS_ERRNO, &os_errno);
  // curl's own text would name "localhost port 80"; the errno says what happened.
  if (rc == CURLE_COULDNT_CONNECT)
    return connect_error(socket_, os_errno ? static_cast<int>(os_errno) : ECONNREFUSED);
  const std::string detail = failure_text(rc);
  // What libcurl refuses as HTTP: another protocol's greeting, a header line without a colon, a
  // status that is not three digits.
  if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_WEIRD_SERVER_REPLY)
    return request_error(EPROTO, "not an HTTP/1.x response: " + detail);
  return request_error(os_errno ? static_cast<int>(os_errno) : EIO, detail);
}

std::string DockerHandle::failure_text(CURLcode rc) const {
  std::string detail = errbuf_[0] ? errbuf_ : curl_easy_strerror(rc);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  return lowercase_first(printable(detail));
}

Error http_error(const std::string& socket, const DockerResponse& r) {
  std::string cause = "GET " + r.path + ": HTTP " + std::to_string(r.status);
  const std::string message = daemon_message(r.body);
  if (!message.empty()) cause += ": " + printable(message);
  return Error(socket, EPROTO, cause);
}

DockerResponse ApiVersionNegotiation::get(const std::string& path, const Send& ping,
                                          const Send& send) {
  if (!version_) negotiate(ping);
  DockerResponse r = send(versioned(path));
  if (!is_version_refusal(r)) return r;
  // The daemon changed under us (upgrade, downgrade): ask again, once.
  const std::string refused = *version_;
  negotiate(ping);
  if (*version_ == refused) version_ = "";  // its own version refused: unversioned paths
  return send(versioned(path));
}

void ApiVersionNegotiation::learn(const DockerResponse& pong) {
  version_ = choose_api_version(pong.api_version);
}

const std::string& ApiVersionNegotiation::spoken() const {
  static const std::string none;
  return version_ ? *version_ : none;
}

void ApiVersionNegotiation::negotiate(const Send& ping) {
  const DockerResponse pong = ping("/_ping");
  if (pong.status != 200) throw http_error(socket_, pong);
  learn(pong);
}

std::string ApiVersionNegotiation::versioned(const std::string& path) const {
  return (version_->empty() ? "" : "/v" + *version_) + path;
}

}  // namespace psnic
