// psnic: names the host-side interface (veth/netkit peer) of each interface in a process's
// network namespace.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "base/cli.h"
#include "base/error.h"
#include "base/log.h"
#include "resolver/pid_lookup.h"
#include "resolver/report.h"
#include "resolver/resolver.h"

namespace {

using psnic::kExitFound;
using psnic::kExitNotFound;
using psnic::kExitTrouble;

struct Options {
  std::vector<std::string> pids;
  bool all = false;
  bool json = false;
};

void complain(const std::string& message) { psnic::print_plain_line("psnic", message); }

void print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

int run_pids(psnic::Resolver& resolver, const Options& options) {
  int status = kExitFound;
  std::vector<psnic::NetnsReport> reports;
  psnic::ResolveOptions resolve;
  resolve.identity = options.json;
  resolve.netns_name = options.json;  // only JSON prints it: `psnic PID` does not read /run/netns
  const bool several = options.pids.size() > 1;
  for (const std::string& arg : options.pids) {
    psnic::PidLookup lookup = psnic::look_up_pid(resolver, arg, resolve);
    if (!lookup.message.empty()) complain(lookup.message);
    status = std::max(status, lookup.exit_status());
    if (!lookup.resolved()) continue;
    if (options.json)
      reports.push_back(std::move(lookup.report));
    else
      print(psnic::format_host_names(lookup.report, several));
  }
  if (options.json) print(psnic::format_json(reports));
  return status;
}

int run_all(psnic::Resolver& resolver, const Options& options) {
  psnic::ResolveOptions resolve;
  resolve.identity = true;
  psnic::BatchReport batch = resolver.resolve_all(resolve);
  if (batch.skipped_denied > 0)
    complain("skipped " + std::to_string(batch.skipped_denied) +
             (batch.skipped_denied == 1 ? " process" : " processes") +
             ": permission denied to its network namespace");
  print(options.json ? psnic::format_json(batch.namespaces)
                     : psnic::format_table(batch.namespaces));
  return batch.namespaces.empty() ? kExitNotFound : kExitFound;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{
      "Names the host-side interface (veth/netkit peer) of each interface in a process's "
      "network namespace.\nExit status: 0 every PID has a host peer, 1 some PID has none, "
      "2 bad argument or system error.",
      "psnic"};
  app.set_version_flag("--version", PSNIC_VERSION);
  app.add_option("PID", options.pids, "processes whose network namespace to resolve");
  app.add_flag("--all", options.all,
               "every network namespace but the caller's, once, with its lowest PID");
  app.add_flag("--json", options.json, "print one JSON array of objects, one per interface");

  if (std::optional<int> status = psnic::parse_command_line(app, argc, argv, [&] {
        if (options.all == !options.pids.empty())
          throw CLI::ValidationError("give one or more PIDs, or --all");
      }))
    return *status;

  try {
    psnic::Resolver resolver;
    int status = options.all ? run_all(resolver, options) : run_pids(resolver, options);
    return std::fflush(stdout) == 0 ? status : kExitTrouble;
  } catch (const psnic::Error& e) {
    complain(e.what());
    return kExitTrouble;
  } catch (const std::exception& e) {
    complain(e.what());
    return kExitTrouble;
  }
}
