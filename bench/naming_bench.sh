#!/usr/bin/env bash
# naming_bench.sh: how soon the automatic psnic-agent names a new container, per runtime (issue
# 11, item 3): from its host veth's appearance (the kernel's RTM_NEWLINK, timestamped by
# `ip -ts monitor link`) to the first /metrics that shows the veth's series with the container's
# name. Docker and podman side by side in one run: COUNT (default 30) containers each, started
# one at a time, alternating docker, podman, docker, ...; each removed once measured (outside
# the timed window). Goal: p99 <= 1 s.
#
# podman is asked through its Docker-compatible API, served by `podman system service` started
# here on a socket of the bench's own. Images: the e2e tests' psnic-test:latest (busybox-static;
# tests/e2e/ensure-docker.sh makes it), loaded into podman by `docker save | podman load`.
# /metrics is polled every 10 ms (curl), so each figure includes up to one poll interval and one
# scrape. Everything made is named psnictest-nb-*; removed on exit. Needs root.
# Environment: PSNIC_AGENT (default build/release/psnic-agent), COUNT.
set -euo pipefail
export TZ=UTC
cd "$(dirname "$0")/.."
AGENT=${PSNIC_AGENT:-build/release/psnic-agent}
COUNT=${COUNT:-30}
PORT=19897
SOCKET=/run/psnictest-nb/podman.sock
IMAGE=psnic-test:latest
PODMAN_OPTIONS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
[ "$(id -u)" -eq 0 ] || { echo "naming_bench.sh: needs root" >&2; exit 2; }
[ -x "$AGENT" ] || { echo "naming_bench.sh: $AGENT not built" >&2; exit 2; }
command -v podman >/dev/null || { echo "naming_bench.sh: podman missing (.ci/install-deps --tests)" >&2; exit 2; }
docker image inspect "$IMAGE" >/dev/null 2>&1 || bash tests/e2e/ensure-docker.sh >/dev/null

work=$(mktemp -d /tmp/psnictest-nb.XXXXXX)
agent="" service="" monitor=""
cleanup() {
  docker ps -aq --filter name=psnictest-nb- | xargs -r docker rm -f >/dev/null 2>&1 || true
  podman ps -aq --filter name=psnictest-nb- | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  for p in $agent $service $monitor; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work" /run/psnictest-nb
}
trap cleanup EXIT

podman image exists "localhost/$IMAGE" ||
  { docker save "$IMAGE" | podman load >/dev/null && podman tag "docker.io/library/$IMAGE" "localhost/$IMAGE"; }
mkdir -p /run/psnictest-nb
podman system service --time=0 "unix://$SOCKET" 2>"$work/podman.log" &
service=$!
for _ in $(seq 1 200); do [ -S "$SOCKET" ] && break; sleep 0.05; done

ip -ts -o monitor link >"$work/links" &
monitor=$!
"$AGENT" --no-pin --listen 127.0.0.1:$PORT --podman-socket "$SOCKET" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics" && break; sleep 0.01; done
grep -q "following podman" "$work/agent.log" || sleep 1

percentile() {  # p, values on stdin (ms)
  sort -g | awk -v p="$1" '{v[NR]=$1} END {i=int(p*NR+0.999999); if (i<1) i=1; printf "%.0f", v[i]}'
}
# The time, in ns since midnight, of the first RTM_NEWLINK of `veth` at or after `after` (ns
# since midnight). `ip -ts` prints the local time, which is UTC here (TZ=UTC is set below).
appeared() {  # veth after
  awk -v veth="$1" -v after="$2" '
    !/\] Deleted / && match($0, /^\[[0-9T:.-]+\]/) {
      split(substr($0, 2, RLENGTH - 2), dt, "T"); split(dt[2], hms, ":")
      ns = (hms[1] * 3600 + hms[2] * 60 + hms[3]) * 1e9
      if (ns >= after && index($0, " " veth "@") > 0) { printf "%.0f\n", ns; exit }
    }' "$work/links"
}
# Now, in ns since midnight (UTC).
now() { echo $(( $(date +%s%N) % 86400000000000 )); }
: >"$work/docker" ; : >"$work/podman" ; : >"$work/docker-after-run" ; : >"$work/podman-after-run"
for i in $(seq 1 "$COUNT"); do
  for runtime in docker podman; do
    name=psnictest-nb-$runtime-$i
    t0=$(now)
    if [ "$runtime" = docker ]; then
      docker run -d --name "$name" "$IMAGE" sleep 600 >/dev/null
    else
      podman run -d --name "$name" "${PODMAN_OPTIONS[@]}" "localhost/$IMAGE" sleep 600 >/dev/null
    fi
    returned=$(now)
    named="" veth=""
    until [ -n "$veth" ]; do
      line=$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -m1 "container_name=\"$name\"" || true)
      named=$(now)
      veth=$(sed -n 's/.*host_interface="\([^"]*\)".*/\1/p' <<<"$line")
      [ $((named - t0)) -lt 30000000000 ] || { echo "$name not named in 30 s" >&2; exit 1; }
      [ -n "$veth" ] || sleep 0.01
    done
    sleep 0.05  # the monitor's line is written
    up=$(appeared "$veth" "$t0")
    [ -n "$up" ] || { echo "$name: no RTM_NEWLINK for $veth" >&2; exit 1; }
    echo $(( (named - up) / 1000000 )) >>"$work/$runtime"
    # The part after the runtime said the container runs (its own start-up excluded).
    echo $(( named > returned ? (named - returned) / 1000000 : 0 )) >>"$work/$runtime-after-run"
    # -t 0: sleep as PID 1 ignores SIGTERM, and podman would wait 10 s for it.
    if [ "$runtime" = docker ]; then docker rm -f "$name" >/dev/null; else podman rm -f -t 0 "$name" >/dev/null; fi
  done
done

echo "naming latency (ms), $COUNT containers each: from the veth's RTM_NEWLINK, and from"
echo "\`run -d\` returning (the runtime's own start-up excluded), to named in /metrics"
printf '%-22s %8s %8s %8s\n' "" p50 p99 max
for series in docker podman docker-after-run podman-after-run; do
  printf '%-22s %8s %8s %8s\n' "$series" "$(percentile 0.5 <"$work/$series")" \
    "$(percentile 0.99 <"$work/$series")" "$(percentile 1 <"$work/$series")"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "agent warnings: $(grep -c 'level=warn' "$work/agent.log" || true)"
