// In-process cost of the resolver: one lookup, and a whole-host batch over N namespaces that the
// bench makes itself (each with a veth pair to the host and a process inside). Run as root.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "base/error.h"
#include "resolver/resolver.h"
#include "tests/support/support.h"

namespace {

using psnic::test::run;
using psnic::test::Sleeper;

// Namespaces "psnictest-bench-<i>" with host veths "psnictestb<i, hex>", made in batches with
// `ip -batch`, removed when the bench ends.
class Population {
 public:
  ~Population() { shrink_to(0); }

  void grow_to(size_t n) {
    if (n <= sleepers_.size()) return;
    std::string batch;
    for (size_t i = sleepers_.size(); i < n; ++i) batch += "netns add " + ns_name(i) + "\n";
    for (size_t i = sleepers_.size(); i < n; ++i)
      batch += "link add " + veth_name(i) + " type veth peer name eth0 netns " + ns_name(i) + "\n";
    write_and_run(batch);
    for (size_t i = sleepers_.size(); i < n; ++i)
      sleepers_.push_back(std::make_unique<Sleeper>("/run/netns/" + ns_name(i)));
  }

  void shrink_to(size_t n) {
    std::string batch;
    while (sleepers_.size() > n) {
      sleepers_.pop_back();  // kills and reaps the process
      batch += "netns del " + ns_name(sleepers_.size()) + "\n";
    }
    if (!batch.empty()) write_and_run(batch);
  }

  pid_t pid(size_t i) const { return sleepers_.at(i)->pid(); }

 private:
  static std::string ns_name(size_t i) { return "psnictest-bench-" + std::to_string(i); }
  static std::string veth_name(size_t i) {
    char name[32];
    std::snprintf(name, sizeof name, "psnictestb%04x", static_cast<unsigned>(i & 0xffff));
    return name;
  }
  static void write_and_run(const std::string& batch) {
    char path[] = "/tmp/psnictest-batch-XXXXXX";
    int fd = mkstemp(path);
    if (write(fd, batch.data(), batch.size()) != static_cast<ssize_t>(batch.size())) std::abort();
    close(fd);
    auto result = run(std::string("ip -batch ") + path);
    unlink(path);
    if (result.status != 0) {
      std::fprintf(stderr, "bench: ip -batch failed: %s\n", result.err.c_str());
      std::exit(1);
    }
  }

  std::vector<std::unique_ptr<Sleeper>> sleepers_;
};

Population& population() {
  static Population p;
  return p;
}

void BM_ResolvePid(benchmark::State& state) {
  population().grow_to(1);
  psnic::Resolver resolver;
  psnic::ResolveOptions options;
  options.identity = state.range(0) != 0;
  pid_t pid = population().pid(0);
  try {
    for (auto _ : state) benchmark::DoNotOptimize(resolver.resolve_pid(pid, options));
  } catch (const psnic::Error& e) {
    state.SkipWithError(e.what());  // e.g. another program removed the bench's namespaces
  }
  state.SetLabel(options.identity ? "with container identity" : "interfaces only");
}
BENCHMARK(BM_ResolvePid)
    ->Arg(0)
    ->Arg(1)
    ->Repetitions(10)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMicrosecond);

void BM_ResolveAll(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  population().grow_to(n);
  population().shrink_to(n);
  psnic::Resolver resolver;
  psnic::ResolveOptions options;
  options.identity = true;
  size_t namespaces = 0;
  try {
    for (auto _ : state) {
      psnic::BatchReport batch = resolver.resolve_all(options);
      namespaces = batch.namespaces.size();
      benchmark::DoNotOptimize(batch);
    }
  } catch (const psnic::Error& e) {
    state.SkipWithError(e.what());
  }
  // Every namespace on the host is resolved, the bench's and any others (containers, ...).
  state.counters["namespaces"] = static_cast<double>(namespaces);
  state.counters["per_namespace"] = benchmark::Counter(
      static_cast<double>(namespaces),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ResolveAll)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The kernel's side of one namespace's lookup, with N namespaces known to the host: RTM_GETNSID
// and a host link dump. The kernel finds a namespace's nsid by walking every nsid the host has
// assigned (__peernet2id: idr_for_each), so both grow with N whatever user space does.
void BM_KernelNsidQuery(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  population().grow_to(n);
  population().shrink_to(n);
  psnic::NetlinkSocket host = psnic::NetlinkSocket::open();
  host.dump_links();  // assigns the nsids
  psnic::Fd netns(open(("/proc/" + std::to_string(population().pid(n - 1)) + "/ns/net").c_str(),
                       O_RDONLY | O_CLOEXEC));
  for (auto _ : state) benchmark::DoNotOptimize(host.nsid_of(netns.get()));
}
BENCHMARK(BM_KernelNsidQuery)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_KernelHostDump(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  population().grow_to(n);
  population().shrink_to(n);
  psnic::NetlinkSocket host = psnic::NetlinkSocket::open();
  for (auto _ : state) benchmark::DoNotOptimize(host.dump_links());
}
BENCHMARK(BM_KernelHostDump)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "resolver_bench: needs root (it makes namespaces and veth pairs)\n");
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  population().shrink_to(0);
  return 0;
}
