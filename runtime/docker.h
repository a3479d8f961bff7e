#pragma once

// What the Docker daemon knows about a container (name, image, labels), from the Docker Engine
// API over its unix socket. The container id itself comes from /proc/PID/cgroup
// (resolver/cgroup.h); this adds the human-facing part of the metric labels.

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace psnic {

struct ContainerInfo {
  std::string id;                             // full 64-hex
  std::string name;                           // without the leading '/'
  std::string image;                          // Config.Image, as the container was created with
  std::map<std::string, std::string> labels;  // Config.Labels
  pid_t pid = 0;                              // State.Pid (0 when not running)
  bool host_network = false;                  // HostConfig.NetworkMode == "host"
  // HostConfig.NetworkMode: "bridge", "host", "none", "container:<id>" or a network name.
  // Daemons before 26.0 report a container on the default network as "default": it is reported
  // here as "bridge", what newer daemons say, so that the value does not depend on the daemon.
  std::string network_mode;

  // Kubernetes (dockershim, cri-dockerd), from the io.kubernetes.pod.name and
  // io.kubernetes.pod.namespace labels; empty otherwise.
  std::string pod() const;
  std::string pod_namespace() const;
};

// Parses the JSON of GET /containers/{id}/json (an object, not the array that `docker inspect`
// prints). Throws Error(EBADMSG) on malformed JSON, a missing or invalid Id, or a field used here
// with the wrong type; fields other than those above are ignored, and an absent or null field
// leaves its default.
ContainerInfo parse_container_json(std::string_view json);

// Parses the JSON of GET /containers/json: the full ids of the running containers. Throws
// Error(EBADMSG) on malformed JSON, an answer that is not an array of objects, or an Id that is
// not a 64-hex container id.
std::vector<std::string> parse_running_json(std::string_view json);

// The Engine API version to speak to a daemon whose newest is `daemon_version` (its Api-Version
// response header, "1.41"): that version, capped at kDockerApiNewest. Empty (speak unversioned
// paths, which a daemon serves at its own newest version) when `daemon_version` is not "M.N".
inline constexpr std::string_view kDockerApiNewest = "1.52";
std::string choose_api_version(std::string_view daemon_version);

// Text from outside (a daemon message, a caller's id) made fit for a one-line error: control
// characters become '?', and it is cut at 200 bytes, on a UTF-8 character boundary.
std::string printable(std::string_view text);

// The "message" of a Docker error body ({"message":"..."}), else the body itself.
std::string daemon_message(const std::string& body);

// Docker Engine API client over a unix socket. Not thread-safe: one per thread. Movable; a
// moved-from client may only be destroyed or assigned to.
//
// API version: no single version is accepted by every daemon in use: 20.10 serves at most 1.41,
// while 29.0 refuses anything below 1.44. So the client negotiates, as the docker CLI does (and
// DockerEvents, with the same code): before its first versioned request it asks GET /_ping
// (unversioned), then speaks the daemon's Api-Version capped at kDockerApiNewest (1.52, Docker
// 29.0's). Every field read here has kept its meaning from 1.24 up to 1.52. A request refused
// with "client version ... is too old/new" (the daemon was upgraded or downgraded under a
// running agent) renegotiates and is sent once more; if the daemon's own version was the one
// refused, unversioned paths are used.
//
// One libcurl easy handle is reused (the connection is kept alive). Redirects are never
// followed, proxy environment variables are ignored, response heads are limited to 64 KiB and
// bodies to kMaxResponseBytes, and each request has a 2 s total timeout (500 ms to connect).
class DockerClient {
 public:
  static constexpr long kTimeoutMs = 2000;
  static constexpr long kConnectTimeoutMs = 500;
  static constexpr size_t kMaxResponseBytes = size_t{4} << 20;

  // A request in progress gives up (ECANCELED) soon after `stop` is requested.
  explicit DockerClient(std::string socket_path = "/var/run/docker.sock",
                        std::stop_token stop = {});
  ~DockerClient();
  DockerClient(DockerClient&&) noexcept;
  DockerClient& operator=(DockerClient&&) noexcept;
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  const std::string& socket_path() const;
  // The API version negotiated ("1.41"), or "" before the first request or when speaking
  // unversioned paths.
  const std::string& api_version() const;

  // Whether the socket exists and the daemon answers GET /_ping within the timeout. Never throws.
  bool available();

  // GET /containers/{id}/json. nullopt when the daemon answers 404 "no such container"; throws
  // Error (one line: "<socket>: <cause>") on an id that is not is_container_id() (EINVAL),
  // transport failure (the connect errno, ETIMEDOUT, EMSGSIZE, EIO), a response that is not
  // HTTP/1.x and other HTTP errors (EPROTO), and malformed responses (EBADMSG).
  std::optional<ContainerInfo> inspect(std::string_view id);

  // GET /containers/json: the full ids of the running containers. Throws as inspect().
  std::vector<std::string> running();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace psnic
