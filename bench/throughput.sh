#!/usr/bin/env bash
# throughput.sh: TCP throughput across a veth with and without psnic's counter attached.
#
# Makes a namespace psnictest-tp whose eth0 pairs with host veth psnictesttp0 (198.18.255.1/30
# on the host, .2 inside: RFC 2544's benchmarking range, on this machine only), runs an iperf3
# server inside it and an iperf3 client on the host, and alternates runs without psnic and with
# `psnic-agent --pid <a process in the namespace>` attached (TCX by default; ATTACH_MODE=tc for
# the fallback). Reports the median of each and their ratio. Target: <= 2 % loss.
#
# Environment: PSNIC_AGENT (default build/release/psnic-agent), ROUNDS (default 7),
# SECONDS_PER_RUN (default 3), ATTACH_MODE (auto|tcx|tc, default auto). Needs root.
set -euo pipefail

cd "$(dirname "$0")/.."
AGENT=${PSNIC_AGENT:-build/release/psnic-agent}
ROUNDS=${ROUNDS:-7}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
ATTACH_MODE=${ATTACH_MODE:-auto}
NS=psnictest-tp
HOST_VETH=psnictesttp0
HOST_ADDR=198.18.255.1
NS_ADDR=198.18.255.2

[ "$(id -u)" -eq 0 ] || { echo "throughput.sh: needs root" >&2; exit 2; }
[ -x "$AGENT" ] || { echo "throughput.sh: $AGENT not built (cmake --workflow --preset release)" >&2; exit 2; }
for tool in iperf3 jq; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  ip link del "$HOST_VETH" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

ip netns add "$NS"
ip link add "$HOST_VETH" type veth peer name eth0 netns "$NS"
ip addr add "$HOST_ADDR/30" dev "$HOST_VETH"
ip -n "$NS" addr add "$NS_ADDR/30" dev eth0
ip link set "$HOST_VETH" up
ip -n "$NS" link set eth0 up
ip -n "$NS" link set lo up

ip netns exec "$NS" iperf3 --server --bind "$NS_ADDR" --port 5201 >/dev/null 2>&1 &
server=$!
pids+=("$server")
sleep 0.5

# One iperf3 run, host -> namespace; prints bits per second received.
measure() {
  iperf3 --client "$NS_ADDR" --port 5201 --time "$SECONDS_PER_RUN" --json |
    jq '.end.sum_received.bits_per_second'
}

without=()
with=()
for round in $(seq 1 "$ROUNDS"); do
  without+=("$(measure)")
  "$AGENT" --pid "$server" --quiet --listen 127.0.0.1:0 --attach-mode "$ATTACH_MODE" \
    2>/tmp/psnictest-tp-agent.log &
  agent=$!
  for _ in $(seq 1 50); do grep -q counting /tmp/psnictest-tp-agent.log && break; sleep 0.1; done
  grep -q counting /tmp/psnictest-tp-agent.log || { cat /tmp/psnictest-tp-agent.log >&2; exit 1; }
  with+=("$(measure)")
  kill -INT "$agent"
  wait "$agent"
  echo "round $round: without $(echo "${without[-1]}" | awk '{printf "%.2f", $1/1e9}') Gbit/s," \
       "with $(echo "${with[-1]}" | awk '{printf "%.2f", $1/1e9}') Gbit/s" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
m_without=$(median "${without[@]}")
m_with=$(median "${with[@]}")
spread() { printf '%s\n' "$@" | sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%.2f-%.2f", min/1e9, max/1e9}'; }
echo "## veth TCP throughput, $ROUNDS alternating rounds of ${SECONDS_PER_RUN}s (iperf3, mode $ATTACH_MODE)"
echo
echo "| | median | range |"
echo "|---|---:|---:|"
echo "| no program | $(awk -v v="$m_without" 'BEGIN{printf "%.2f Gbit/s", v/1e9}') | $(spread "${without[@]}") Gbit/s |"
echo "| psnic attached | $(awk -v v="$m_with" 'BEGIN{printf "%.2f Gbit/s", v/1e9}') | $(spread "${with[@]}") Gbit/s |"
echo
awk -v a="$m_with" -v b="$m_without" 'BEGIN {
  loss = (1 - a / b) * 100
  printf "with/without = %.4f (%.2f %% %s; target <= 2 %% loss)\n", a / b, (loss < 0 ? -loss : loss), (loss < 0 ? "gain: noise" : "loss")
}'
echo "machine: nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
