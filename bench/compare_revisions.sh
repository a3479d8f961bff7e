#!/usr/bin/env bash
# compare_revisions.sh BASE: this tree against revision BASE, side by side in one run, so that a
# refactor is shown not to cost speed. Both are built the same way (RelWithDebInfo) from their
# own sources; then, alternating base and new ROUNDS times (default 3) so that machine noise
# falls on both alike:
#   - resolver_bench: one lookup (interfaces only, with identity) and --all over 100 namespaces;
#   - scrape_bench: Collect() and an HTTP GET /metrics (plain, gzip) with 1000 interfaces;
#   - hyperfine -N: the whole `psnic PID` process, both binaries in one invocation;
#   - each revision's own bench/host_agent_bench.sh with its own agent, N (default 500) veths,
#     in the same alternation: the cold start, adoption after SIGKILL, scrape, RSS.
# Prints medians (of the rounds' medians) and the ratio new/base. Everything it makes is named
# psnictest* and removed; the base tree is a git worktree under /tmp/psnictest-compare.
# Needs root; installs hyperfine and jq if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: bench/compare_revisions.sh BASE_REVISION}
ROUNDS=${ROUNDS:-3}
N=${N:-500}
[ "$(id -u)" -eq 0 ] || { echo "compare_revisions.sh: needs root" >&2; exit 2; }
for tool in hyperfine jq; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool >/dev/null; }
done

work=/tmp/psnictest-compare
base_tree=$work/base
mkdir -p "$work"
base_commit=$(git rev-parse --verify "$BASE^{commit}")
if [ "$(git -C "$base_tree" rev-parse HEAD 2>/dev/null || true)" != "$base_commit" ]; then
  git worktree remove --force "$base_tree" 2>/dev/null || rm -rf "$base_tree"
  git worktree prune
  git worktree add --detach "$base_tree" "$base_commit" >/dev/null
fi
build() {  # SOURCE BUILD_DIR
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPSNIC_BENCH=ON >/dev/null
  cmake --build "$2" -j"$(nproc)" --target psnic psnic-agent resolver_bench scrape_bench >/dev/null
}
echo "building $BASE ($base_commit) and this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', with changes'))..." >&2
build "$base_tree" "$work/base-build"
build . "$work/new-build"

ns=psnictest-cmp
sleeper=""
cleanup() {
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip link add psnictestcmp0 type veth peer name eth0 netns "$ns"
ip netns exec "$ns" sleep 3600 &
sleeper=$!
sleep 0.2

results=$(mktemp /tmp/psnictest-compare.XXXXXX)
# Google Benchmark medians, one line per benchmark: "<rev> <name> <ms>".
gbench() {  # REV BINARY FILTER
  "$2" --benchmark_filter="$3" --benchmark_format=json 2>/dev/null |
    jq -r --arg rev "$1" '.benchmarks[] | select(.aggregate_name == "median") |
      "\($rev) \((.run_name | sub("/repeats:[0-9]+"; "") | sub("/real_time"; "")) +
          (if .label then " (" + .label + ")" else "" end) | gsub(" "; "_")) \(
        .real_time * (if .time_unit == "us" then 0.001 elif .time_unit == "ns" then 0.000001
                      else 1 end))"' >>"$results"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS..." >&2
  for rev in base new; do
    gbench $rev "$work/$rev-build/resolver_bench" 'BM_ResolvePid|BM_ResolveAll/100/'
    gbench $rev "$work/$rev-build/scrape_bench" 'BM_Collect/|BM_HttpScrape'
  done
  hyperfine -N --warmup 20 --runs 200 --export-json "$work/hyperfine.json" \
    -n base "$work/base-build/psnic $sleeper" -n new "$work/new-build/psnic $sleeper" >/dev/null
  jq -r '.results[] | "\(.command) psnic_PID_(whole_process) \(.median * 1000)"' \
    "$work/hyperfine.json" >>"$results"
done

# The host agent at N interfaces, each revision with its own script and agent.
agent_table() {  # REV TREE
  PSNIC_AGENT="$work/$1-build/psnic-agent" N=$N bash "$2/bench/host_agent_bench.sh" 2>/dev/null |
    awk -F'|' -v rev="$1" '/^\| (start to all|restart after SIGKILL|scrape \/metrics|RSS with)/ {
        gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); split($3, v, " ");
        name = $2; sub(/ \(adopted.*/, "", name); gsub(/ /, "_", name);
        print rev, "agent:_" name, v[1] }' >>"$results"
}
for round in $(seq "$ROUNDS"); do
  echo "host agent at $N interfaces, round $round of $ROUNDS..." >&2
  agent_table base "$base_tree"
  agent_table new .
done

echo "## This tree against $BASE ($(uname -r), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| measure (ms, MB for RSS, s for the agent's start and restart) | base | new | new/base |"
echo "|---|---:|---:|---:|"
awk '{ values[$2 " " $1] = values[$2 " " $1] " " $3; names[$2] = 1 }
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (name in names) {
      b = median(values[name " base"]); n = median(values[name " new"])
      label = name; gsub(/_/, " ", label)
      printf "| %s | %.4g | %.4g | %s |\n", label, b, n, (b > 0 ? sprintf("%.2f", n / b) : "-")
    }
  }' "$results" | sort
rm -f "$results"
