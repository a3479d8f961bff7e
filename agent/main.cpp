// psnic-agent: counts container traffic in the kernel and serves it to Prometheus.
#include <bpf/libbpf.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/event_loop.h"
#include "agent/host_agent.h"
#include "agent/link_drops.h"
#include "agent/pid_agent.h"
#include "base/cli.h"
#include "base/duration.h"
#include "base/error.h"
#include "base/log.h"
#include "base/text.h"
#include "exporter/metrics.h"
#include "exporter/server.h"
#include "exporter/web_config.h"
#include "kernel/attach.h"
#include "kernel/expedite.h"
#include "kernel/pins.h"
#include "kernel/privileges.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"
#include "runtime/containerd.h"
#include "runtime/owner.h"
#include "runtime/runtimes.h"

namespace {

constexpr int kStartupFailure = 1;

// A full reconcile dumps every host link: a shorter interval keeps the loop doing little else
// (and 0 would spin it).
constexpr std::chrono::milliseconds kMinReconcileInterval{100};
// The loop wakes every EventLoop::kIdleTurn when idle: a shorter bound would call an idle loop
// stalled.
constexpr std::chrono::milliseconds kMinHealthTimeout = 2 * psnic::EventLoop::kIdleTurn;

struct Options {
  std::vector<std::string> pids;
  std::string reconcile_interval = "30s";
  std::string retire_after = "2m";
  std::string name_wait = "2s";
  std::string listen{psnic::kDefaultListen};
  std::string health_timeout = "30s";
  double interval = 5;
  bool quiet = false;
  std::string attach_mode = "auto";
  std::string split = "none";
  std::string pin_dir{psnic::kDefaultPinDir};
  std::string docker_socket;  // empty: $DOCKER_HOST's unix socket, else kDefaultDockerSocket
  std::string podman_socket = "/run/podman/podman.sock";
  std::string containerd_socket = "/run/containerd/containerd.sock";
  bool no_pin = false;
  bool cleanup = false;
  bool expedite_attach = false;
  std::string receive_at = "peer";
  std::string log_format = "logfmt";
  std::string log_level = "info";
  std::string web_config_file;
};

// The command's own lines, which are not log events: a start-up failure that ends the process
// (README's exit status contract) and --cleanup's report. One plain "psnic-agent: <text>" line
// whatever --log-format says, as scripts and people read them.
void print_plain(const std::string& message) { psnic::print_plain_line("psnic-agent", message); }

// What an Error says about its object: its message without "<object>: ".
std::string cause_of(const psnic::Error& e) {
  return std::string(e.what()).substr(e.object().size() + 2);
}

constexpr const char* kDefaultDockerSocket = "/var/run/docker.sock";

// --docker-socket, else DOCKER_HOST when it is a unix:// address (as the docker CLI reads it),
// else Docker's default socket. A tcp:// DOCKER_HOST is not followed: psnic speaks only to a
// local socket.
std::string docker_socket(const Options& options) {
  if (!options.docker_socket.empty()) return options.docker_socket;
  const char* host = getenv("DOCKER_HOST");
  constexpr std::string_view kUnix = "unix://";
  if (host != nullptr && std::string_view(host).starts_with(kUnix) &&
      std::string_view(host).size() > kUnix.size())
    return std::string(host + kUnix.size());
  return kDefaultDockerSocket;
}

// CLI11 checks, so that a bad value is refused while parsing (one line, status 2), before
// anything touches the host. Each names the value and the cause; CLI11 adds the flag.
CLI::Validator duration_at_least(std::chrono::milliseconds least, std::string why) {
  return CLI::Validator(
      [least, why](std::string& text) -> std::string {
        try {
          if (psnic::parse_duration(text) < least) return text + ": " + why;
        } catch (const psnic::Error& e) {
          return text + ": " + cause_of(e);
        }
        return "";
      },
      "");
}

// A value `parse` knows (it returns an optional); else "<value>: not one of <names>".
template <typename Parse>
CLI::Validator one_of(Parse parse, std::string names) {
  return CLI::Validator(
      [parse, names](std::string& text) -> std::string {
        return parse(text) ? "" : text + ": not one of " + names;
      },
      "");
}

CLI::Validator listen_address() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          psnic::parse_listen(text);
        } catch (const psnic::Error& e) {
          return text + ": " + cause_of(e);
        }
        return "";
      },
      "");
}

// A pin directory is an absolute path: a relative one would depend on where the agent started.
CLI::Validator absolute_path() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return !text.empty() && text[0] == '/' ? "" : text + ": not absolute";
      },
      "");
}

// "serving /metrics on ADDR:PORT" with the port bound, which --listen ADDR:0 leaves to the
// kernel: the address as given, up to its last colon.
void log_serving(const std::string& listen, const psnic::MetricsServer& server) {
  const std::string address =
      listen.substr(0, listen.rfind(':') + 1) + std::to_string(server.ports().at(0));
  psnic::log_info("serving /metrics on " + address, {{"address", address}});
}

// --cleanup is a command of its own, not a run of the agent: its report is its result.
int cleanup(const Options& options) {
  psnic::CleanupReport report = psnic::cleanup_pins(options.pin_dir);
  if (!report.map && !report.split_map && !report.directory && report.links == 0 &&
      report.tc_filters == 0 && !report.rcu_expedited) {
    print_plain("nothing pinned in " + options.pin_dir);
    return 0;
  }
  std::string maps = report.map ? "the traffic map" : "";
  if (report.split_map) maps += std::string(maps.empty() ? "" : " and ") + "the traffic_proto map";
  print_plain("removed from " + options.pin_dir + ": " +
              psnic::counted(report.links, "tcx link pin") + ", " +
              psnic::counted(report.tc_filters, "tc filter") + ", " +
              (maps.empty() ? "no traffic map" : maps) +
              (report.rcu_expedited ? std::string("; ") + psnic::kRcuExpeditedKnob +
                                          " restored to " + *report.rcu_expedited
                                    : ""));
  return 0;
}

// libbpf's diagnostics are detail: psnic says what failed in a line of its own. Debug lines,
// one per message (a verifier log's newlines are escaped in it).
int libbpf_message(libbpf_print_level, const char* format, va_list args) {
  va_list sized;
  va_copy(sized, args);
  const int length = std::vsnprintf(nullptr, 0, format, sized);
  va_end(sized);
  if (length <= 0) return 0;
  std::string text(static_cast<size_t>(length) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<size_t>(length));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  psnic::log_debug(text);
  return 0;
}

// Once the agent serves, it runs: what ends it now is an event of its log (level error, status
// 1), not a start-up failure's plain line.
int run_logged(const std::function<void()>& agent) {
  try {
    agent();
    return 0;
  } catch (const std::exception& e) {
    psnic::log_error(e.what());
    return kStartupFailure;
  }
}

// Each counted interface holds two TCX link descriptors, and each HTTP connection one: a thousand
// containers, or a thousand idle clients, outgrow the soft limit of 1024 that systemd and most
// shells give. The hard limit is what the host allows; the agent takes it, as Go programs
// (node_exporter among them) do at start.
void raise_open_files_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int run(const Options& options) {
  raise_open_files_limit();
  // Two threads allocate: the agent's loop and libmicrohttpd's one server thread, which builds
  // each scrape's exposition (about 1 MB at 1000 interfaces). glibc gives a thread that meets
  // another in malloc an arena of its own, up to 8 per core, and a long-running agent never
  // gives their memory back: two arenas are all these threads need.
  mallopt(M_ARENA_MAX, 2);
  // The command line checked every value.
  const std::chrono::milliseconds health_timeout = psnic::parse_duration(options.health_timeout);
  auto heartbeat = std::make_shared<psnic::LoopHeartbeat>();
  std::optional<psnic::AttachMode> mode = psnic::parse_attach_mode(options.attach_mode);
  // Read before anything touches the host: a bad file is one line ("web config FILE: ...")
  // and status 1, with nothing loaded or pinned.
  std::shared_ptr<const psnic::WebSecurity> web;
  if (!options.web_config_file.empty()) web = psnic::load_web_config(options.web_config_file);

  if (std::string missing = psnic::missing_agent_capabilities(); !missing.empty()) {
    print_plain("missing capabilities: " + missing +
                " (it needs CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_SYS_PTRACE; root has them)");
    return kStartupFailure;
  }
  if (std::string missing = psnic::missing_host_view(); !missing.empty()) {
    print_plain(missing);
    return kStartupFailure;
  }

  // Block the stop signals and SIGHUP before any thread starts, so that every thread inherits
  // the mask and the loop's signalfd alone receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  libbpf_set_print(libbpf_message);
  if (options.cleanup) return cleanup(options);

  // The host agent pins its map and links unless told not to; --pid runs are always ephemeral.
  std::optional<psnic::PinDir> pins;
  bool map_was_pinned = false;
  if (options.pids.empty() && !options.no_pin) {
    pins = psnic::PinDir::open(options.pin_dir);
    if (pins->mounted_bpffs())
      psnic::log_info(std::string("mounted a bpf filesystem on ") + psnic::kBpffsMountPoint +
                      ", where the host had none");
    map_was_pinned = access(pins->map_path().c_str(), F_OK) == 0;
    // An agent killed while it expedited grace periods left the host's knob set: put it back.
    psnic::restore_expedited(psnic::kRcuExpeditedKnob, pins->rcu_expedited_record_path());
  }
  // Checked while parsing.
  const psnic::Split split = *psnic::parse_split(options.split);
  psnic::TrafficProgram program = psnic::TrafficProgram::load(pins ? pins->map_path() : "", split,
                                                              pins ? pins->split_map_path() : "");
  if (!mode) mode = psnic::probe_attach_mode(program);

  // --expedite-attach: the knob's value is recorded in the pin directory while it is set. An
  // ephemeral agent pins nothing there, but opens (and locks) the directory for the record.
  std::optional<psnic::PinDir> record_dir;
  bool record_dir_made = false;
  std::optional<psnic::ExpeditedGracePeriods> expedite;
  if (options.expedite_attach && options.pids.empty()) {
    if (*mode != psnic::AttachMode::tcx) {
      psnic::log_warn(
          "--expedite-attach does nothing in tc mode: only TCX waits for RCU grace periods");
    } else if (!pins) {
      record_dir_made = access(options.pin_dir.c_str(), F_OK) != 0;
      try {
        record_dir = psnic::PinDir::open(options.pin_dir);
        psnic::restore_expedited(psnic::kRcuExpeditedKnob, record_dir->rcu_expedited_record_path());
      } catch (const psnic::Error& e) {
        psnic::log_warn(std::string("--expedite-attach: nowhere to record the knob's value (") +
                        e.what() + "); attaching with ordinary RCU grace periods");
      }
    }
    const psnic::PinDir* records = pins ? &*pins : record_dir ? &*record_dir : nullptr;
    if (records != nullptr) {
      expedite.emplace(psnic::kRcuExpeditedKnob, records->rcu_expedited_record_path());
      if (!expedite->usable()) expedite.reset();
    }
  }
  // The record-only directory goes once the knob is back, if this agent made it.
  auto drop_record_dir = [&] {
    expedite.reset();
    if (!record_dir) return;
    const std::string dir = record_dir->path();
    record_dir.reset();
    if (record_dir_made) {
      rmdir((dir + "/links").c_str());
      rmdir(dir.c_str());
    }
  };

  psnic::HostAgentOptions host_options;
  host_options.mode = *mode;
  host_options.pins = pins ? &*pins : nullptr;
  host_options.reconcile_interval = psnic::parse_duration(options.reconcile_interval);
  host_options.retire_after = psnic::parse_duration(options.retire_after);
  host_options.name_wait = psnic::parse_duration(options.name_wait);
  host_options.heartbeat = heartbeat.get();
  host_options.expedite = expedite ? &*expedite : nullptr;
  host_options.receive_at_peer = options.receive_at == "peer";
  if (!host_options.receive_at_peer && options.pids.empty())
    psnic::log_info(
        "receive counted at the host interfaces' egress (--receive-at host): traffic moved with "
        "bpf_redirect_peer is not counted");

  auto labels = std::make_shared<psnic::LabelSnapshot>();
  auto retired = std::make_shared<psnic::RetiredSnapshot>();
  auto self = std::make_shared<psnic::SelfMetrics>();
  auto map = std::make_shared<psnic::TrafficMap>(program.map_fd());
  // Errors and drops come from the host peers' own statistics, which live in this namespace
  // for the host agent and --pid alike.
  auto drops = std::make_shared<psnic::LinkDropsReader>();
  auto traffic = std::make_shared<psnic::TrafficCollector>(
      [map](uint32_t ifindex) { return map->read_counts(ifindex); }, labels, self, retired,
      [drops](const std::vector<uint32_t>& ifindexes) { return drops->read(ifindexes); });
  auto owners = std::make_shared<psnic::OwnerSnapshot>();
  auto owner_info = std::make_shared<psnic::OwnerInfoCollector>(owners);
  // Listen before attaching anything: a port in use fails the start with nothing to undo but
  // a map pinned just now.
  std::optional<psnic::MetricsServer> server;
  try {
    psnic::EndpointOptions endpoint;
    endpoint.attach_mode = psnic::attach_mode_name(*mode);
    endpoint.self = self;
    endpoint.heartbeat = heartbeat;
    endpoint.health_timeout = health_timeout;
    // libmicrohttpd's run-time messages (a client that broke off, a limit reached): the agent
    // serves on, but a user wants to see them.
    endpoint.log = [](const std::string& line) { psnic::log_warn(line); };
    endpoint.web = web;
    server.emplace(options.listen,
                   std::vector<std::shared_ptr<prometheus::Collectable>>{traffic, owner_info,
                                                                         self->registry()},
                   std::move(endpoint));
  } catch (const psnic::Error&) {
    drop_record_dir();
    if (pins && !map_was_pinned) {
      std::string dir = pins->path();
      pins.reset();
      psnic::cleanup_pins(dir);
    }
    throw;
  }

  // SIGHUP: the web config read again; served if valid, else the old one stays.
  std::function<void()> reload;
  if (!options.web_config_file.empty())
    reload = [&server, path = options.web_config_file] {
      try {
        server->reload(psnic::load_web_config(path));
        psnic::log_info("web config reloaded", {{"file", path}});
      } catch (const psnic::Error& e) {
        psnic::log_error(std::string(e.what()) + " (serving with the previous one)");
      }
    };
  host_options.reload = reload;

  if (options.pids.empty()) {
    log_serving(options.listen, *server);
    return run_logged([&] {
      // Each runtime found by itself: asked about the containers its cgroups claim, followed
      // while its socket answers.
      psnic::EngineRuntime docker("docker", docker_socket(options));
      psnic::EngineRuntime podman("podman", options.podman_socket);
      psnic::ContainerdRuntime containerd(options.containerd_socket);
      psnic::EngineOwnerEvents docker_events(docker);
      psnic::EngineOwnerEvents podman_events(podman);
      psnic::RuntimeHealth health(self);
      psnic::RuntimeOwners runtimes({&docker, &podman, &containerd}, health);
      psnic::RuntimeEvents events(
          {{&docker, &docker_events}, {&podman, &podman_events}, {&containerd, nullptr}}, health);
      {
        psnic::HostAgent agent(program, host_options, labels, retired, self, &runtimes, &events,
                               owners);
        agent.run();
      }
      drop_record_dir();
    });
  }

  psnic::PidAgent agent(program, *mode, labels, self);
  int worst = 0;
  for (const std::string& pid : options.pids) worst = std::max(worst, agent.add(pid));
  if (agent.attached() == 0) return worst == 0 ? 1 : worst;

  log_serving(options.listen, *server);
  auto interval = std::chrono::milliseconds(static_cast<long>(options.interval * 1000));
  return run_logged(
      [&] { agent.run(interval, options.quiet ? nullptr : stdout, heartbeat.get(), reload); });
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "Counts container traffic in the kernel (TC eBPF) and serves it to Prometheus: every "
      "container on the host, or with --pid only those processes'.\n"
      "On SIGINT/SIGTERM the host agent leaves its programs counting, pinned for the next "
      "agent to adopt; --no-pin and --pid detach them. SIGHUP reads --web-config-file again.\n"
      "Exit status: 0 stopped by SIGINT/SIGTERM, every process exited, or --cleanup done; "
      "1 start-up failure (or a failure that stopped the agent, logged as an error); 2 bad "
      "argument.\n"
      "Log lines go to stderr, one per event: logfmt (ts=... level=info msg=\"...\" key=value) "
      "by default, JSON with --log-format json.",
      "psnic-agent"};
  app.set_version_flag("--version", PSNIC_VERSION);
  CLI::Option* pid = app.add_option("--pid", options.pids,
                                    "count only the host interfaces of this process's network "
                                    "namespace (repeatable); without it, every container on the "
                                    "host")
                         ->type_name("PID");
  app.add_option("--reconcile-interval", options.reconcile_interval,
                 "time between full passes over the host's links (500ms, 30s, 2m, 1h, 1m30s; "
                 "at least 100ms)")
      ->type_name("DURATION")
      ->capture_default_str()
      ->check(duration_at_least(kMinReconcileInterval,
                                "below 100ms (each pass dumps every host link)"));
  app.add_option("--retire-after", options.retire_after,
                 "how long a vanished interface's final values stay exported")
      ->type_name("DURATION")
      ->capture_default_str()
      ->check(duration_at_least(std::chrono::milliseconds(0), ""));  // 0: retire at once
  app.add_option("--name-wait", options.name_wait,
                 "how long a new interface's series waits for its owner's name (its container "
                 "runtime's answer) before it is exported with what is known; counting starts at "
                 "once, and a series' labels never change afterwards but by a rename")
      ->type_name("DURATION")
      ->capture_default_str()
      ->check(duration_at_least(std::chrono::milliseconds(0), ""))
      ->excludes(pid);
  app.add_option("--listen", options.listen,
                 "address of the HTTP endpoint (/metrics, /healthz, /): IPV4:PORT, [IPV6]:PORT, "
                 "[::]:PORT for both families; port 0 for one the kernel picks")
      ->type_name("ADDR:PORT")
      ->capture_default_str()
      ->check(listen_address());
  app.add_option(
         "--web-config-file", options.web_config_file,
         "TLS and basic auth for the endpoint, in exporter-toolkit's format (node_exporter's "
         "--web.config.file): tls_server_config, basic_auth_users; read again on SIGHUP")
      ->type_name("FILE");
  app.add_option("--health-timeout", options.health_timeout,
                 "/healthz answers 503 once the agent's loop has not turned for this long "
                 "(at least 2s)")
      ->type_name("DURATION")
      ->capture_default_str()
      ->check(duration_at_least(kMinHealthTimeout, "below 2s (an idle loop turns once a second)"));
  // The rate table is --pid's alone: a host agent prints none, so these would do nothing.
  app.add_option("--interval", options.interval,
                 "with --pid: seconds between lines of the rate table")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0))
      ->needs(pid);
  app.add_flag("--quiet", options.quiet, "with --pid: print no rate table")->needs(pid);
  app.add_option(
         "--pin-dir", options.pin_dir,
         "bpf filesystem directory where the counters and links are pinned, so that a "
         "restarted agent adopts them (a bpf filesystem is mounted on /sys/fs/bpf, and only "
         "there, if none is)")
      ->capture_default_str()
      ->check(absolute_path());
  CLI::Option* no_pin =
      app.add_flag("--no-pin", options.no_pin,
                   "pin nothing: detach everything on exit, adopt nothing (--pid always runs so)");
  CLI::Option* cleanup_flag =
      app.add_flag("--cleanup", options.cleanup,
                   "remove everything pinned in --pin-dir and the programs it attached (and give "
                   "/sys/kernel/rcu_expedited back the value an agent killed while expediting "
                   "recorded there), then exit")
          ->excludes(pid)
          ->excludes(no_pin);
  app.add_flag(
         "--expedite-attach", options.expedite_attach,
         "TCX only: while more than " + std::to_string(psnic::kExpediteAbove) +
             " interfaces wait to be attached (a cold start, a reconcile's backlog, a burst of "
             "new veths), hooked at their container-side peers, or detached (--no-pin's exit), "
             "set the host-wide "
             "/sys/kernel/rcu_expedited from 0 to 1, and restore it at once after (a non-zero "
             "value is someone else's: left alone). Each TCX attach and detach waits for an RCU "
             "grace period (~12 ms, under the RTNL lock): a cold start with 1100 veths measured "
             "43 s without, 1.2 s with it. The price: while it is set, every RCU grace period on "
             "the host is expedited, each interrupting every CPU. Its value is recorded in "
             "--pin-dir while set; a restarted agent or --cleanup restores it after a crash. Off "
             "by default")
      ->excludes(pid)
      ->excludes(cleanup_flag);
  app.add_option("--docker-socket", options.docker_socket,
                 "the Docker daemon's API socket, which names Docker's containers (none there: "
                 "named without it) [default: $DOCKER_HOST if unix://PATH, else "
                 "/var/run/docker.sock]")
      ->type_name("PATH")
      ->excludes(pid);
  app.add_option("--podman-socket", options.podman_socket,
                 "podman's Docker-compatible API socket (`podman system service`), which names "
                 "podman's containers (none there: named without it)")
      ->type_name("PATH")
      ->capture_default_str()
      ->excludes(pid);
  app.add_option("--containerd-socket", options.containerd_socket,
                 "containerd's socket, whose presence psnic_runtime_up reports; containerd's "
                 "containers are named from their shims' command lines")
      ->type_name("PATH")
      ->capture_default_str()
      ->excludes(pid);
  app.add_option("--attach-mode", options.attach_mode,
                 "auto (TCX when the kernel has it, else tc), tcx, or tc")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "tcx", "tc"}));
  app.add_option("--receive-at", options.receive_at,
                 "where a container's receive is counted: peer (the container-side device's "
                 "ingress, in TCX mode, once its namespace is known: traffic moved there with "
                 "bpf_redirect_peer, as Cilium's BPF host routing does, is counted too) or host "
                 "(the host interface's egress, which such traffic skips; one TCX program less "
                 "per received packet)")
      ->type_name("WHERE")
      ->capture_default_str()
      ->check(one_of([](const std::string& where) { return where == "peer" || where == "host"; },
                     "peer, host"))
      ->excludes(pid);
  app.add_option("--split", options.split,
                 "count each interface's traffic split by: none, or protocol (a protocol label, "
                 "tcp, udp, icmp or other, on the four traffic counters: four times the series, "
                 "and a few ns more per packet). An agent restarted with the other setting "
                 "starts the counters anew, as series of the other label set")
      ->type_name("BY")
      ->capture_default_str()
      ->check(one_of(psnic::parse_split, "none, protocol"));
  app.add_option("--log-format", options.log_format,
                 "how each log line on stderr is written: logfmt (key=value pairs) or json (one "
                 "object per line)")
      ->type_name("FORMAT")
      ->capture_default_str()
      ->check(one_of(psnic::parse_log_format, "logfmt, json"));
  app.add_option("--log-level", options.log_level,
                 "the least level logged: debug, info, warn or error")
      ->type_name("LEVEL")
      ->capture_default_str()
      ->check(one_of(psnic::parse_log_level, "debug, info, warn, error"));

  if (std::optional<int> status = psnic::parse_command_line(app, argc, argv)) return *status;
  // Both checked while parsing.
  psnic::configure_log(*psnic::parse_log_format(options.log_format),
                       *psnic::parse_log_level(options.log_level));

  try {
    return run(options);
  } catch (const std::exception& e) {
    print_plain(e.what());
    return kStartupFailure;
  }
}
