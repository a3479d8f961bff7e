#include "runtime/docker.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/error.h"
#include "resolver/cgroup.h"
#include "runtime/docker_http.h"

namespace psnic {
namespace {

using nlohmann::json;

// The object named by parse errors; DockerClient replaces it with the socket and request.
constexpr const char* kParseObject = "container JSON";

Error bad_message(std::string cause) { return Error(kParseObject, EBADMSG, std::move(cause)); }

bool contains_nocase(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) {
                          return std::tolower(static_cast<unsigned char>(a)) ==
                                 std::tolower(static_cast<unsigned char>(b));
                        });
  return it != haystack.end();
}

json parse_json(std::string_view text) {
  try {
    return json::parse(text.data(), text.data() + text.size());
  } catch (const json::parse_error& e) {
    throw bad_message("malformed JSON at byte " + std::to_string(e.byte));
  } catch (const json::exception&) {
    throw bad_message("malformed JSON");
  }
}

// A member that is present and not null, or nullptr.
const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

const json* object_member(const json& object, const char* key, const std::string& path) {
  const json* m = member(object, key);
  if (m && !m->is_object()) throw bad_message(path + " is not an object");
  return m;
}

std::string string_member(const json& object, const char* key, const std::string& path) {
  const json* m = member(object, key);
  if (!m) return "";
  if (!m->is_string()) throw bad_message(path + " is not a string");
  return m->get<std::string>();
}

std::string label(const ContainerInfo& info, const std::string& key) {
  auto it = info.labels.find(key);
  return it == info.labels.end() ? "" : it->second;
}

// "M.N" with at most 4 digits each.
std::optional<std::pair<unsigned, unsigned>> parse_api_version(std::string_view v) {
  const size_t dot = v.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view digits) -> std::optional<unsigned> {
    if (digits.empty() || digits.size() > 4) return std::nullopt;
    unsigned n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    return n;
  };
  auto major = number(v.substr(0, dot));
  auto minor = number(v.substr(dot + 1));
  if (!major || !minor) return std::nullopt;
  return std::pair{*major, *minor};
}

}  // namespace

std::string printable(std::string_view text) {
  constexpr size_t kMax = 200;
  std::string out;
  for (char c : text.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (text.size() > kMax) {
    // Drop a multi-byte character the cut went through.
    auto byte = [&](size_t i) { return static_cast<unsigned char>(out[i]); };
    size_t lead = out.size();
    size_t continuation = 0;
    while (lead > 0 && continuation < 3 && (byte(lead - 1) & 0xc0) == 0x80) --lead, ++continuation;
    if (lead > 0 && byte(lead - 1) >= 0xc0) {
      const size_t needed = byte(lead - 1) >= 0xf0 ? 3 : byte(lead - 1) >= 0xe0 ? 2 : 1;
      if (continuation < needed) out.resize(lead - 1);
    }
    out += "...";
  }
  return out;
}

std::string daemon_message(const std::string& body) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object()) {
    auto it = doc.find("message");
    if (it != doc.end() && it->is_string()) return it->get<std::string>();
  }
  return body;
}

std::string ContainerInfo::pod() const { return label(*this, "io.kubernetes.pod.name"); }

std::string ContainerInfo::pod_namespace() const {
  return label(*this, "io.kubernetes.pod.namespace");
}

std::string choose_api_version(std::string_view daemon_version) {
  auto daemon = parse_api_version(daemon_version);
  if (!daemon) return "";
  const auto chosen = std::min(*daemon, *parse_api_version(kDockerApiNewest));
  return std::to_string(chosen.first) + "." + std::to_string(chosen.second);
}

ContainerInfo parse_container_json(std::string_view text) {
  const json doc = parse_json(text);
  if (!doc.is_object()) throw bad_message("not a JSON object");

  ContainerInfo info;
  info.id = string_member(doc, "Id", "Id");
  if (info.id.empty()) throw bad_message("no Id");
  if (!is_full_container_id(info.id))
    throw bad_message("Id \"" + printable(info.id) + "\" is not a 64-hex container id");

  info.name = string_member(doc, "Name", "Name");
  if (!info.name.empty() && info.name.front() == '/') info.name.erase(0, 1);

  if (const json* config = object_member(doc, "Config", "Config")) {
    info.image = string_member(*config, "Image", "Config.Image");
    if (const json* labels = object_member(*config, "Labels", "Config.Labels")) {
      for (const auto& [key, value] : labels->items()) {
        if (!value.is_string())
          throw bad_message("Config.Labels[\"" + printable(key) + "\"] is not a string");
        info.labels.emplace(key, value.get<std::string>());
      }
    }
  }

  if (const json* state = object_member(doc, "State", "State")) {
    if (const json* pid = member(*state, "Pid")) {
      if (!pid->is_number_unsigned() || pid->get<uint64_t>() > static_cast<uint64_t>(INT_MAX))
        throw bad_message("State.Pid is not a process id");
      info.pid = static_cast<pid_t>(pid->get<uint64_t>());
    }
  }

  if (const json* host_config = object_member(doc, "HostConfig", "HostConfig")) {
    info.network_mode = string_member(*host_config, "NetworkMode", "HostConfig.NetworkMode");
    // API < 1.44 daemons (before Docker 26) say "default" for the default bridge network.
    if (info.network_mode == "default") info.network_mode = "bridge";
    info.host_network = info.network_mode == "host";
  }
  return info;
}

std::vector<std::string> parse_running_json(std::string_view text) {
  const json doc = parse_json(text);
  if (!doc.is_array()) throw bad_message("not a JSON array");
  std::vector<std::string> ids;
  for (const json& entry : doc) {
    if (!entry.is_object()) throw bad_message("an entry is not an object");
    std::string id = string_member(entry, "Id", "Id");
    if (!is_full_container_id(id))
      throw bad_message("Id \"" + printable(id) + "\" is not a 64-hex container id");
    ids.push_back(std::move(id));
  }
  return ids;
}

struct DockerClient::Impl {
  Impl(std::string socket_path, std::stop_token stop)
      : handle(std::move(socket_path), DockerHandle::Kind::kRequest, kTimeoutMs, kMaxResponseBytes,
               std::move(stop)),
        version(handle.socket()) {}

  DockerResponse get(const std::string& path) { return handle.perform(path); }

  // GET of an API path ("/containers/json") at the negotiated version.
  DockerResponse api_get(const std::string& path) {
    const ApiVersionNegotiation::Send send = [this](const std::string& p) { return get(p); };
    return version.get(path, send, send);
  }

  // Re-throws a parse error of a response as this socket's, naming the request.
  [[noreturn]] void rethrow_bad_response(const Error& e, const DockerResponse& r) const {
    const std::string what = e.what();
    const std::string prefix = e.object() + ": ";
    const std::string cause = what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
    throw Error(handle.socket(), e.errnum(), "GET " + r.path + ": bad response: " + cause);
  }

  DockerHandle handle;
  ApiVersionNegotiation version;
};

DockerClient::DockerClient(std::string socket_path, std::stop_token stop)
    : impl_(std::make_unique<Impl>(std::move(socket_path), std::move(stop))) {}
DockerClient::~DockerClient() = default;
DockerClient::DockerClient(DockerClient&&) noexcept = default;
DockerClient& DockerClient::operator=(DockerClient&&) noexcept = default;

const std::string& DockerClient::socket_path() const { return impl_->handle.socket(); }

const std::string& DockerClient::api_version() const { return impl_->version.spoken(); }

bool DockerClient::available() {
  struct stat st {};
  if (stat(socket_path().c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  try {
    const DockerResponse r = impl_->get("/_ping");
    if (r.status != 200) return false;
    if (!impl_->version.negotiated()) impl_->version.learn(r);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::optional<ContainerInfo> DockerClient::inspect(std::string_view id) {
  if (!is_container_id(id))
    throw Error(socket_path(), EINVAL,
                "not a container id (12 to 64 lowercase hex digits): \"" + printable(id) + "\"");
  const DockerResponse r = impl_->api_get("/containers/" + std::string(id) + "/json");
  if (r.status == 404 && contains_nocase(daemon_message(r.body), "no such container"))
    return std::nullopt;
  if (r.status != 200) throw http_error(socket_path(), r);
  ContainerInfo info;
  try {
    info = parse_container_json(r.body);
  } catch (const Error& e) {
    impl_->rethrow_bad_response(e, r);
  }
  // Docker looks a container up by full id, then by name, then by id prefix: a prefix that is
  // also some container's name finds that container.
  if (info.id.compare(0, id.size(), id) != 0)
    throw Error(socket_path(), EPROTO,
                "GET " + r.path + ": the daemon answered for container " + info.id +
                    " (a container named " + std::string(id) + "?)");
  return info;
}

std::vector<std::string> DockerClient::running() {
  const DockerResponse r = impl_->api_get("/containers/json");
  if (r.status != 200) throw http_error(socket_path(), r);
  try {
    return parse_running_json(r.body);
  } catch (const Error& e) {
    impl_->rethrow_bad_response(e, r);
  }
}

}  // namespace psnic
