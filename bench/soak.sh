#!/usr/bin/env bash
# soak.sh: psnic-agent under churn and crashes, as a benchmark (issue 10's soak).
#
# 1. Churn: CYCLES (default 1000) containers, WORKERS (4) at a time, each started, sending
#    traffic (pings to a sink container) and removed, while /metrics is scraped every 0.5 s.
#    Checked: no series' counter ever decreases between scrapes; every removed container's series
#    was exported and retired on time (--retire-after RETIRE s after its removal); the agent's
#    RSS, open fds, loaded psnic programs and pinned links are the same before and after;
#    psnic_errors_total stays 0.
# 2. Crashes: RESTARTS (20) kill -9 / restart rounds while a container sends traffic; then the
#    agent's counts of its host veth equal the kernel's to the byte and packet (deltas over the
#    whole phase), and the veth has exactly one psnic program per direction.
# Prints a markdown table; exits 1 if a check failed. Everything made is named psnictest-soak*
# (pins in /sys/fs/bpf/psnictest-soak) and removed on exit. Needs root and Docker (the e2e
# tier's dockerd and psnic-test image: tests/e2e/ensure-docker.sh makes both).
# Environment: PSNIC_AGENT (default build/release/psnic-agent), CYCLES, WORKERS, RESTARTS, RETIRE.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENT=${PSNIC_AGENT:-build/release/psnic-agent}
CYCLES=${CYCLES:-1000}
WORKERS=${WORKERS:-4}
RESTARTS=${RESTARTS:-20}
RETIRE=${RETIRE:-5}
PORT=19897
PIN_DIR=/sys/fs/bpf/psnictest-soak
IMAGE=psnic-test:latest
[ "$(id -u)" -eq 0 ] || { echo "soak.sh: needs root" >&2; exit 2; }
[ -x "$AGENT" ] || { echo "soak.sh: $AGENT not built" >&2; exit 2; }
missing=()
for tool in curl bpftool jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; fi
bash tests/e2e/ensure-docker.sh >/dev/null

work=$(mktemp -d /tmp/psnictest-soak.XXXXXX)
agent=""
scraper=""
stop_agent() {
  if [ -n "$agent" ]; then kill -INT "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; fi
  agent=""
}
workers=()
cleanup() {
  for pid in "${workers[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi
  stop_agent
  "$AGENT" --cleanup --pin-dir "$PIN_DIR" >/dev/null 2>&1 || true
  docker ps -aq --filter name=psnictest-soak | xargs -r docker rm -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
start_agent() {
  "$AGENT" --listen 127.0.0.1:$PORT --pin-dir "$PIN_DIR" --retire-after "${RETIRE}s" \
    2>>"$work/agent.log" &
  agent=$!
  for _ in $(seq 1 500); do
    kill -0 "$agent" 2>/dev/null || { echo "agent exited:" >&2; tail -3 "$work/agent.log" >&2; exit 1; }
    curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics" && return
    sleep 0.01
  done
  echo "agent did not start" >&2; exit 1
}
scrape() { curl -s "http://127.0.0.1:$PORT/metrics"; }
now() { date +%s.%N; }
# RSS kB, open fds, loaded psnic programs, pinned links.
resources() {
  echo "$(awk '/^VmRSS/ {print $2}' /proc/$agent/status) $(ls /proc/$agent/fd | wc -l)" \
    "$(bpftool prog show | grep -cE 'name psnic_(ingress|egress)')" "$(ls "$PIN_DIR/links" | wc -l)"
}
run_container() {  # name [options]: started, its pid echoed
  docker run -d --name "$1" "${@:2}" "$IMAGE" sleep 600 >/dev/null
}
remove_container() {  # name: gone when this returns (dockerd may report a removal it is still making)
  docker rm -f "$1" >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    docker inspect "$1" >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  echo "soak: $1 could not be removed" >&2; return 1
}
host_veth() {  # container name: the host end of its eth0
  local iflink
  iflink=$(docker exec "$1" cat /sys/class/net/eth0/iflink)
  ip -o link | awk -v i="$iflink" -F': ' '$1 == i {sub(/@.*/, "", $2); print $2}'
}

run_container psnictest-soak-sink
sink_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' psnictest-soak-sink)
start_agent
sleep 2
read -r rss0 fds0 progs0 links0 <<<"$(resources)"

# 1. Churn, scraped every 0.5 s.
(
  while :; do
    echo "@ $(now)"
    scrape | grep '^psnic_container_network_' || true
    sleep 0.5
  done
) >"$work/scrapes" &
scraper=$!
echo "soak: $CYCLES container cycles, $WORKERS at a time..." >&2
churn_start=$(now)
# One cycle: start, traffic, remove. A cycle dockerd fails (a container that dies under it, a
# removal it reports in progress) is counted in docker_failures and its container removed; it
# says nothing of psnic, whose checks then skip that container.
worker() {
  local w=$1 c name
  for ((c = w; c < CYCLES; c += WORKERS)); do
    name=psnictest-soak-c$c
    if run_container "$name" && docker exec "$name" ping -q -c 10 -i 0.02 -s 500 "$sink_ip" >/dev/null; then
      started=$(now)
      remove_container "$name"
      echo "$name $started $(now)" >>"$work/removed.$w"
    else
      remove_container "$name" || true
      echo "$name" >>"$work/docker_failures"
    fi
  done
}
for ((w = 0; w < WORKERS; w++)); do worker "$w" & workers+=($!); done
for pid in "${workers[@]}"; do wait "$pid"; done
workers=()
churn_seconds=$(awk -v a="$churn_start" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}')
sleep $((RETIRE + 3))
kill "$scraper"; wait "$scraper" 2>/dev/null || true; scraper=""
# Every series' values in scrape order, and when each container's series was first and last seen.
awk -v seen_file="$work/seen" '
  /^@ / { t = $2; next }
  {
    key = $1; value = $2 + 0
    if ((key in last) && value < last[key]) {
      decreases++
      if (decreases <= 5) print "decreased: " key " " last[key] " -> " value > "/dev/stderr"
    }
    last[key] = value
    if (match(key, /container_name="[^"]*"/)) {
      name = substr(key, RSTART + 16, RLENGTH - 17)
      if (!(name in first)) first[name] = t
      lastseen[name] = t
    }
  }
  END {
    for (n in lastseen) print n, first[n], lastseen[n] > seen_file
    print decreases + 0 > (seen_file ".decreases")
  }' "$work/scrapes"
read -r rss1 fds1 progs1 links1 <<<"$(resources)"
errors=$(scrape | awk '/^psnic_errors_total/ {s += $2} END {print s + 0}')
decreases=$(cat "$work/seen.decreases")
# Each removed container: seen at all, and its last sighting RETIRE s after its removal: no
# earlier than RETIRE s after `docker rm` began (less a scrape interval and a second), no later
# than RETIRE s after it returned (plus as much). The veth goes somewhere in between.
read -r removed unseen early late worst <<<"$(cat "$work"/removed.* | awk -v r="$RETIRE" -v seen="$work/seen" '
  BEGIN { while ((getline line < seen) > 0) { split(line, f, " "); last[f[1]] = f[3] } }
  { n++; if (!($1 in last)) { unseen++; next }
    early_by = last[$1] - $2; late_by = last[$1] - $3; if (late_by > worst) worst = late_by
    if (early_by < r - 1.5) early++; if (late_by > r + 1.5) late++ }
  END { printf "%d %d %d %d %.2f\n", n, unseen, early, late, worst }')"

# 2. Crashes during traffic.
run_container psnictest-soak-k
veth=$(host_veth psnictest-soak-k)
sleep 1
# The agent's four counters of $veth in the container's view: receive bytes and packets,
# transmit bytes and packets.
agent_counts() {
  scrape | awk -v v="host_interface=\"$veth\"" 'index($0, v) && /^psnic_container_network_/ {
      split($1, n, "{"); c[n[1]] = $2 }
    END { p = "psnic_container_network_"
      printf "%s %s %s %s", c[p "receive_bytes_total"], c[p "receive_packets_total"],
        c[p "transmit_bytes_total"], c[p "transmit_packets_total"] }'
}
# The agent's counts and the kernel's (tx is the container's receive), read until the agent's
# agree on both sides of the kernel's: nothing in flight.
snapshot() {
  local a k
  for _ in $(seq 1 50); do
    a=$(agent_counts)
    k=$(for s in tx_bytes tx_packets rx_bytes rx_packets; do cat "/sys/class/net/$veth/statistics/$s"; done | paste -sd' ')
    [ "$a" = "$(agent_counts)" ] && break
    sleep 0.2
  done
  echo "$a $k"
}
read -r a0 a1 a2 a3 k0 k1 k2 k3 <<<"$(snapshot)"
docker exec psnictest-soak-k ping -q -c 3000 -i 0.01 -s 800 "$sink_ip" >/dev/null &
traffic=$!
echo "soak: $RESTARTS kill -9 restarts during traffic..." >&2
for _ in $(seq 1 "$RESTARTS"); do
  sleep 0.5
  kill -KILL "$agent"; wait "$agent" 2>/dev/null || true; agent=""
  sleep 0.3
  start_agent
done
wait "$traffic"
sleep 1
read -r b0 b1 b2 b3 l0 l1 l2 l3 <<<"$(snapshot)"
agent_delta="$((b0 - a0)) $((b1 - a1)) $((b2 - a2)) $((b3 - a3))"
kernel_delta="$((l0 - k0)) $((l1 - k1)) $((l2 - k2)) $((l3 - k3))"
# Debian 12's bpftool (7.1) does not show a TCX link's interface: the links running a psnic
# program are counted instead, and the agent's count of interfaces. Two interfaces are counted
# (the sink's and this one's), so one attachment per direction is 4 links.
psnic_ids=$(bpftool -j prog show | jq -c '[.[] | select(.name | test("^psnic_(ingress|egress)$")) | .id]')
psnic_links=$(bpftool -j link show | jq --argjson ids "$psnic_ids" '[.[] | select(.prog_id as $p | $ids | index($p))] | length')
counted=$(scrape | awk '/^psnic_attached_interfaces/ {n += $2} END {print n + 0}')

# Each check's verdict; a failed one is also noted in a file, since verdicts print from subshells.
verdict() { if eval "$1"; then echo yes; else echo x >>"$work/failed"; echo "**no**"; fi; }
echo "## soak (kernel $(uname -r), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| check | value | holds |"
echo "| --- | --- | --- |"
docker_failures=$(cat "$work/docker_failures" 2>/dev/null | wc -l)
echo "| churn: $removed containers cycled ($WORKERS at a time) in; cycles dockerd failed | ${churn_seconds} s; $docker_failures | |"
echo "| series counter decreases between scrapes | $decreases | $(verdict "[ $decreases -eq 0 ]") |"
echo "| removed containers never exported / retired early / late (> ${RETIRE}+1.5 s) | $unseen / $early / $late (latest: ${worst} s after its removal returned) | $(verdict "[ $unseen -eq 0 ] && [ $early -eq 0 ] && [ $late -eq 0 ]") |"
echo "| RSS kB before / after | $rss0 / $rss1 | $(verdict "[ $rss1 -le $((rss0 + 2048)) ]") |"
echo "| open fds before / after | $fds0 / $fds1 | $(verdict "[ $fds1 -le $fds0 ]") |"
echo "| psnic programs loaded before / after | $progs0 / $progs1 | $(verdict "[ $progs1 -eq $progs0 ]") |"
echo "| pinned links before / after | $links0 / $links1 | $(verdict "[ $links1 -eq $links0 ]") |"
sink_alive=$(docker inspect -f '{{.State.Running}}' psnictest-soak-sink 2>/dev/null || echo gone)
echo "| the sink container still running at the end (its links are the ones pinned) | $sink_alive | $(verdict "[ $sink_alive = true ]") |"
echo "| psnic_errors_total | $errors | $(verdict "[ $errors -eq 0 ]") |"
echo "| kill -9 restarts during traffic: agent delta (rx bytes, rx packets, tx bytes, tx packets) | $agent_delta | $(verdict "[ \"$agent_delta\" = \"$kernel_delta\" ]") |"
echo "| the kernel's delta | $kernel_delta | |"
echo "| after $RESTARTS restarts: interfaces counted, links running a psnic program | $counted, $psnic_links | $(verdict "[ $counted -eq 2 ] && [ $psnic_links -eq 4 ]") |"
[ ! -e "$work/failed" ]
