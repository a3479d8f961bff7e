#pragma once

// The Docker Engine API event stream (GET /events), so that the agent learns of container
// starts, renames and stops as they happen instead of at its next poll. It goes through the same
// libcurl transport as DockerClient (docker.h): one API version negotiation, one error format.
//
// How a stream that never ends meets the agent's epoll loop: through libcurl's multi socket
// interface, driven from drain(), not from a thread of its own. fd() is an epoll instance that
// holds what libcurl asks to wait for (its socket, and a timerfd for its timeouts) plus an
// eventfd for what was read but not yet handed over. drain() runs curl_multi_socket_action on
// what is ready, which never blocks. This is the simpler design to get right here: no second
// thread to stop or join, no lock, no buffer between threads that a flooding daemon could grow
// (libcurl reads only when the loop drains, the socket buffer being the back pressure), and
// destroying a subscription is closing a socket, at once whatever the daemon does.

#include <cstddef>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace psnic {

struct ContainerEvent {
  std::string action;  // "start", "die", "rename", "destroy", ...: the JSON Action (or status)
  std::string id;      // full 64-hex container id: Actor.ID (or id)
  std::string name;    // Actor.Attributes.name (after a rename, the new name), or ""
  bool operator==(const ContainerEvent&) const = default;
};

// An incremental parser of the body of a GET /events response, as libcurl hands it over with the
// chunked transfer coding removed: a sequence of JSON objects, each ended by a newline. Read
// boundaries and message boundaries are unrelated (a message may span reads, a read may hold
// several messages), and feed() takes the bytes as they come, split anywhere.
//
// Both shapes of the daemons in use are read: API 1.41 (Docker 20.10) sends the deprecated
// "status"/"id"/"from" beside "Type"/"Action"/"Actor"; API 1.52 (Docker 29) only the latter.
// Events of other types (network, image, volume...) are skipped; container events of any action
// are returned. Throws Error(EBADMSG) naming the stream on malformed JSON, on a container event
// without a valid id or action, and on a message above kMaxMessageBytes; after an error the
// parser is of no further use.
class EventStreamParser {
 public:
  static constexpr size_t kMaxMessageBytes = size_t{1} << 20;

  // `stream` is the object named by errors (DockerEvents passes its socket path).
  explicit EventStreamParser(std::string stream);

  // The container events completed by `bytes`, in stream order.
  std::vector<ContainerEvent> feed(std::string_view bytes);

  // The daemon ended the response here: throws Error(EBADMSG) when that is inside a message.
  void end() const;

 private:
  void take_message(std::string_view text, std::vector<ContainerEvent>& events) const;
  [[noreturn]] void fail(const std::string& cause) const;

  std::string stream_;
  std::string message_;  // the message read so far, without its newline
};

// A subscription to the container events start, rename, die and destroy of one Docker daemon:
// a unix-socket connection carrying the response to
//   GET /v<version>/events?filters=<URL-encoded filters>, the filters being
//   {"type":["container"],"event":["start","rename","die","destroy"]}
// Only events that happen after open() are delivered; whatever happened while no subscription
// was open is lost, so a caller that (re)subscribes lists the running containers afterwards.
//
// The API version is negotiated by DockerClient's code: GET /_ping, then the daemon's Api-Version
// capped at kDockerApiNewest; if the daemon refuses that version, it is asked again, and if it
// refuses its own, unversioned paths.
//
// Not thread-safe. Movable; a moved-from subscription may only be destroyed or assigned to.
class DockerEvents {
 public:
  // The bound on open(): connecting, the requests (GET /_ping, GET /events) and their heads.
  static constexpr int kOpenTimeoutMs = 2000;

  // Connects and subscribes. Throws Error (one line, "<socket>: <cause>", as DockerClient's)
  // when the socket is absent or refuses the connection (the connect errno), on ETIMEDOUT, when
  // the daemon answers other than 200 (EPROTO, with the daemon's message), when the response is
  // not a chunked HTTP/1.1 one (EPROTO), or on a response head above 64 KiB (EMSGSIZE). Returns
  // once the response head is read; body bytes that came with it are kept for drain(), and fd()
  // is readable for them, so EPOLLIN on fd() covers every event. Gives up (ECANCELED) soon after
  // `stop` is requested.
  static DockerEvents open(const std::string& socket_path = "/var/run/docker.sock",
                           std::stop_token stop = {});

  ~DockerEvents();
  DockerEvents(DockerEvents&&) noexcept;
  DockerEvents& operator=(DockerEvents&&) noexcept;

  // For epoll: readable (EPOLLIN, level-triggered or edge-triggered) when drain() has work.
  int fd() const;
  const std::string& socket_path() const { return socket_; }
  // The API version spoken ("1.41"), or "" for unversioned paths.
  const std::string& api_version() const { return api_version_; }

  // Reads what is available without blocking (a bounded amount per call, so that a flooding
  // daemon cannot hold the caller's loop: fd() stays readable for the rest) and returns the
  // complete container events.
  // Sets `closed` when the daemon ended the stream or the connection broke (dockerd stopped or
  // restarted): the subscription is then over and the caller opens a new one later. Throws Error
  // (EBADMSG, naming the socket) on malformed data (JSON, or chunked framing libcurl cannot
  // decode); the subscription is then of no further use.
  std::vector<ContainerEvent> drain(bool& closed);

 private:
  class Transfer;  // the GET /events request and the libcurl multi handle driving it
  DockerEvents(std::string socket, std::string api_version, std::unique_ptr<Transfer> transfer);
  // The transfer ended: throws when that was on malformed data.
  void end_of_stream() const;

  std::string socket_;
  std::string api_version_;
  std::unique_ptr<Transfer> transfer_;
  EventStreamParser parser_;
  bool closed_ = false;
};

}  // namespace psnic
