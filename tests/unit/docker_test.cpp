// The Docker Engine API client, without Docker: parse_container_json on responses recorded from
// dockerd 20.10 (API 1.41), and DockerClient against a fake daemon on a unix socket in /tmp that
// answers as Docker does (version prefixes, 404 bodies, Api-Version header) or misbehaves.
#include "runtime/docker.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "resolver/cgroup.h"
#include "base/error.h"
#include "runtime/docker_events.h"
#include "tests/support/fake_docker.h"
#include "tests/support/unix_server.h"

namespace psnic {
namespace {

using test::FakeDocker;

// GET /v1.41/containers/<id>/json of `docker run -d --label psnictest.key=value
// psnic-test:latest sleep 3600` on dockerd 20.10.24, trimmed of fields no one reads here (paths
// under /var/lib/docker, GraphDriver, most of HostConfig); the rest is as recorded.
constexpr std::string_view kRunning = R"json({
  "Id": "7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343",
  "Created": "2026-11-26T12:09:41.486867011Z",
  "Path": "sleep",
  "Args": ["3600"],
  "State": {
    "Status": "running", "Running": true, "Paused": false, "Restarting": false,
    "OOMKilled": false, "Dead": false, "Pid": 10374, "ExitCode": 0, "Error": "",
    "StartedAt": "2026-11-26T12:09:41.67412267Z", "FinishedAt": "0001-01-01T00:00:00Z"
  },
  "Image": "sha256:a49aa15cc0d7f46fc27fcfc8c5d44a7c203d945e2f88e4efe8516c56cf6ca943",
  "Name": "/psnictest-cap1",
  "RestartCount": 0,
  "Driver": "overlay2",
  "Platform": "linux",
  "HostConfig": {
    "Binds": null, "ContainerIDFile": "", "NetworkMode": "default", "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": false,
    "CgroupnsMode": "host", "IpcMode": "private", "PidMode": "", "Privileged": false,
    "Runtime": "runc"
  },
  "Mounts": [],
  "Config": {
    "Hostname": "7e04d157a96f", "Domainname": "", "User": "", "AttachStdin": false,
    "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
    "StdinOnce": false, "Env": null, "Cmd": ["sleep", "3600"], "Image": "psnic-test:latest",
    "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
    "Labels": {"psnictest.key": "value"}
  },
  "NetworkSettings": {
    "Bridge": "",
    "SandboxID": "6a3d10b93c7ab803c09702c9c457a96b19fbfc1761fc1ee9f50fe993a2c82c24",
    "SandboxKey": "/var/run/docker/netns/6a3d10b93c7a",
    "Gateway": "172.17.0.1", "IPAddress": "172.17.0.2", "IPPrefixLen": 16,
    "MacAddress": "02:42:ac:11:00:02",
    "Networks": {
      "bridge": {
        "IPAMConfig": null, "Links": null, "Aliases": null,
        "NetworkID": "b080f3b1515f8b395bebced4615a439aa3fb07335e9092a1cdc1208fe061acaa",
        "EndpointID": "e6a32bc6fbf9094e71131ebb053cb3874c6a531fc602439da242b537f34e1129",
        "Gateway": "172.17.0.1", "IPAddress": "172.17.0.2", "IPPrefixLen": 16,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "MacAddress": "02:42:ac:11:00:02", "DriverOpts": null
      }
    }
  }
})json";

constexpr std::string_view kRunningId =
    "7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343";

// The recorded container as dockershim / cri-dockerd would have made it (hand-edited): an
// application container of pod shop/web-0, in its sandbox's network namespace.
constexpr std::string_view kKubernetes = R"json({
  "Id": "3f1c9a0d2b7e44c58e0f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f",
  "Created": "2026-11-26T12:09:41.486867011Z",
  "Path": "nginx",
  "Args": ["-g", "daemon off;"],
  "State": {
    "Status": "running", "Running": true, "Paused": false, "Restarting": false,
    "OOMKilled": false, "Dead": false, "Pid": 28304, "ExitCode": 0, "Error": "",
    "StartedAt": "2026-11-26T12:09:41.67412267Z", "FinishedAt": "0001-01-01T00:00:00Z"
  },
  "Image": "sha256:a49aa15cc0d7f46fc27fcfc8c5d44a7c203d945e2f88e4efe8516c56cf6ca943",
  "Name": "/k8s_nginx_web-0_shop_0b9e6f3c-5a2d-4c1e-9f8a-7d6c5b4a3e21_0",
  "RestartCount": 0,
  "Driver": "overlay2",
  "Platform": "linux",
  "HostConfig": {
    "Binds": null, "ContainerIDFile": "",
    "NetworkMode": "container:9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544",
    "PortBindings": null, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    "AutoRemove": false, "CgroupnsMode": "host",
    "IpcMode": "container:9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544",
    "PidMode": "", "Privileged": false, "Runtime": "runc"
  },
  "Mounts": [],
  "Config": {
    "Hostname": "web-0", "Domainname": "", "User": "0", "AttachStdin": false,
    "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
    "StdinOnce": false, "Env": ["KUBERNETES_SERVICE_HOST=10.96.0.1"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Image": "registry.example.com/shop/nginx@sha256:0d7f46fc27fcfc8c5d44a7c203d945e2f88e4efe8516c56cf6ca943a49aa15cc",
    "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
    "Labels": {
      "annotation.io.kubernetes.container.hash": "5a1b2c3d",
      "annotation.io.kubernetes.container.restartCount": "0",
      "io.kubernetes.container.logpath": "/var/log/pods/shop_web-0_0b9e6f3c-5a2d-4c1e-9f8a-7d6c5b4a3e21/nginx/0.log",
      "io.kubernetes.container.name": "nginx",
      "io.kubernetes.docker.type": "container",
      "io.kubernetes.pod.name": "web-0",
      "io.kubernetes.pod.namespace": "shop",
      "io.kubernetes.pod.uid": "0b9e6f3c-5a2d-4c1e-9f8a-7d6c5b4a3e21",
      "io.kubernetes.sandbox.id": "9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544"
    }
  },
  "NetworkSettings": {
    "Bridge": "", "SandboxID": "", "SandboxKey": "", "Gateway": "", "IPAddress": "",
    "IPPrefixLen": 0, "MacAddress": "", "Networks": {}
  }
})json";

// `s` with the one occurrence of `from` replaced (a variant of a recorded response).
std::string with(std::string_view s, std::string_view from, std::string_view to) {
  std::string out(s);
  const size_t at = out.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  EXPECT_EQ(out.find(from, at + 1), std::string::npos) << from;
  if (at != std::string::npos) out.replace(at, from.size(), to);
  return out;
}

// Runs `f`, which must throw psnic::Error; returns it.
template <typename F>
std::optional<Error> error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no psnic::Error thrown";
  return std::nullopt;
}

void expect_bad_message(std::string_view json, std::string_view expected_cause = "") {
  SCOPED_TRACE(std::string(json.substr(0, 80)));
  auto e = error_of([&] { parse_container_json(json); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errnum(), EBADMSG) << e->what();
  EXPECT_EQ(std::string(e->what()).find('\n'), std::string::npos) << e->what();
  if (!expected_cause.empty()) {
    EXPECT_NE(std::string(e->what()).find(expected_cause), std::string::npos) << e->what();
  }
}

TEST(DockerParseTest, RecordedRunningContainer) {
  const ContainerInfo info = parse_container_json(kRunning);
  EXPECT_EQ(info.id, kRunningId);
  EXPECT_EQ(info.name, "psnictest-cap1");
  EXPECT_EQ(info.image, "psnic-test:latest");
  EXPECT_EQ(info.labels, (std::map<std::string, std::string>{{"psnictest.key", "value"}}));
  EXPECT_EQ(info.pid, 10374);
  // dockerd 20.10 says "default" for the default bridge; 26.0 and later say "bridge".
  EXPECT_EQ(info.network_mode, "bridge");
  EXPECT_FALSE(info.host_network);
  EXPECT_EQ(info.pod(), "");
  EXPECT_EQ(info.pod_namespace(), "");
}

TEST(DockerParseTest, NewerDaemonsSayBridge) {
  const ContainerInfo info = parse_container_json(
      with(kRunning, R"("NetworkMode": "default")", R"("NetworkMode": "bridge")"));
  EXPECT_EQ(info.network_mode, "bridge");
  EXPECT_FALSE(info.host_network);
}

TEST(DockerParseTest, CompactAsTheApiSendsIt) {
  // The API sends one line without spaces; the recorded text above was indented for reading.
  std::string compact;
  bool in_string = false;
  for (size_t i = 0; i < kRunning.size(); ++i) {
    const char c = kRunning[i];
    if (c == '"' && (i == 0 || kRunning[i - 1] != '\\')) in_string = !in_string;
    if (in_string || (c != ' ' && c != '\n')) compact += c;
  }
  ASSERT_EQ(compact.find('\n'), std::string::npos);
  const ContainerInfo info = parse_container_json(compact);
  EXPECT_EQ(info.id, kRunningId);
  EXPECT_EQ(info.labels.at("psnictest.key"), "value");
}

TEST(DockerParseTest, KubernetesLabels) {
  const ContainerInfo info = parse_container_json(kKubernetes);
  EXPECT_EQ(info.name, "k8s_nginx_web-0_shop_0b9e6f3c-5a2d-4c1e-9f8a-7d6c5b4a3e21_0");
  EXPECT_EQ(info.pod(), "web-0");
  EXPECT_EQ(info.pod_namespace(), "shop");
  EXPECT_EQ(info.labels.at("io.kubernetes.container.name"), "nginx");
  EXPECT_EQ(info.labels.at("io.kubernetes.pod.uid"), "0b9e6f3c-5a2d-4c1e-9f8a-7d6c5b4a3e21");
  EXPECT_EQ(info.labels.size(), 9u);
  EXPECT_EQ(info.image,
            "registry.example.com/shop/"
            "nginx@sha256:0d7f46fc27fcfc8c5d44a7c203d945e2f88e4efe8516c56cf6ca943a49aa15cc");
  EXPECT_EQ(info.pid, 28304);
  EXPECT_EQ(info.network_mode,
            "container:9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544");
  EXPECT_FALSE(info.host_network);
}

TEST(DockerParseTest, PodNameWithoutNamespace) {
  const ContainerInfo info = parse_container_json(
      with(kRunning, R"("psnictest.key": "value")", R"("io.kubernetes.pod.name": "web-0")"));
  EXPECT_EQ(info.pod(), "web-0");
  EXPECT_EQ(info.pod_namespace(), "");
}

TEST(DockerParseTest, QuotesAndUnicode) {
  // Label text as dockerd 20.10 encodes it (raw UTF-8, \" and \t escapes, <>& unescaped),
  // and as other encoders may (\u escapes, a surrogate pair). Docker names are [a-zA-Z0-9_.-]
  // only, but the parser must not care.
  const std::string json =
      with(with(kRunning, R"("psnictest.key": "value")",
                R"("psnictest.quote": "say \"hi\" <b>&amp; ünïcödé ✓ tab\tend",)"
                R"( "psnictest.escaped": "caf\u00e9 \ud83d\ude00 back\\slash",)"
                R"( "ключ": "значение")"),
           R"("Name": "/psnictest-cap1")", R"("Name": "/caf\u00e9-\"q\"")");
  const ContainerInfo info = parse_container_json(json);
  EXPECT_EQ(info.name, "café-\"q\"");
  EXPECT_EQ(info.labels.at("psnictest.quote"), "say \"hi\" <b>&amp; ünïcödé ✓ tab\tend");
  EXPECT_EQ(info.labels.at("psnictest.escaped"), "café \xF0\x9F\x98\x80 back\\slash");
  EXPECT_EQ(info.labels.at("ключ"), "значение");
}

TEST(DockerParseTest, HostNetwork) {
  // As recorded from `docker run --network host`.
  const ContainerInfo info = parse_container_json(
      with(kRunning, R"("NetworkMode": "default")", R"("NetworkMode": "host")"));
  EXPECT_TRUE(info.host_network);
  EXPECT_EQ(info.network_mode, "host");
}

TEST(DockerParseTest, OtherNetworkModes) {
  for (const char* mode : {"none", "psnictest-net", "container:7e04d157a96f"}) {
    const ContainerInfo info = parse_container_json(with(
        kRunning, R"("NetworkMode": "default")", std::string(R"("NetworkMode": ")") + mode + "\""));
    EXPECT_EQ(info.network_mode, mode);
    EXPECT_FALSE(info.host_network) << mode;
  }
}

TEST(DockerParseTest, StoppedContainer) {
  // The State of an exited container, as recorded (Pid 0 once it is not running).
  const ContainerInfo stopped =
      parse_container_json(with(with(kRunning, R"("Status": "running", "Running": true)",
                                     R"("Status": "exited", "Running": false)"),
                                R"("Pid": 10374, "ExitCode": 0, "Error": "",
    "StartedAt": "2026-11-26T12:09:41.67412267Z", "FinishedAt": "0001-01-01T00:00:00Z")",
                                R"("Pid": 0, "ExitCode": 0, "Error": "",
    "StartedAt": "2026-11-26T12:10:18.022711033Z", "FinishedAt": "2026-11-26T12:10:19.025349348Z")"));
  EXPECT_EQ(stopped.pid, 0);
  EXPECT_EQ(stopped.name, "psnictest-cap1");
  EXPECT_EQ(stopped.labels.at("psnictest.key"), "value");
}

TEST(DockerParseTest, NullOrMissingFields) {
  EXPECT_TRUE(parse_container_json(
                  with(kRunning, R"("Labels": {"psnictest.key": "value"})", R"("Labels": null)"))
                  .labels.empty());
  EXPECT_TRUE(parse_container_json(
                  with(kRunning, R"("Labels": {"psnictest.key": "value"})", R"("Labels": {})"))
                  .labels.empty());
  const ContainerInfo bare = parse_container_json(
      R"({"Id":"7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343"})");
  EXPECT_EQ(bare.id, kRunningId);
  EXPECT_EQ(bare.name, "");
  EXPECT_EQ(bare.image, "");
  EXPECT_TRUE(bare.labels.empty());
  EXPECT_EQ(bare.pid, 0);
  EXPECT_EQ(bare.network_mode, "");
  EXPECT_FALSE(bare.host_network);
  const ContainerInfo nulls = parse_container_json(
      R"({"Id":"7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343","Name":null,)"
      R"("Config":null,"State":null,"HostConfig":null})");
  EXPECT_EQ(nulls.name, "");
  EXPECT_EQ(nulls.pid, 0);
}

TEST(DockerParseTest, MalformedJson) {
  expect_bad_message("", "malformed JSON at byte");
  expect_bad_message("{", "malformed JSON");
  expect_bad_message(kRunning.substr(0, kRunning.size() / 2), "malformed JSON");
  expect_bad_message(std::string(kRunning) + " trailing", "malformed JSON");
  expect_bad_message("{\"Id\":\"\xff\xfe\"}", "malformed JSON");  // not UTF-8
  expect_bad_message("<html>502 Bad Gateway</html>", "malformed JSON");
  expect_bad_message("[]", "not a JSON object");
  expect_bad_message("null", "not a JSON object");
  expect_bad_message(
      R"([{"Id":"7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343"}])",
      "not a JSON object");  // what `docker inspect` prints, not the API
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_bad_message(deep, "not a JSON object");
}

TEST(DockerParseTest, MissingOrInvalidId) {
  expect_bad_message(
      with(kRunning, R"("Id": "7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343",)",
           ""),
      "no Id");
  expect_bad_message("{}", "no Id");
  expect_bad_message(R"({"Id":null})", "no Id");
  expect_bad_message(R"({"Id":""})", "no Id");
  expect_bad_message(R"({"Id":42})", "Id is not a string");
  expect_bad_message(R"({"Id":"7e04d157a96f"})", "not a 64-hex container id");
  expect_bad_message(R"({"Id":"7E04D157A96F04805BA17C74EE6A0528C967E5BAEB8837791F2353D2B2D67343"})",
                     "not a 64-hex container id");
  expect_bad_message(
      R"({"Id":"../../7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67"})",
      "not a 64-hex container id");
}

TEST(DockerParseTest, WrongTypes) {
  expect_bad_message(with(kRunning, R"("Name": "/psnictest-cap1")", R"("Name": 7)"),
                     "Name is not a string");
  expect_bad_message(with(kRunning, R"("Image": "psnic-test:latest")", R"("Image": ["x"])"),
                     "Config.Image is not a string");
  expect_bad_message(with(kRunning, R"({"psnictest.key": "value"})", R"(["psnictest.key=value"])"),
                     "Config.Labels is not an object");
  expect_bad_message(with(kRunning, R"("psnictest.key": "value")", R"("psnictest.key": 1)"),
                     "Config.Labels[\"psnictest.key\"] is not a string");
  expect_bad_message(with(kRunning, R"("NetworkMode": "default")", R"("NetworkMode": true)"),
                     "HostConfig.NetworkMode is not a string");
  expect_bad_message(with(kRunning, R"("Config": {)", R"("Config": "x", "Unused": {)"),
                     "Config is not an object");
  for (const char* pid : {"-1", "\"10374\"", "10374.5", "4294967296", "2147483648"})
    expect_bad_message(with(kRunning, R"("Pid": 10374)", std::string(R"("Pid": )") + pid),
                       "State.Pid is not a process id");
  EXPECT_EQ(parse_container_json(with(kRunning, R"("Pid": 10374)", R"("Pid": 2147483647)")).pid,
            2147483647);
}

TEST(DockerParseTest, IsContainerId) {
  EXPECT_TRUE(is_container_id(kRunningId));
  EXPECT_TRUE(is_container_id("7e04d157a96f"));
  EXPECT_FALSE(is_container_id("7e04d157a96"));                  // 11
  EXPECT_FALSE(is_container_id(std::string(kRunningId) + "0"));  // 65
  EXPECT_FALSE(is_container_id(""));
  EXPECT_FALSE(is_container_id("7E04D157A96F"));
  EXPECT_FALSE(is_container_id("7e04d157a96g"));
  EXPECT_FALSE(is_container_id("7e04d157a96f/../../x"));
  EXPECT_FALSE(is_container_id("psnictest-cap1"));
  EXPECT_FALSE(is_container_id(std::string("7e04d157a96f\0", 13)));
  // The rule the resolver's cgroup parser and Docker's events use: full ids only.
  EXPECT_TRUE(is_full_container_id(kRunningId));
  EXPECT_FALSE(is_full_container_id("7e04d157a96f"));
  EXPECT_FALSE(is_full_container_id(std::string(kRunningId).substr(1) + "G"));
}

TEST(DockerParseTest, ChooseApiVersion) {
  EXPECT_EQ(choose_api_version("1.41"), "1.41");  // dockerd 20.10
  EXPECT_EQ(choose_api_version("1.52"), "1.52");  // 29.0
  EXPECT_EQ(choose_api_version("1.53"), "1.52");
  EXPECT_EQ(choose_api_version("2.0"), "1.52");
  EXPECT_EQ(choose_api_version("1.9"), "1.9");
  EXPECT_EQ(choose_api_version("01.041"), "1.41");
  for (const char* bad : {"", "1", "1.", ".41", "v1.41", "1.41.0", "1.x", "12345.1", " 1.41"})
    EXPECT_EQ(choose_api_version(bad), "") << bad;
}

std::string inspect_path(std::string_view version, std::string_view id) {
  return std::string(version.empty() ? "" : "/v") + std::string(version) + "/containers/" +
         std::string(id) + "/json";
}

class DockerClientTest : public ::testing::Test {
 protected:
  void SetUp() override { fake.add_container(std::string(kRunningId), std::string(kRunning)); }

  // An Error from the client: one line, naming the socket.
  void expect_error(const std::optional<Error>& e, int errnum, std::string_view cause) {
    ASSERT_TRUE(e);
    const std::string what = e->what();
    EXPECT_EQ(e->errnum(), errnum) << what;
    EXPECT_EQ(e->object(), fake.path()) << what;
    EXPECT_EQ(what.rfind(fake.path() + ": ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find(cause), std::string::npos) << what;
  }

  FakeDocker fake;
};

TEST_F(DockerClientTest, InspectsAtTheDaemonsVersion) {
  DockerClient client(fake.path());
  EXPECT_EQ(client.socket_path(), fake.path());
  EXPECT_EQ(client.api_version(), "");
  const auto info = client.inspect(kRunningId);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->name, "psnictest-cap1");
  EXPECT_EQ(info->labels.at("psnictest.key"), "value");
  EXPECT_EQ(client.api_version(), "1.41");
  EXPECT_EQ(fake.requests(),
            (std::vector<std::string>{"/_ping", inspect_path("1.41", kRunningId)}));
}

TEST_F(DockerClientTest, ShortIdPrefix) {
  DockerClient client(fake.path());
  const auto info = client.inspect(kRunningId.substr(0, 12));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->id, kRunningId);
}

TEST_F(DockerClientTest, CapsTheVersionAtTheNewestKnown) {
  fake.set_versions("1.44", "1.53");  // a daemon newer than this client, as 29.0 refusing < 1.44
  DockerClient client(fake.path());
  ASSERT_TRUE(client.inspect(kRunningId));
  EXPECT_EQ(client.api_version(), kDockerApiNewest);
  EXPECT_EQ(fake.requests().back(), inspect_path(kDockerApiNewest, kRunningId));
}

TEST_F(DockerClientTest, RenegotiatesWhenTheDaemonIsUpgraded) {
  DockerClient client(fake.path());
  ASSERT_TRUE(client.inspect(kRunningId));
  EXPECT_EQ(client.api_version(), "1.41");
  fake.set_versions("1.44", "1.52");  // 20.10 replaced by 29.0 under a running agent
  ASSERT_TRUE(client.inspect(kRunningId));
  EXPECT_EQ(client.api_version(), "1.52");
  EXPECT_EQ(fake.requests(), (std::vector<std::string>{"/_ping", inspect_path("1.41", kRunningId),
                                                       inspect_path("1.41", kRunningId), "/_ping",
                                                       inspect_path("1.52", kRunningId)}));
  fake.set_versions("1.12", "1.41");  // and downgraded again
  EXPECT_EQ(client.running(), std::vector<std::string>{std::string(kRunningId)});
  EXPECT_EQ(client.api_version(), "1.41");
}

TEST_F(DockerClientTest, UnversionedWhenItsOwnVersionIsRefused) {
  fake.set_versions("1.60", "1.61");  // a daemon that dropped every version this client knows
  DockerClient client(fake.path());
  ASSERT_TRUE(client.inspect(kRunningId));
  EXPECT_EQ(client.api_version(), "");
  EXPECT_EQ(fake.requests(), (std::vector<std::string>{"/_ping", inspect_path("1.52", kRunningId),
                                                       "/_ping", inspect_path("", kRunningId)}));
  ASSERT_TRUE(client.inspect(kRunningId));  // and stays so
  EXPECT_EQ(fake.requests().back(), inspect_path("", kRunningId));
}

TEST_F(DockerClientTest, UnversionedWithoutApiVersionHeader) {
  fake.send_api_version(false);
  DockerClient client(fake.path());
  ASSERT_TRUE(client.inspect(kRunningId));
  EXPECT_EQ(fake.requests().back(), inspect_path("", kRunningId));
}

TEST_F(DockerClientTest, KeepsTheConnectionAlive) {
  DockerClient client(fake.path());
  EXPECT_TRUE(client.available());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client.inspect(kRunningId));
  EXPECT_EQ(client.running().size(), 1u);
  EXPECT_EQ(fake.requests().size(), 5u);  // available()'s ping negotiated the version
  EXPECT_EQ(fake.connections(), 1);
}

TEST_F(DockerClientTest, UnknownContainerIsNullopt) {
  DockerClient client(fake.path());
  EXPECT_EQ(client.inspect(std::string(64, 'a')), std::nullopt);
  EXPECT_EQ(client.inspect("0123456789ab"), std::nullopt);
}

TEST_F(DockerClientTest, NotFoundThatIsNotAboutTheContainerThrows) {
  // A 404 for the route itself (not Docker on that socket, or a route it lacks) is no answer
  // about the container.
  fake.raw(inspect_path("", kRunningId), {404, R"({"message":"page not found"})"});
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.inspect(kRunningId); }), EPROTO,
               "GET " + inspect_path("1.41", kRunningId) + ": HTTP 404: page not found");
}

TEST_F(DockerClientTest, HttpErrorIsOneLine) {
  fake.raw("/containers/json",
           {500, R"({"message":"Cannot connect to containerd:\nconnection refused"})"});
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.running(); }), EPROTO,
               "GET /v1.41/containers/json: HTTP 500: Cannot connect to containerd:?connection "
               "refused");
}

TEST_F(DockerClientTest, NonJsonErrorBody) {
  fake.raw("/containers/json", {502, "<html>bad gateway</html>"});
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.running(); }), EPROTO, "HTTP 502: <html>bad gateway</html>");
}

TEST_F(DockerClientTest, InvalidIdIsRefusedBeforeAnyRequest) {
  DockerClient client(fake.path());
  for (std::string_view id :
       {std::string_view("../../_ping"), std::string_view("7E04D157A96F"),
        std::string_view("7e04d157a96"), std::string_view("psnictest-cap1"),
        std::string_view("7e04d157a96f?all=1"), std::string_view("7e04d157a96f\n")}) {
    expect_error(error_of([&] { client.inspect(id); }), EINVAL, "not a container id");
  }
  expect_error(error_of([&] { client.inspect(std::string(kRunningId) + "0"); }), EINVAL,
               "not a container id");
  EXPECT_TRUE(fake.requests().empty());
  EXPECT_EQ(fake.connections(), 0);
}

TEST_F(DockerClientTest, AnswerForAnotherContainerThrows) {
  // Docker matches names before id prefixes: a container named "7e04d157a96f" would answer.
  fake.raw(inspect_path("", "7e04d157a96f"),
           {200, with(kRunning, "7e04d157a96f04805ba17c74ee6a0528c967e5baeb8837791f2353d2b2d67343",
                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")});
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.inspect("7e04d157a96f"); }), EPROTO,
               "the daemon answered for container 0123456789abcdef");
}

TEST_F(DockerClientTest, MalformedResponse) {
  fake.raw(inspect_path("", kRunningId), {200, std::string(kRunning.substr(0, 100))});
  fake.raw("/containers/json", {200, R"([{"Id":"psnictest"}])"});
  DockerClient client(fake.path());
  expect_error(
      error_of([&] { client.inspect(kRunningId); }), EBADMSG,
      "GET " + inspect_path("1.41", kRunningId) + ": bad response: malformed JSON at byte");
  expect_error(error_of([&] { client.running(); }), EBADMSG,
               "GET /v1.41/containers/json: bad response: Id \"psnictest\" is not a 64-hex");
}

TEST_F(DockerClientTest, RefusesOversizedResponses) {
  const std::string huge = std::string(DockerClient::kMaxResponseBytes + 1, ' ') + "{}";
  fake.raw(inspect_path("", kRunningId), {200, huge});  // with Content-Length
  fake.raw("/containers/json", FakeDocker::Reply::until_close(200, huge));
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.inspect(kRunningId); }), EMSGSIZE,
               "response larger than 4 MiB");
  expect_error(error_of([&] { client.running(); }), EMSGSIZE, "response larger than 4 MiB");
  // Exactly at the limit is fine.
  std::string list = R"([{"Id":")" + std::string(kRunningId) + R"("}])";
  list.insert(1, DockerClient::kMaxResponseBytes - list.size(), ' ');
  fake.raw("/containers/json", FakeDocker::Reply::until_close(200, list));
  EXPECT_EQ(client.running().size(), 1u);
}

TEST_F(DockerClientTest, RefusesOversizedHeads) {
  // The same transport and bound as DockerEvents'.
  FakeDocker::Reply big(200, R"([])");
  big.headers = "X-Big: " + std::string(70000, 'x') + "\r\n";
  fake.raw("/containers/json", big);
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.running(); }), EMSGSIZE,
               "GET /v1.41/containers/json: response head larger than 64 KiB");
}

TEST_F(DockerClientTest, NotHttpIsAProtocolError) {
  FakeDocker::Reply no_colon(200, R"([])");
  no_colon.headers = "no colon here\r\n";
  fake.raw("/containers/json", no_colon);
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.running(); }), EPROTO,
               "GET /v1.41/containers/json: not an HTTP/1.x response");
}

TEST_F(DockerClientTest, TimesOut) {
  fake.raw(inspect_path("", kRunningId), FakeDocker::Reply::hanging());
  DockerClient client(fake.path());
  const auto start = std::chrono::steady_clock::now();
  expect_error(error_of([&] { client.inspect(kRunningId); }), ETIMEDOUT,
               "GET " + inspect_path("1.41", kRunningId) + ": no answer within 2000 ms");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(DockerClient::kTimeoutMs - 100));
  EXPECT_LT(elapsed, std::chrono::milliseconds(DockerClient::kTimeoutMs + 1500));
  // A timed-out request leaves the client usable.
  EXPECT_TRUE(client.running().size() == 1);
}

// What lets the agent stop while its runtime thread waits on a hung daemon: a stop request ends
// the request in progress well within its timeout, and makes later ones fail at once.
TEST_F(DockerClientTest, AHungRequestIsGivenUpWhenStopped) {
  fake.raw(inspect_path("", kRunningId), FakeDocker::Reply::hanging());
  std::stop_source stop;
  DockerClient client(fake.path(), stop.get_token());
  ASSERT_EQ(client.running().size(), 1u);  // answered as before while not stopped
  std::jthread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  expect_error(error_of([&] { client.inspect(kRunningId); }), ECANCELED,
               "GET " + inspect_path("1.41", kRunningId) + ": given up: the agent is stopping");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  const int connections = fake.connections();
  expect_error(error_of([&] { client.running(); }), ECANCELED, "given up");
  EXPECT_EQ(fake.connections(), connections);
}

TEST_F(DockerClientTest, ASubscriptionToAHungDaemonIsGivenUpWhenStopped) {
  fake.raw("/_ping", FakeDocker::Reply::hanging());
  std::stop_source stop;
  std::jthread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  expect_error(error_of([&] { DockerEvents::open(fake.path(), stop.get_token()); }), ECANCELED,
               "GET /_ping: given up: the agent is stopping");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
}

TEST_F(DockerClientTest, NeverFollowsRedirects) {
  fake.raw(inspect_path("", kRunningId),
           FakeDocker::Reply::redirect("http://localhost/v1.41/containers/json"));
  DockerClient client(fake.path());
  expect_error(error_of([&] { client.inspect(kRunningId); }), EPROTO, "HTTP 301");
  EXPECT_EQ(fake.requests().size(), 2u);
}

TEST_F(DockerClientTest, IgnoresProxyEnvironment) {
  const char* names[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
  std::vector<std::optional<std::string>> saved;
  for (const char* name : names) {
    const char* value = getenv(name);
    saved.push_back(value ? std::optional<std::string>(value) : std::nullopt);
    setenv(name, "http://127.0.0.1:9", 1);
  }
  DockerClient client(fake.path());
  EXPECT_TRUE(client.inspect(kRunningId));
  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i])
      setenv(names[i], saved[i]->c_str(), 1);
    else
      unsetenv(names[i]);
  }
}

TEST_F(DockerClientTest, Running) {
  fake.add_container("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "{}");
  DockerClient client(fake.path());
  EXPECT_EQ(
      client.running(),
      (std::vector<std::string>{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                std::string(kRunningId)}));
  EXPECT_EQ(fake.requests().back(), "/v1.41/containers/json");
}

TEST_F(DockerClientTest, Available) {
  EXPECT_TRUE(DockerClient(fake.path()).available());
  fake.raw("/_ping", {500, R"({"message":"shutting down"})"});
  EXPECT_FALSE(DockerClient(fake.path()).available());
  EXPECT_FALSE(DockerClient("/nonexistent.sock").available());
  EXPECT_FALSE(DockerClient("/etc/hostname").available());  // not a socket
}

TEST_F(DockerClientTest, HangingPingIsNotAvailable) {
  fake.raw("/_ping", FakeDocker::Reply::hanging());
  EXPECT_FALSE(DockerClient(fake.path()).available());
}

TEST(DockerClientTransportTest, NoSuchSocket) {
  DockerClient client("/nonexistent.sock");
  auto e = error_of([&] { client.inspect(kRunningId); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errnum(), ENOENT);
  EXPECT_STREQ(e->what(),
               "/nonexistent.sock: cannot connect to the docker daemon: no such file or directory");
}

TEST(DockerClientTransportTest, StaleSocketIsRefused) {
  // A socket file nobody listens on, as a dockerd that died leaves behind.
  char dir[] = "/tmp/psnictest-docker-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string path = std::string(dir) + "/docker.sock";
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  DockerClient client(path);
  EXPECT_FALSE(client.available());
  auto e = error_of([&] { client.running(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errnum(), ECONNREFUSED);
  EXPECT_EQ(std::string(e->what()),
            path + ": cannot connect to the docker daemon: connection refused");
  unlink(path.c_str());
  rmdir(dir);
}

TEST_F(DockerClientTest, Movable) {
  DockerClient first(fake.path());
  ASSERT_TRUE(first.inspect(kRunningId));
  DockerClient second(std::move(first));
  ASSERT_TRUE(second.inspect(kRunningId));
  DockerClient third("/nonexistent.sock");
  third = std::move(second);
  EXPECT_EQ(third.socket_path(), fake.path());
  ASSERT_TRUE(third.inspect(kRunningId));
  EXPECT_EQ(fake.connections(), 1);
}

}  // namespace
}  // namespace psnic
