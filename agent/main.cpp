// psnic-agent: counts container traffic in the kernel and serves it to Prometheus.
#include <bpf/libbpf.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "agent/event_loop.h"
#include "agent/host_agent.h"
#include "agent/pid_agent.h"
#include "base/cli.h"
#include "base/duration.h"
#include "base/error.h"
#include "exporter/metrics.h"
#include "exporter/server.h"
#include "kernel/attach.h"
#include "kernel/pins.h"
#include "kernel/privileges.h"
#include "kernel/program.h"
#include "kernel/traffic_map.h"
#include "runtime/owner.h"

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
  std::string listen{psnic::kDefaultListen};
  std::string health_timeout = "30s";
  double interval = 5;
  bool quiet = false;
  std::string attach_mode = "auto";
  std::string pin_dir{psnic::kDefaultPinDir};
  bool no_pin = false;
  bool cleanup = false;
};

void complain(const std::string& message) {
  std::fprintf(stderr, "psnic-agent: %s\n", message.c_str());
}

// What an Error says about its object: its message without "<object>: ".
std::string cause_of(const psnic::Error& e) {
  return std::string(e.what()).substr(e.object().size() + 2);
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

// "serving /metrics on ADDR:PORT" with the port bound, which --listen ADDR:0 leaves to the
// kernel: the address as given, up to its last colon.
void log_serving(const std::string& listen, const psnic::MetricsServer& server) {
  const std::string address = listen.substr(0, listen.rfind(':') + 1);
  std::fprintf(stderr, "psnic-agent: serving /metrics on %s%d\n", address.c_str(),
               server.ports().at(0));
}

int cleanup(const Options& options) {
  psnic::CleanupReport report = psnic::cleanup_pins(options.pin_dir);
  if (!report.map && !report.directory && report.links == 0 && report.tc_filters == 0) {
    std::fprintf(stderr, "psnic-agent: nothing pinned in %s\n", options.pin_dir.c_str());
    return 0;
  }
  std::fprintf(stderr, "psnic-agent: removed from %s: %zu tcx link pin%s, %zu tc filter%s, %s\n",
               options.pin_dir.c_str(), report.links, report.links == 1 ? "" : "s",
               report.tc_filters, report.tc_filters == 1 ? "" : "s",
               report.map ? "the traffic map" : "no traffic map");
  return 0;
}

int run(const Options& options) {
  // Two threads allocate: the agent's loop and libmicrohttpd's one server thread, which builds
  // each scrape's exposition (about 1 MB at 1000 interfaces). glibc gives a thread that meets
  // another in malloc an arena of its own, up to 8 per core, and a long-running agent never
  // gives their memory back: two arenas are all these threads need.
  mallopt(M_ARENA_MAX, 2);
  // The command line checked every value.
  const std::chrono::milliseconds health_timeout = psnic::parse_duration(options.health_timeout);
  auto heartbeat = std::make_shared<psnic::LoopHeartbeat>();
  std::optional<psnic::AttachMode> mode = psnic::parse_attach_mode(options.attach_mode);
  if (std::string missing = psnic::missing_agent_capabilities(); !missing.empty()) {
    complain("missing privileges: " + missing + " (run as root)");
    return kStartupFailure;
  }
  if (std::string missing = psnic::missing_host_view(); !missing.empty()) {
    complain(missing);
    return kStartupFailure;
  }

  // Block the stop signals before any thread starts, so that every thread inherits the mask and
  // the loop's signalfd alone receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // libbpf prints its own diagnostics; psnic reports one line of its own instead.
  libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; });
  if (options.cleanup) return cleanup(options);

  // The host agent pins its map and links unless told not to; --pid runs are always ephemeral.
  std::optional<psnic::PinDir> pins;
  bool map_was_pinned = false;
  if (options.pids.empty() && !options.no_pin) {
    pins = psnic::PinDir::open(options.pin_dir);
    map_was_pinned = access(pins->map_path().c_str(), F_OK) == 0;
  }
  psnic::TrafficProgram program = psnic::TrafficProgram::load(pins ? pins->map_path() : "");
  if (!mode) mode = psnic::probe_attach_mode(program);

  psnic::HostAgentOptions host_options;
  host_options.mode = *mode;
  host_options.pins = pins ? &*pins : nullptr;
  host_options.reconcile_interval = psnic::parse_duration(options.reconcile_interval);
  host_options.retire_after = psnic::parse_duration(options.retire_after);
  host_options.heartbeat = heartbeat.get();

  auto labels = std::make_shared<psnic::LabelSnapshot>();
  auto retired = std::make_shared<psnic::RetiredSnapshot>();
  auto self = std::make_shared<psnic::SelfMetrics>();
  auto map = std::make_shared<psnic::TrafficMap>(program.map_fd());
  auto traffic = std::make_shared<psnic::TrafficCollector>(
      [map](uint32_t ifindex) { return map->read(ifindex); }, labels, self, retired);
  // Listen before attaching anything: a port in use fails the start with nothing to undo but
  // a map pinned just now.
  std::optional<psnic::MetricsServer> server;
  try {
    psnic::EndpointOptions endpoint;
    endpoint.attach_mode = psnic::attach_mode_name(*mode);
    endpoint.self = self;
    endpoint.heartbeat = heartbeat;
    endpoint.health_timeout = health_timeout;
    endpoint.log = complain;
    server.emplace(options.listen,
                   std::vector<std::shared_ptr<prometheus::Collectable>>{traffic, self->registry()},
                   std::move(endpoint));
  } catch (const psnic::Error&) {
    if (pins && !map_was_pinned) {
      std::string dir = pins->path();
      pins.reset();
      psnic::cleanup_pins(dir);
    }
    throw;
  }

  if (options.pids.empty()) {
    log_serving(options.listen, *server);
    psnic::OwnerDescriber describer;
    psnic::DockerOwnerEvents docker_events(describer);
    psnic::HostAgent agent(
        program, host_options, labels, retired, self,
        [&describer](const psnic::NetnsReport& owner, psnic::InterfaceLabels& labels) {
          describer.describe(owner, labels);
        });
    agent.run(&docker_events);
    return 0;
  }

  psnic::PidAgent agent(program, *mode, labels, self);
  int worst = 0;
  for (const std::string& pid : options.pids) worst = std::max(worst, agent.add(pid));
  if (agent.attached() == 0) return worst == 0 ? 1 : worst;

  log_serving(options.listen, *server);
  auto interval = std::chrono::milliseconds(static_cast<long>(options.interval * 1000));
  agent.run(interval, options.quiet ? nullptr : stdout, heartbeat.get());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "Counts container traffic in the kernel (TC eBPF) and serves it to Prometheus: every "
      "container on the host, or with --pid only those processes'.\n"
      "On SIGINT/SIGTERM the host agent leaves its programs counting, pinned for the next "
      "agent to adopt; --no-pin and --pid detach them.\n"
      "Exit status: 0 stopped by SIGINT/SIGTERM, every process exited, or --cleanup done; "
      "1 start-up failure; 2 bad argument.",
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
  app.add_option("--listen", options.listen,
                 "address of the HTTP endpoint (/metrics, /healthz, /): IPV4:PORT, [IPV6]:PORT, "
                 "[::]:PORT for both families; port 0 for one the kernel picks")
      ->type_name("ADDR:PORT")
      ->capture_default_str()
      ->check(listen_address());
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
  app.add_option("--pin-dir", options.pin_dir,
                 "bpf filesystem directory where the counters and links are pinned, so that a "
                 "restarted agent adopts them (a bpf filesystem is mounted on /sys/fs/bpf if "
                 "none is)")
      ->capture_default_str();
  CLI::Option* no_pin =
      app.add_flag("--no-pin", options.no_pin,
                   "pin nothing: detach everything on exit, adopt nothing (--pid always runs so)");
  app.add_flag("--cleanup", options.cleanup,
               "remove everything pinned in --pin-dir and the programs it attached, then exit")
      ->excludes(pid)
      ->excludes(no_pin);
  app.add_option("--attach-mode", options.attach_mode,
                 "auto (TCX when the kernel has it, else tc), tcx, or tc")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "tcx", "tc"}));

  if (std::optional<int> status = psnic::parse_command_line(app, argc, argv)) return *status;

  try {
    return run(options);
  } catch (const psnic::Error& e) {
    complain(e.what());
    return kStartupFailure;
  } catch (const std::exception& e) {
    complain(e.what());
    return kStartupFailure;
  }
}
