#!/usr/bin/env bash
# host_agent_bench.sh: the automatic psnic-agent, against its issue's targets.
#
# 1. Attach latency: with the agent running, 100 veths into fresh namespaces are made one at a
#    time; for each, the time from `ip link add` returning to its series appearing in /metrics
#    (end to end, so it includes one scrape), and the agent's own psnic_attach_latency_seconds
#    (link notification read -> counting). Target: p99 <= 50 ms.
# 2. Scale: N (default 1000) namespaces with veths exist when the agent starts: time until all
#    are attached (<= 2 s), scrape of /metrics with N owners, gzip, median of 20 (<= 20 ms), RSS
#    (<= 40 MB), CPU over 10 idle seconds (~0).
# 3. Restart: the agent is killed with SIGKILL and started again; time until it has adopted all
#    N pinned interfaces. Then SIGTERM: time until it exits (pinned, it leaves them counting).
# `host_agent_bench.sh hung-daemon` measures 1. only, side by side (issue 10): the agent with no
# Docker daemon and with one that accepts connections and never answers (bench/hung_daemon),
# alternated in ROUNDS rounds (default 4) of PER_ROUND veths (default 50), each round a cold
# start; and, once a round, the time from SIGTERM to exit when it comes 0.3 s after a start,
# while the agent subscribes to the daemon's events. The agent sees the daemon's socket at
# /var/run/docker.sock, bind-mounted there in a mount namespace of its own (so that revisions
# without --docker-socket are measured alike); "no daemon" is a plain file there, which refuses
# every connection at once.
# `host_agent_bench.sh expedite` measures the cold start and the stop side by side (issue 12):
# N (default 1100) namespaces with veths exist when an unpinned agent (--no-pin, so that every
# run starts cold and its SIGTERM detaches everything) starts; the time until all are counted,
# then until each one's receive is counted at its container-side peer (in tc mode: skipped), then
# from SIGTERM to exit; alternated without and with --expedite-attach in ROUNDS rounds
# (default 3). /sys/kernel/rcu_expedited is held at 0 (ordinary grace periods) for the run,
# checked to read 0 after each agent exits, and given back its value on exit.
# Everything made is named psnictest-hab-* / psnictesth* (pins in /sys/fs/bpf/psnictest-hab),
# and removed on exit. Needs root.
# Environment: PSNIC_AGENT (default build/release/psnic-agent), N (default 1000), ATTACH_MODE
# (auto, tcx or tc; default auto); hung-daemon mode: HUNG_DAEMON (default
# build/release/hung_daemon), ROUNDS, PER_ROUND.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENT=${PSNIC_AGENT:-build/release/psnic-agent}
N_GIVEN=${N:-}
N=${N:-1000}
ATTACH_MODE=${ATTACH_MODE:-auto}
LATENCY_ROUNDS=100
PORT=19899
PIN_DIR=/sys/fs/bpf/psnictest-hab
[ "$(id -u)" -eq 0 ] || { echo "host_agent_bench.sh: needs root" >&2; exit 2; }
[ -x "$AGENT" ] || { echo "host_agent_bench.sh: $AGENT not built" >&2; exit 2; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

agent=""
daemon=""
hung_dir=""
wrap=()  # what start_agent runs the agent under
batch=$(mktemp /tmp/psnictest-hab.XXXXXX)
stop_agent() {
  if [ -n "$agent" ]; then kill -INT "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; fi
  agent=""
}
cleanup() {
  stop_agent
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  [ -z "$hung_dir" ] || rm -rf "$hung_dir"
  "$AGENT" --cleanup --pin-dir "$PIN_DIR" 2>/dev/null || true
  ip netns list | awk '$1 ~ /^psnictest-hab-/ {print "netns del " $1}' >"$batch"
  ip -force -batch "$batch" 2>/dev/null || true
  rm -f "$batch"
}
trap cleanup EXIT
start_agent() {
  "${wrap[@]}" "$AGENT" --listen 127.0.0.1:$PORT --attach-mode "$ATTACH_MODE" --pin-dir "$PIN_DIR" "$@" \
    2>>/tmp/psnictest-hab-agent.log &
  agent=$!
  for _ in $(seq 1 200); do
    # Its own answer, not another agent's on the same port.
    kill -0 "$agent" 2>/dev/null || { echo "agent exited:" >&2; tail -3 /tmp/psnictest-hab-agent.log >&2; exit 1; }
    curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics" && return
    sleep 0.01
  done
  echo "agent did not start" >&2; exit 1
}
scrape() { curl -s "http://127.0.0.1:$PORT/metrics"; }
veth_name() { printf 'psnictesth%04x' "$1"; }
percentile() {  # p, values on stdin (ms)
  sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int(p*NR+0.999999); if (i<1) i=1; printf "%.1f", v[i]}'
}
: >/tmp/psnictest-hab-agent.log
# Makes veths FIRST.. FIRST+COUNT-1 one at a time into fresh namespaces; appends to FILE the ms
# from `ip link add` returning to the veth's series in /metrics.
attach_latencies() {  # FIRST COUNT FILE
  local i name t0 t1
  for i in $(seq "$1" $(($1 + $2 - 1))); do
    ip netns add "psnictest-hab-$i"
    name=$(veth_name "$i")
    ip link add "$name" type veth peer name eth0 netns "psnictest-hab-$i"
    t0=$(date +%s%N)
    until grep -q "host_interface=\"$name\"" <<<"$(scrape)"; do
      [ $(($(date +%s%N) - t0)) -lt 60000000000 ] || { echo "$name not counted after 60 s" >&2; exit 1; }
    done
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 )) | awk '{printf "%.3f\n", $1/1000}' >>"$3"
  done
}

# Makes namespaces psnictest-hab-FIRST.. FIRST+COUNT-1, each with a veth to the host.
make_veths() {  # FIRST COUNT
  for i in $(seq "$1" $(($1 + $2 - 1))); do echo "netns add psnictest-hab-$i"; done >"$batch"
  for i in $(seq "$1" $(($1 + $2 - 1))); do
    echo "link add $(veth_name "$i") type veth peer name eth0 netns psnictest-hab-$i"
  done >>"$batch"
  ip -batch "$batch"
}
# The interfaces the agent counts, by its own psnic_attached_interfaces.
attached_now() {
  scrape | awk '$1 ~ /^psnic_attached_interfaces/ {n += $2} END {print n + 0}'
}
# Those whose receive is counted at the container-side peer, by psnic_receive_at_peer_interfaces.
at_peer_now() {
  scrape | awk '$1 == "psnic_receive_at_peer_interfaces" {print $2 + 0; found = 1} END {if (!found) print 0}'
}

if [ "${1:-}" = expedite ]; then
  N=${N_GIVEN:-1100}
  ROUNDS=${ROUNDS:-3}
  knob=/sys/kernel/rcu_expedited
  # The comparison needs ordinary grace periods: the knob is held at 0 for the run and given back
  # its exact value on exit, whatever happens.
  knob_before=$(cat $knob)
  trap 'echo "$knob_before" >'"$knob"'; cleanup' EXIT
  echo 0 >$knob
  echo "making $N namespaces with veths..." >&2
  make_veths 0 "$N"
  # Everything counted beside the bench's own veths (other host peers on the machine).
  results=$(mktemp /tmp/psnictest-hab-exp.XXXXXX)
  for round in $(seq 1 "$ROUNDS"); do
    for kind in plain expedite; do
      args=(--no-pin)
      [ "$kind" = plain ] || args+=(--expedite-attach)
      start=$(date +%s%N)
      start_agent "${args[@]}"
      until [ "$(attached_now)" -ge "$N" ]; do
        [ $(($(date +%s%N) - start)) -lt 120000000000 ] || { echo "$kind: not all attached after 120 s" >&2; exit 1; }
        sleep 0.01
      done
      up=$(( $(date +%s%N) - start ))
      # Then each one's receive moved to its container-side peer (a TCX attach each, in the
      # namespace): psnic_receive_at_peer_interfaces. Not in tc mode, which hooks host sides only.
      if [ "$ATTACH_MODE" != tc ]; then
        until [ "$(at_peer_now)" -ge "$N" ]; do
          [ $(($(date +%s%N) - start)) -lt 120000000000 ] || { echo "$kind: not all hooked at the peer after 120 s" >&2; exit 1; }
          sleep 0.01
        done
      fi
      peer_up=$(( $(date +%s%N) - start ))
      t0=$(date +%s%N)
      kill -TERM "$agent"; wait "$agent" 2>/dev/null || true; agent=""
      down=$(( $(date +%s%N) - t0 ))
      [ "$(cat $knob)" = 0 ] || { echo "$kind: $knob reads $(cat $knob) after the agent exited" >&2; exit 1; }
      echo "$kind $up $down $peer_up" >>"$results"
      echo "round $round, $kind: start $(awk -v ns=$up 'BEGIN {printf "%.2f", ns / 1e9}') s, receive at the peers $(awk -v ns=$peer_up 'BEGIN {printf "%.2f", ns / 1e9}') s, stop $(awk -v ns=$down 'BEGIN {printf "%.2f", ns / 1e9}') s" >&2
    done
  done
  median() {  # kind column: seconds
    awk -v k="$1" -v c="$2" '$1 == k {print $c / 1e9}' "$results" | percentile 0.5
  }
  all() { awk -v k="$1" -v c="$2" '$1 == k {printf "%s%.2f", sep, $c / 1e9; sep = ", "}' "$results"; }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'; }
  up_plain=$(median plain 2); up_exp=$(median expedite 2)
  down_plain=$(median plain 3); down_exp=$(median expedite 3)
  peer_plain=$(median plain 4); peer_exp=$(median expedite 4)
  echo "## psnic-agent ($AGENT), --no-pin, $N veths (rcu_expedited was $knob_before, held at 0 meanwhile), without and with --expedite-attach, alternated in $ROUNDS rounds (kernel $(uname -r), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| measure, median of $ROUNDS | without | with --expedite-attach | without / with |"
  echo "|---|---:|---:|---:|"
  echo "| start to all $N counted | $up_plain s | $up_exp s | $(ratio "$up_plain" "$up_exp")x |"
  echo "| start to all $N receiving at the container-side peer | $peer_plain s | $peer_exp s | $(ratio "$peer_plain" "$peer_exp")x |"
  echo "| SIGTERM to exit, all detached (peers too) | $down_plain s | $down_exp s | $(ratio "$down_plain" "$down_exp")x |"
  echo
  echo "Every run (s): start without $(all plain 2); with $(all expedite 2). At the peers without $(all plain 4); with $(all expedite 4). Stop without $(all plain 3); with $(all expedite 3)."
  rm -f "$results"
  exit 0
fi

if [ "${1:-}" = hung-daemon ]; then
  HUNG_DAEMON=${HUNG_DAEMON:-build/release/hung_daemon}
  ROUNDS=${ROUNDS:-4}
  PER_ROUND=${PER_ROUND:-50}
  [ -x "$HUNG_DAEMON" ] || { echo "host_agent_bench.sh: $HUNG_DAEMON not built" >&2; exit 2; }
  [ -S /var/run/docker.sock ] || [ -e /var/run/docker.sock ] ||
    { echo "host_agent_bench.sh: hung-daemon mode binds over /var/run/docker.sock, which is absent" >&2; exit 2; }
  hung_dir=$(mktemp -d /tmp/psnictest-hab-hung.XXXXXX)
  "$HUNG_DAEMON" "$hung_dir/docker.sock" &
  daemon=$!
  : >"$hung_dir/none"
  for _ in $(seq 1 100); do [ -S "$hung_dir/docker.sock" ] && break; sleep 0.01; done
  for kind in none hung; do : >"$hung_dir/lat-$kind"; : >"$hung_dir/term-$kind"; done
  first=0
  for round in $(seq 1 "$ROUNDS"); do
    for kind in none hung; do
      socket=$hung_dir/none
      [ "$kind" = none ] || socket=$hung_dir/docker.sock
      # shellcheck disable=SC2016
      wrap=(unshare -m --propagation slave sh -c 'mount --bind "$0" /var/run/docker.sock && exec "$@"' "$socket")
      start_agent
      attach_latencies "$first" "$PER_ROUND" "$hung_dir/lat-$kind"
      stop_agent
      "$AGENT" --cleanup --pin-dir "$PIN_DIR" 2>/dev/null || true
      # SIGTERM 0.3 s after a start, while the agent subscribes to the daemon's events (a
      # hung daemon's GET /_ping waits for its 2 s timeout).
      start_agent
      sleep 0.3
      t0=$(date +%s%N)
      kill -TERM "$agent"; wait "$agent" 2>/dev/null || true; agent=""
      echo $(( ($(date +%s%N) - t0) / 1000000 )) >>"$hung_dir/term-$kind"
      "$AGENT" --cleanup --pin-dir "$PIN_DIR" 2>/dev/null || true
      for i in $(seq "$first" $((first + PER_ROUND - 1))); do echo "netns del psnictest-hab-$i"; done >"$batch"
      ip -batch "$batch"
      first=$((first + PER_ROUND))
      echo "round $round, $kind: p99 $(percentile 0.99 <"$hung_dir/lat-$kind") ms so far" >&2
    done
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
  for kind in none hung; do
    declare "p50_$kind=$(percentile 0.5 <"$hung_dir/lat-$kind")"
    declare "p99_$kind=$(percentile 0.99 <"$hung_dir/lat-$kind")"
    declare "max_$kind=$(percentile 1 <"$hung_dir/lat-$kind")"
    declare "term50_$kind=$(percentile 0.5 <"$hung_dir/term-$kind")"
    declare "termmax_$kind=$(percentile 1 <"$hung_dir/term-$kind")"
  done
  echo "## psnic-agent ($AGENT), attach mode $ATTACH_MODE, no Docker daemon vs a hung one, alternated (kernel $(uname -r), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| measure | no daemon | hung daemon | hung / none |"
  echo "|---|---:|---:|---:|"
  echo "| \`ip link add\` to series in /metrics, median of $((ROUNDS * PER_ROUND)) | $p50_none ms | $p50_hung ms | $(ratio "$p50_hung" "$p50_none") |"
  echo "| the same, p99 | $p99_none ms | $p99_hung ms | $(ratio "$p99_hung" "$p99_none") |"
  echo "| the same, max | $max_none ms | $max_hung ms | |"
  echo "| SIGTERM 0.3 s after a start (subscribing to the daemon) to exit, median / max of $ROUNDS | $term50_none / $termmax_none ms | $term50_hung / $termmax_hung ms | |"
  exit 0
fi

# 1. Attach latency.
start_agent
latencies=$(mktemp /tmp/psnictest-hab-lat.XXXXXX)
attach_latencies 0 "$LATENCY_ROUNDS" "$latencies"
e2e_p50=$(percentile 0.5 <"$latencies"); e2e_p99=$(percentile 0.99 <"$latencies")
hist=$(scrape | grep '^psnic_attach_latency_seconds')
count=$(echo "$hist" | awk '$1 == "psnic_attach_latency_seconds_count" {print $2}')
bucket() {  # the smallest bucket bound holding fraction q of the observations
  echo "$hist" | grep _bucket | sed -E 's/.*le="([^"]+)"\} (.*)/\1 \2/' |
    awk -v q="$1" -v n="$count" '$2 >= q * n {print $1 * 1000; exit}'
}
agent_p50=$(bucket 0.5); agent_p99=$(bucket 0.99)
stop_agent
"$AGENT" --cleanup --pin-dir "$PIN_DIR" 2>/dev/null  # the next start is a cold one
rm -f "$latencies"

# 2. Scale.
echo "making $N namespaces with veths..." >&2
make_veths "$LATENCY_ROUNDS" "$N"
total=$((LATENCY_ROUNDS + N))
# Starts the agent; sets `elapsed` to the seconds until it counts all $total interfaces. With
# `late`, one more veth is made 0.2 s into the start and `late_ms` is the time until its series
# is in /metrics: how a container started during a long cold start fares.
time_to_all() {
  local start attached=0 metrics late_at=0 now
  late_ms=-
  start=$(date +%s%N)
  start_agent
  until [ "${attached%.*}" -ge "$total" ] && [ "$late_ms" != "-" -o "${1:-}" != late ]; do
    metrics=$(scrape)
    now=$(date +%s%N)
    attached=$(echo "$metrics" | awk '$1 ~ /^psnic_attached_interfaces/ {n += $2} END {print n + 0}')
    attached=${attached:-0}
    if [ "${1:-}" = late ] && [ "$late_at" = 0 ] && [ $((now - start)) -gt 200000000 ]; then
      ip netns add psnictest-hab-late
      ip link add "$(veth_name 65535)" type veth peer name eth0 netns psnictest-hab-late
      late_at=$(date +%s%N)
      total=$((total + 1))
    fi
    if [ "$late_at" != 0 ] && [ "$late_ms" = "-" ] && grep -q "host_interface=\"$(veth_name 65535)\"" <<<"$metrics"; then
      late_ms=$(( (now - late_at) / 1000000 ))
    fi
    [ $((now - start)) -lt 90000000000 ] || { echo "only $attached of $total attached after 90 s" >&2; exit 1; }
  done
  elapsed=$(awk -v ns=$(( $(date +%s%N) - start )) 'BEGIN {printf "%.2f", ns / 1e9}')
}
time_to_all late; all_attached=$elapsed; late_during_start=$late_ms
scrapes=$(for _ in $(seq 1 20); do
  curl -s -o /dev/null -w '%{time_total}\n' -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PORT/metrics"
done | awk '{printf "%.3f\n", $1 * 1000}')
scrape_median=$(echo "$scrapes" | percentile 0.5)
rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$agent/status)
ticks() { awk '{print $14 + $15}' /proc/$agent/stat; }
t0=$(ticks); sleep 10; t1=$(ticks)
idle_cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz / 10 * 100}')

# 3. Restart after SIGKILL, then SIGTERM.
kill -KILL "$agent"; wait "$agent" 2>/dev/null || true; agent=""
time_to_all; all_adopted=$elapsed
adopted=$(grep -c 'msg="adopted psnictesth' /tmp/psnictest-hab-agent.log || true)
t0=$(date +%s%N)
kill -TERM "$agent"; wait "$agent" 2>/dev/null || true; agent=""
sigterm_exit=$(awk -v ns=$(( $(date +%s%N) - t0 )) 'BEGIN {printf "%.0f", ns / 1e6}')

echo "## psnic-agent, attach mode $ATTACH_MODE (kernel $(uname -r), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| measure | value | target |"
echo "|---|---:|---|"
echo "| attach latency, \`ip link add\` to series in /metrics, p50 / p99 of $LATENCY_ROUNDS | $e2e_p50 / $e2e_p99 ms | p99 <= 50 ms |"
echo "| attach latency, agent's histogram (notification -> counting), p50 / p99 bucket bound | <= $agent_p50 / <= $agent_p99 ms | |"
echo "| start to all $total attached | $all_attached s | <= 2 s |"
echo "| a veth made 0.2 s into that start, to its series in /metrics | $late_during_start ms | |"
echo "| scrape /metrics with $total owners, gzip, median of 20 | $scrape_median ms | <= 20 ms |"
echo "| RSS with $total interfaces | $((rss_kb / 1024)) MB | <= 40 MB |"
echo "| CPU while idle, 10 s | $idle_cpu % | ~0 |"
echo "| restart after SIGKILL to all $total counting again (adopted from the pins: $adopted) | $all_adopted s | |"
echo "| SIGTERM to exit, all left counting | $sigterm_exit ms | |"
