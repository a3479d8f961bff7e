#include "runtime/docker_events.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "runtime/docker.h"
#include "resolver/cgroup.h"
#include "base/error.h"

namespace psnic {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// What the subscription asks for: the events that change which containers run, and under which
// names.
constexpr std::string_view kFilters =
    R"({"type":["container"],"event":["start","rename","die","destroy"]})";

// A chunk-size line with its extensions, or a trailer line: a few bytes from any real daemon.
constexpr size_t kMaxLineBytes = 4096;
constexpr size_t kMaxHeadBytes = size_t{64} << 10;
// Of an error response, only the daemon's message is wanted.
constexpr size_t kMaxErrorBodyBytes = size_t{64} << 10;

bool is_blank(std::string_view text) { return text.find_first_not_of(" \t\r") == text.npos; }

bool equals_nocase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string_view trimmed(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == text.npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// RFC 3986: everything but the unreserved characters as %XX.
std::string percent_encoded(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

// "chunk-size [BWS ; chunk-ext]": the hexadecimal size; extensions (none is defined for this
// response) are skipped. nullopt unless well-formed and below 2^64.
std::optional<uint64_t> parse_chunk_size(std::string_view line) {
  uint64_t size = 0;
  const char* end = line.data() + line.size();
  const auto [digits_end, error] = std::from_chars(line.data(), end, size, 16);
  if (error != std::errc() || digits_end == line.data()) return std::nullopt;
  const std::string_view rest = trimmed(std::string_view(digits_end, end - digits_end));
  if (!rest.empty() && rest.front() != ';') return std::nullopt;
  return size;
}

// An Error of the socket whose cause is `what` and strerror(errnum):
// "/var/run/docker.sock: GET /_ping: connection reset by peer".
Error socket_error(const std::string& socket, const std::string& what, int errnum) {
  return Error(socket, errnum, system_error(what, errnum).what());
}

struct ResponseHead {
  int status = 0;
  std::string api_version;  // the Api-Version header, "" when absent
  bool chunked = false;     // Transfer-Encoding: chunked
  std::optional<size_t> content_length;
};

// The status line and the headers used here; nullopt unless the text is an HTTP/1.x head.
std::optional<ResponseHead> parse_response_head(std::string_view text) {
  size_t line_end = text.find("\r\n");
  const std::string_view status_line = text.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
      !std::isdigit(static_cast<unsigned char>(status_line[7])) || status_line[8] != ' ')
    return std::nullopt;
  ResponseHead head;
  const auto [status_end, error] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, head.status);
  if (error != std::errc() || status_end != status_line.data() + 12 || head.status < 100 ||
      (status_line.size() > 12 && status_line[12] != ' '))
    return std::nullopt;

  while (line_end != text.npos && line_end + 2 < text.size()) {
    const size_t start = line_end + 2;
    line_end = text.find("\r\n", start);
    const std::string_view line = text.substr(start, line_end - start);
    if (line.empty()) break;  // the end of the head
    const size_t colon = line.find(':');
    if (colon == line.npos) return std::nullopt;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trimmed(line.substr(colon + 1));
    if (equals_nocase(name, "Api-Version")) {
      head.api_version = value;
    } else if (equals_nocase(name, "Transfer-Encoding")) {
      head.chunked = equals_nocase(value, "chunked");
    } else if (equals_nocase(name, "Content-Length")) {
      size_t length = 0;
      const auto [end, bad] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (bad == std::errc() && end == value.data() + value.size()) head.content_length = length;
    }
  }
  return head;
}

// One GET on a connection of its own (Connection: close), within the deadline of
// DockerEvents::open(). Errors name the socket and the request.
class Exchange {
 public:
  // Connects and sends "GET <path><query>".
  Exchange(const std::string& socket, Clock::time_point deadline, std::string path,
           std::string_view query = "")
      : socket_(socket), deadline_(deadline), request_("GET " + std::move(path)) {
    connect_socket();
    const std::string text = request_ + std::string(query) +
                             " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: psnic-agent\r\n"
                             "Connection: close\r\n\r\n";
    for (size_t sent = 0; sent < text.size();) {
      const ssize_t n = send(fd_.get(), text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
      if (n >= 0) {
        sent += static_cast<size_t>(n);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait(POLLOUT);
      } else if (errno != EINTR) {
        throw socket_error(socket_, request_, errno);
      }
    }
  }

  // Reads the response head, and not one byte more: what follows is the event stream, which
  // DockerEvents::drain() reads when epoll says so.
  ResponseHead read_head() {
    std::string head;
    char buffer[4096];
    for (;;) {
      wait(POLLIN);
      const ssize_t peeked = recv(fd_.get(), buffer, sizeof buffer, MSG_PEEK);
      if (peeked == 0)
        throw Error(socket_, EPROTO, request_ + ": connection closed before the response head");
      if (peeked < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        throw socket_error(socket_, request_, errno);
      }
      const size_t before = head.size();
      head.append(buffer, static_cast<size_t>(peeked));
      const size_t end = head.find("\r\n\r\n", before < 3 ? 0 : before - 3);
      const size_t take = end == head.npos ? static_cast<size_t>(peeked) : end + 4 - before;
      head.resize(before + take);
      // The bytes were peeked and no one else reads this socket: they are there.
      if (recv(fd_.get(), buffer, take, 0) != static_cast<ssize_t>(take))
        throw Error(socket_, EIO, request_ + ": lost the peeked response head");
      if (end != head.npos) break;
      if (head.size() > kMaxHeadBytes)
        throw Error(socket_, EMSGSIZE,
                    request_ + ": response head larger than " +
                        std::to_string(kMaxHeadBytes >> 10) + " KiB");
    }
    std::optional<ResponseHead> parsed = parse_response_head(head);
    if (!parsed)
      throw Error(socket_, EPROTO,
                  request_ + ": not an HTTP/1.x response: \"" +
                      printable(head.substr(0, head.find("\r\n"))) + "\"");
    return *parsed;
  }

  // The daemon's message in the body of a response other than 200, read up to its length, the
  // end of the connection, 64 KiB or the deadline, whichever comes first.
  std::string error_message(const ResponseHead& head) {
    return daemon_message(read_error_body(head));
  }

  Error http_error(const ResponseHead& head, const std::string& message) const {
    std::string cause = request_ + ": HTTP " + std::to_string(head.status);
    if (!message.empty()) cause += ": " + printable(message);
    return Error(socket_, EPROTO, cause);
  }

  // "GET /v1.41/events", without the query.
  const std::string& request() const { return request_; }
  Fd release() { return std::move(fd_); }

 private:
  void connect_socket() {
    const std::string what = "cannot connect to the docker daemon";
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_.empty()) throw socket_error(socket_, what, ENOENT);
    if (socket_.size() >= sizeof address.sun_path) throw socket_error(socket_, what, ENAMETOOLONG);
    socket_.copy(address.sun_path, socket_.size());
    fd_ = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.valid()) throw socket_error(socket_, what, errno);
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
    // A non-blocking connect to a unix socket fails with EAGAIN while the listener's backlog is
    // full (there is no EINPROGRESS to poll for): try again until the deadline.
    while (connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) throw socket_error(socket_, what, errno);
      if (Clock::now() >= deadline_) throw socket_error(socket_, what, ETIMEDOUT);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Waits until the socket is ready for `events`; ETIMEDOUT at the deadline.
  void wait(short events) {
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_.get(), events, 0};
      const int n = poll(&p, 1, static_cast<int>(left.count()));
      if (n > 0) return;  // also on POLLHUP or POLLERR: the next send or recv says what it is
      if (n < 0 && errno != EINTR) throw socket_error(socket_, request_, errno);
    }
    throw Error(
        socket_, ETIMEDOUT,
        request_ + ": no answer within " + std::to_string(DockerEvents::kOpenTimeoutMs) + " ms");
  }

  std::string read_error_body(const ResponseHead& head) {
    const size_t limit =
        std::min(head.content_length.value_or(kMaxErrorBodyBytes), kMaxErrorBodyBytes);
    std::string body;
    char buffer[4096];
    try {
      while (body.size() < limit) {
        wait(POLLIN);
        const ssize_t n = recv(fd_.get(), buffer, std::min(sizeof buffer, limit - body.size()), 0);
        if (n == 0) break;
        if (n > 0) {
          body.append(buffer, static_cast<size_t>(n));
        } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
          break;
        }
      }
    } catch (const Error&) {
      // The deadline: the status alone makes the error.
    }
    return body;
  }

  std::string socket_;
  Clock::time_point deadline_;
  std::string request_;
  Fd fd_;
};

// GET /_ping: the API version to speak, as DockerClient chooses it.
std::string negotiate(const std::string& socket, Clock::time_point deadline) {
  Exchange ping(socket, deadline, "/_ping");
  const ResponseHead head = ping.read_head();
  if (head.status != 200) throw ping.http_error(head, ping.error_message(head));
  return choose_api_version(head.api_version);
}

}  // namespace

EventStreamParser::EventStreamParser(std::string stream) : stream_(std::move(stream)) {}

void EventStreamParser::fail(const std::string& cause) const {
  throw Error(stream_, EBADMSG, "event stream: " + cause);
}

std::vector<ContainerEvent> EventStreamParser::feed(std::string_view bytes) {
  std::vector<ContainerEvent> events;
  while (!bytes.empty() && state_ != State::kFinished) {
    if (state_ == State::kData) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
      take_data(bytes.substr(0, n), events);
      bytes.remove_prefix(n);
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::kDataEnd;
    } else if (state_ == State::kDataEnd) {
      // The CRLF that ends a chunk's data; anything else means the size was wrong.
      if (bytes.front() != "\r\n"[line_.size()]) fail("chunk data not ended by CRLF");
      line_ += bytes.front();
      bytes.remove_prefix(1);
      if (line_.size() == 2) {
        line_.clear();
        state_ = State::kSize;
      }
    } else {
      const size_t newline = bytes.find('\n');
      line_.append(bytes.substr(0, newline));
      if (line_.size() > kMaxLineBytes)
        fail("chunk line longer than " + std::to_string(kMaxLineBytes) + " bytes");
      if (newline == bytes.npos) break;
      bytes.remove_prefix(newline + 1);
      if (line_.empty() || line_.back() != '\r') fail("chunk line not ended by CRLF");
      line_.pop_back();
      take_line(line_);
      line_.clear();
    }
  }
  if (state_ == State::kFinished && !is_blank(message_)) fail("the stream ended inside a message");
  return events;
}

void EventStreamParser::take_line(std::string_view line) {
  if (state_ == State::kTrailer) {
    // Trailer fields (none expected) are skipped; an empty line ends the response.
    if (line.empty()) state_ = State::kFinished;
    return;
  }
  const std::optional<uint64_t> size = parse_chunk_size(line);
  if (!size) fail("bad chunk size \"" + printable(line) + "\"");
  remaining_ = *size;
  state_ = remaining_ == 0 ? State::kTrailer : State::kData;
}

void EventStreamParser::take_data(std::string_view data, std::vector<ContainerEvent>& events) {
  for (;;) {
    const size_t newline = data.find('\n');
    const std::string_view piece = data.substr(0, newline);
    if (piece.size() > kMaxMessageBytes - message_.size())
      fail("a message larger than " + std::to_string(kMaxMessageBytes >> 20) + " MiB");
    message_.append(piece);
    if (newline == data.npos) return;
    data.remove_prefix(newline + 1);
    take_message(message_, events);
    message_.clear();
  }
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

DockerEvents::DockerEvents(std::string socket, std::string api_version, Fd fd)
    : socket_(std::move(socket)),
      api_version_(std::move(api_version)),
      fd_(std::move(fd)),
      parser_(socket_) {}

DockerEvents DockerEvents::open(const std::string& socket_path) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(kOpenTimeoutMs);

  std::string version = negotiate(socket_path, deadline);
  const std::string query = "?filters=" + percent_encoded(kFilters);
  for (;;) {
    Exchange events(socket_path, deadline, (version.empty() ? "" : "/v" + version) + "/events",
                    query);
    const ResponseHead head = events.read_head();
    if (head.status == 200) {
      if (!head.chunked)
        throw Error(socket_path, EPROTO, events.request() + ": the response is not chunked");
      return DockerEvents(socket_path, version, events.release());
    }
    const std::string message = events.error_message(head);
    // A daemon that refuses its own version capped at kDockerApiNewest (its oldest is newer than
    // that) is spoken to unversioned, as DockerClient does.
    if (head.status != 400 || message.rfind("client version ", 0) != 0 || version.empty())
      throw events.http_error(head, message);
    version.clear();
  }
}

std::vector<ContainerEvent> DockerEvents::drain(bool& closed) {
  std::vector<ContainerEvent> events;
  char buffer[16384];
  while (!closed_) {
    const ssize_t n = recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n > 0) {
      std::vector<ContainerEvent> more = parser_.feed({buffer, static_cast<size_t>(n)});
      events.insert(events.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
      closed_ = parser_.finished();
    } else if (n == 0) {
      closed_ = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      closed_ = true;  // ECONNRESET and the like: the daemon went away
    }
  }
  closed = closed_;
  return events;
}

}  // namespace psnic
