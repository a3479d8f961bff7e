#include "runtime/docker_events.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "resolver/cgroup.h"
#include "runtime/docker.h"
#include "runtime/docker_http.h"

namespace psnic {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// What the subscription asks for: the events that change which containers run, and under which
// names.
constexpr std::string_view kFilters =
    R"({"type":["container"],"event":["start","rename","die","destroy"]})";

bool is_blank(std::string_view text) { return text.find_first_not_of(" \t\r") == text.npos; }

// The milliseconds left until `deadline`, rounded up; 0 once it has passed.
long ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max<long>(0, left.count());
}

}  // namespace

EventStreamParser::EventStreamParser(std::string stream) : stream_(std::move(stream)) {}

void EventStreamParser::fail(const std::string& cause) const {
  throw Error(stream_, EBADMSG, "event stream: " + cause);
}

std::vector<ContainerEvent> EventStreamParser::feed(std::string_view bytes) {
  std::vector<ContainerEvent> events;
  for (;;) {
    const size_t newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    if (piece.size() > kMaxMessageBytes - message_.size())
      fail("a message larger than " + std::to_string(kMaxMessageBytes >> 20) + " MiB");
    message_.append(piece);
    if (newline == bytes.npos) return events;
    bytes.remove_prefix(newline + 1);
    take_message(message_, events);
    message_.clear();
  }
}

void EventStreamParser::end() const {
  if (!is_blank(message_)) fail("the stream ended inside a message");
}

void EventStreamParser::take_message(std::string_view text,
                                     std::vector<ContainerEvent>& events) const {
  if (is_blank(text)) return;
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    fail("malformed JSON at byte " + std::to_string(e.byte));
  } catch (const json::exception&) {
    fail("malformed JSON");
  }
  if (!doc.is_object()) fail("an event is not a JSON object");

  // The string at a JSON pointer ("/Actor/ID"): "" when absent or null.
  auto string_at = [&](const char* pointer) -> std::string {
    const json::json_pointer at(pointer);
    if (!doc.contains(at) || doc.at(at).is_null()) return "";
    if (!doc.at(at).is_string()) {
      std::string path(pointer + 1);
      std::replace(path.begin(), path.end(), '/', '.');
      fail(path + " is not a string");
    }
    return doc.at(at).get<std::string>();
  };

  // Type came with API 1.22 (Docker 1.10); an event without it is read as a container's.
  const std::string type = string_at("/Type");
  if (!type.empty() && type != "container") return;
  ContainerEvent event;
  event.action = string_at("/Action");
  if (event.action.empty()) event.action = string_at("/status");
  if (event.action.empty()) fail("a container event without Action");
  event.id = string_at("/Actor/ID");
  if (event.id.empty()) event.id = string_at("/id");
  if (!is_full_container_id(event.id))
    fail("container event id \"" + printable(event.id) + "\" is not a 64-hex container id");
  event.name = string_at("/Actor/Attributes/name");
  events.push_back(std::move(event));
}

// GET /events on a libcurl multi handle whose sockets and timeout are watched by an epoll
// instance of its own, fd(): libcurl tells through its callbacks what to wait for, and step()
// lets it act on what is ready.
class DockerEvents::Transfer {
 public:
  Transfer(const std::string& socket, std::string path, long connect_timeout_ms,
           std::stop_token stop)
      : handle_(socket, DockerHandle::Kind::kStream, connect_timeout_ms,
                DockerClient::kMaxResponseBytes, std::move(stop)) {
    char* query =
        curl_easy_escape(handle_.curl(), kFilters.data(), static_cast<int>(kFilters.size()));
    if (!query) throw Error(socket, ENOMEM, "cannot encode the event filters");
    const std::string filters = std::string("?filters=") + query;
    curl_free(query);
    handle_.prepare(std::move(path), filters);
    if (!epoll_.valid() || !timer_.valid() || !pending_.valid()) throw system_error(socket, errno);
    watch(timer_.get(), EPOLLIN);
    watch(pending_.get(), EPOLLIN);
    if (!multi_) throw Error(socket, ENOMEM, "cannot create a libcurl multi handle");
    check(curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &Transfer::on_socket));
    check(curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, static_cast<void*>(this)));
    check(curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &Transfer::on_timer));
    check(curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, static_cast<void*>(this)));
    // Sets libcurl's first timeout, at once: the connect happens in the first step().
    check(curl_multi_add_handle(multi_.get(), handle_.curl()));
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  // Closes the connection there and then: nothing waits for the daemon.
  ~Transfer() { curl_multi_remove_handle(multi_.get(), handle_.curl()); }

  int fd() const { return epoll_.get(); }
  DockerHandle& handle() { return handle_; }
  bool done() const { return done_; }
  CURLcode result() const { return result_; }

  // Keeps fd() readable for what was read but not handed over yet, or no longer.
  void set_pending() {
    const uint64_t one = 1;
    (void)!write(pending_.get(), &one, sizeof one);
  }
  void clear_pending() {
    uint64_t count;
    (void)!read(pending_.get(), &count, sizeof count);
  }

  // Waits up to `timeout_ms` (0: not at all) for what libcurl waits for, and lets it act on
  // what is ready. Whether anything was.
  bool step(int timeout_ms) {
    epoll_event ready[8];
    const int n = epoll_wait(epoll_.get(), ready, std::size(ready), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return true;
      throw system_error(handle_.socket(), errno);
    }
    bool acted = false;
    for (int i = 0; i < n; ++i) {
      const int fd = ready[i].data.fd;
      if (fd == pending_.get()) continue;  // the caller's to clear
      acted = true;
      if (fd == timer_.get()) {
        uint64_t expirations;
        (void)!read(fd, &expirations, sizeof expirations);
        act(CURL_SOCKET_TIMEOUT, 0);
      } else {
        const uint32_t e = ready[i].events;
        act(fd, ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                    ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0));
      }
    }
    return acted;
  }

  // Steps until the response head is in, by `deadline`; the 200 head, or the head of another
  // status with as much of its body (the daemon's message) as comes by the deadline. Waits in
  // short steps, to hear the handle's stop token.
  DockerResponse await_head(Clock::time_point deadline) {
    auto wait_step = [&] {
      if (handle_.stop_token().stop_requested()) throw handle_.stopped();
      step(static_cast<int>(std::min<long>(ms_until(deadline), DockerHandle::kStopCheckMs)));
    };
    while (!handle_.head_complete()) {
      if (done_) handle_.check_finished(result_);  // ended without a head: throws why
      if (ms_until(deadline) == 0) throw handle_.timed_out(kOpenTimeoutMs);
      wait_step();
    }
    const DockerResponse head = handle_.response_head();
    if (head.status == 200) return head;
    while (!done_ && ms_until(deadline) > 0) wait_step();
    return handle_.take_response();
  }

 private:
  struct MultiCleanup {
    void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
  };

  void watch(int fd, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) == 0) return;
    if (errno != ENOENT || epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0)
      throw system_error(handle_.socket(), errno);
  }

  void check(CURLMcode rc) const {
    if (rc != CURLM_OK)
      throw Error(handle_.socket(), EIO,
                  std::string("libcurl multi interface: ") + curl_multi_strerror(rc));
  }

  void act(curl_socket_t socket, int what) {
    int running = 0;
    const CURLMcode rc = curl_multi_socket_action(multi_.get(), socket, what, &running);
    // A socket libcurl closed since epoll_wait() reported it is no longer its.
    if (rc != CURLM_BAD_SOCKET) check(rc);
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      done_ = true;
      result_ = message->data.result;
    }
  }

  // libcurl's callbacks must not throw: a failure is returned as -1, which aborts the transfer.
  static int on_socket(CURL*, curl_socket_t socket, int what, void* user, void*) {
    auto* self = static_cast<Transfer*>(user);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_.get(), EPOLL_CTL_DEL, socket, nullptr);
      return 0;
    }
    try {
      self->watch(socket, ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                              ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u));
      return 0;
    } catch (const Error&) {
      return -1;
    }
  }

  static int on_timer(CURLM*, long timeout_ms, void* user) {
    auto* self = static_cast<Transfer*>(user);
    itimerspec when{};  // all zero: disarmed, for -1
    if (timeout_ms >= 0) {
      when.it_value.tv_sec = timeout_ms / 1000;
      // 0 means at once, which timerfd spells as the shortest time there is.
      when.it_value.tv_nsec = timeout_ms == 0 ? 1 : (timeout_ms % 1000) * 1000000;
    }
    return timerfd_settime(self->timer_.get(), 0, &when, nullptr) == 0 ? 0 : -1;
  }

  DockerHandle handle_;
  Fd epoll_{epoll_create1(EPOLL_CLOEXEC)};
  Fd timer_{timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)};
  Fd pending_{eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  // Last: its cleanup still calls on_socket(), which uses epoll_.
  std::unique_ptr<CURLM, MultiCleanup> multi_{curl_multi_init()};
  bool done_ = false;
  CURLcode result_ = CURLE_OK;
};

DockerEvents::DockerEvents(std::string socket, std::string api_version,
                           std::unique_ptr<Transfer> transfer)
    : socket_(std::move(socket)),
      api_version_(std::move(api_version)),
      transfer_(std::move(transfer)),
      parser_(socket_) {}

DockerEvents::~DockerEvents() = default;
DockerEvents::DockerEvents(DockerEvents&&) noexcept = default;
DockerEvents& DockerEvents::operator=(DockerEvents&&) noexcept = default;

int DockerEvents::fd() const { return transfer_->fd(); }

DockerEvents DockerEvents::open(const std::string& socket_path, std::stop_token stop) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(kOpenTimeoutMs);
  // A timeout of 0 would be none at all for libcurl.
  auto time_left = [&] { return std::max(1L, ms_until(deadline)); };
  std::unique_ptr<Transfer> transfer;
  const ApiVersionNegotiation::Send ping = [&](const std::string& path) {
    DockerHandle handle(socket_path, DockerHandle::Kind::kRequest, time_left(),
                        DockerClient::kMaxResponseBytes, stop);
    return handle.perform(path);
  };
  const ApiVersionNegotiation::Send subscribe = [&](const std::string& path) {
    transfer = std::make_unique<Transfer>(socket_path, path, time_left(), stop);
    return transfer->await_head(deadline);
  };
  ApiVersionNegotiation version(socket_path);
  const DockerResponse head = version.get("/events", ping, subscribe);
  if (head.status != 200) throw http_error(socket_path, head);
  if (!transfer->handle().header_contains("Transfer-Encoding", "chunked"))
    throw transfer->handle().request_error(EPROTO, "the response is not chunked");
  // Events that came with the head, or the end of the stream, are read already.
  if (transfer->handle().has_body() || transfer->done()) transfer->set_pending();
  return DockerEvents(socket_path, version.spoken(), std::move(transfer));
}

std::vector<ContainerEvent> DockerEvents::drain(bool& closed) {
  std::vector<ContainerEvent> events;
  auto take_body = [&] {
    for (ContainerEvent& e : parser_.feed(transfer_->handle().take_body()))
      events.push_back(std::move(e));
  };
  // Bounded, so that a flooding daemon does not hold the agent's loop: what is left keeps fd()
  // readable.
  constexpr int kMaxSteps = 64;
  if (!closed_) {
    transfer_->clear_pending();
    int steps = 0;
    while (!transfer_->done() && steps < kMaxSteps && transfer_->step(0)) {
      ++steps;
      take_body();
    }
    take_body();
    if (transfer_->done()) {
      closed_ = true;
      end_of_stream();
    } else if (steps == kMaxSteps) {
      transfer_->set_pending();
    }
  }
  closed = closed_;
  return events;
}

void DockerEvents::end_of_stream() const {
  const CURLcode rc = transfer_->result();
  if (rc == CURLE_OK) return parser_.end();  // the daemon ended the response
  // libcurl decoding the chunked framing fails as a receive error with no errno behind it.
  long os_errno = 0;
  curl_easy_getinfo(transfer_->handle().curl(), CURLINFO_OS_ERRNO, &os_errno);
  if ((rc == CURLE_RECV_ERROR && os_errno == 0) || rc == CURLE_BAD_CONTENT_ENCODING)
    throw Error(socket_, EBADMSG, "event stream: " + transfer_->handle().failure_text(rc));
  // Otherwise the connection broke, or the daemon closed it mid-response: dockerd stopped.
}

}  // namespace psnic
