#pragma once

// The Docker Engine API event stream (GET /events), so that the agent learns of container
// starts, renames and stops as they happen instead of at its next poll. DockerClient (docker.h)
// answers single requests through libcurl; a stream that never ends needs a socket of its own
// that an epoll loop can wait on, so this speaks the little HTTP/1.1 it needs itself.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"

namespace psnic {

struct ContainerEvent {
  std::string action;  // "start", "die", "rename", "destroy", ...: the JSON Action (or status)
  std::string id;      // full 64-hex container id: Actor.ID (or id)
  std::string name;    // Actor.Attributes.name (after a rename, the new name), or ""
  bool operator==(const ContainerEvent&) const = default;
};

// An incremental parser of the body of a GET /events response: chunked transfer coding whose
// data is a sequence of JSON objects, each ended by a newline. Chunk boundaries and message
// boundaries are unrelated (a message may span chunks, a chunk may hold several messages), and
// feed() takes the bytes as they come, split anywhere.
//
// Both shapes of the daemons in use are read: API 1.41 (Docker 20.10) sends the deprecated
// "status"/"id"/"from" beside "Type"/"Action"/"Actor"; API 1.52 (Docker 29) only the latter.
// Events of other types (network, image, volume...) are skipped; container events of any action
// are returned. Throws Error(EBADMSG) naming the stream on malformed chunk framing or JSON, on a
// container event without a valid id or action, and on a message above kMaxMessageBytes; after
// an error the parser is of no further use.
class EventStreamParser {
 public:
  static constexpr size_t kMaxMessageBytes = size_t{1} << 20;

  // `stream` is the object named by errors (DockerEvents passes its socket path).
  explicit EventStreamParser(std::string stream);

  // The container events completed by `bytes`, in stream order.
  std::vector<ContainerEvent> feed(std::string_view bytes);

  // Whether the last chunk (size 0) and its trailer have been read: the daemon ended the
  // response. Bytes fed after that are ignored.
  bool finished() const { return state_ == State::kFinished; }

 private:
  enum class State { kSize, kData, kDataEnd, kTrailer, kFinished };

  void take_line(std::string_view line);
  void take_data(std::string_view data, std::vector<ContainerEvent>& events);
  void take_message(std::string_view text, std::vector<ContainerEvent>& events) const;
  [[noreturn]] void fail(const std::string& cause) const;

  std::string stream_;
  State state_ = State::kSize;
  std::string line_;        // a chunk-size or trailer line read so far, or the CRLF after data
  uint64_t remaining_ = 0;  // data bytes left in the current chunk
  std::string message_;     // the message read so far, without its newline
};

// A subscription to the container events start, rename, die and destroy of one Docker daemon:
// a non-blocking unix-socket connection carrying the response to
//   GET /v<version>/events?filters=<URL-encoded filters>, the filters being
//   {"type":["container"],"event":["start","rename","die","destroy"]}
// Only events that happen after open() are delivered; whatever happened while no subscription
// was open is lost, so a caller that (re)subscribes lists the running containers afterwards.
//
// The API version is negotiated as DockerClient does: GET /_ping, then the daemon's Api-Version
// capped at kDockerApiNewest; if the daemon refuses that version, unversioned paths.
//
// Not thread-safe. Movable; a moved-from subscription may only be destroyed or assigned to.
class DockerEvents {
 public:
  // The bound on open(): connecting, both requests and both response heads.
  static constexpr int kOpenTimeoutMs = 2000;

  // Connects and subscribes. Throws Error (one line, "<socket>: <cause>") when the socket is
  // absent or refuses the connection (the connect errno), on ETIMEDOUT, when the daemon answers
  // other than 200 (EPROTO, with the daemon's message), or when the response is not a chunked
  // HTTP/1.1 one (EPROTO). Returns once the response head is read; no body byte has been read
  // yet, so EPOLLIN on fd() covers every event.
  static DockerEvents open(const std::string& socket_path = "/var/run/docker.sock");

  DockerEvents(DockerEvents&&) noexcept = default;
  DockerEvents& operator=(DockerEvents&&) noexcept = default;

  // For epoll: readable (EPOLLIN, level-triggered or edge-triggered) when drain() has work.
  int fd() const { return fd_.get(); }
  const std::string& socket_path() const { return socket_; }
  // The API version spoken ("1.41"), or "" for unversioned paths.
  const std::string& api_version() const { return api_version_; }

  // Reads all that is available without blocking and returns the complete container events.
  // Sets `closed` when the daemon ended the stream or the connection broke (dockerd stopped or
  // restarted): the subscription is then over and the caller opens a new one later. Throws Error
  // (EBADMSG, naming the socket) on malformed data; the subscription is then of no further use.
  std::vector<ContainerEvent> drain(bool& closed);

 private:
  DockerEvents(std::string socket, std::string api_version, Fd fd);

  std::string socket_;
  std::string api_version_;
  Fd fd_;
  EventStreamParser parser_;
  bool closed_ = false;
};

}  // namespace psnic
