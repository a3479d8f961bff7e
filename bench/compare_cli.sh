#!/usr/bin/env bash
# compare_cli.sh — time the whole `psnic PID` process side by side with the
# tools people use today to find a container's host-side veth, on the same
# container, in ONE hyperfine invocation (hyperfine -N: no shell in between).
#
# Commands measured (all against the same docker container PID):
#   psnic            $PSNIC PID
#   nsenter          nsenter -t PID -n ip -o link     (container side)
#   ip               ip -o link                       (host side)
#   sh nsenter+ip    sh -c 'nsenter ... ; ip -o link' (reference only: includes
#                                                     the startup of sh)
#   cgroup-network   netdata's cgroup-network --pid PID (Debian netdata-core)
#   true             /bin/true (reference only: the cost of spawning any
#                    process under hyperfine -N on this machine; no program,
#                    psnic included, can have a median below it)
#
# "nsenter+ip together" — what a script really pays to resolve the host peer
# (list the container's links, list the host's links, text-match
# eth0@ifN <-> N:) — is reported as the SUM of the medians of `nsenter` and
# `ip` measured alone, so that no shell startup is charged to the competitor.
# Its mean is the sum of the two means; its stddev is sqrt(s1^2 + s2^2)
# (assumes the two are independent). The `sh -c` row is shown for reference
# only. psnic is never wrapped in sh.
#
# cgroup-network is NOT installed from its package (that would start netdata
# services): the .deb is fetched with `apt-get download` into
# ${XDG_CACHE_HOME:-/var/cache}/psnic-bench and unpacked with `dpkg -x`.
# It runs with KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT set (dummy
# values) because that is the only switch that makes it skip its shell helper
# (cgroup-network-helper.sh); it only tests that both are set, and never
# connects anywhere (checked below with strace when strace is available).
# It prints "HOST_IFACE GUEST_IFACE" per line and exits 0 when it found one.
#
# Environment:
#   PSNIC        psnic binary (default: build/release/psnic under the repo
#                root; a relative value is taken from the directory you ran
#                this script in)
#   RUNS         hyperfine runs per command (default 300; >= 200 advised)
#   WARMUP       hyperfine warmup runs per command (default 20)
#   RESULTS_DIR  where JSON and the summary go
#                (default: $CACHE/results/<UTC timestamp>)
#   SKIP_PSNIC_CHECK=1  do not require psnic's output to equal the others'
#                (only for trying the script with a stand-in PSNIC)
#
# Targets (reported, not asserted): psnic >= 4x faster than nsenter+ip
# together, >= 3.5x faster than cgroup-network.
#
# Needs root (nsenter, cgroup-network, docker). Creates only objects named
# psnictest-*, removes them on exit; no traffic leaves the machine.

set -euo pipefail

log() { printf '[compare_cli] %s\n' "$*" >&2; }
die() { printf '[compare_cli] ERROR: %s\n' "$*" >&2; exit 1; }

ORIG_PWD=$PWD
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
cd "$REPO_ROOT"

RUNS=${RUNS:-300}
WARMUP=${WARMUP:-20}
CACHE_DIR=${XDG_CACHE_HOME:-/var/cache}/psnic-bench
IMAGE=psnic-test:latest
K8S_ENV=(KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=443)

[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer (got '$WARMUP')"
((RUNS >= 200)) || log "warning: RUNS=$RUNS is below 200; figures will be noisier"
[[ $(id -u) -eq 0 ]] || die "must run as root (nsenter, cgroup-network and docker need it)"

# ---------------------------------------------------------------- psnic path
if [[ -n ${PSNIC:-} ]]; then
    case $PSNIC in
        /*) ;;
        */*) PSNIC=$ORIG_PWD/$PSNIC ;;
        *) PSNIC=$(command -v -- "$PSNIC" || echo "$ORIG_PWD/$PSNIC") ;;
    esac
else
    PSNIC=$REPO_ROOT/build/release/psnic
fi
[[ -f $PSNIC && -x $PSNIC ]] ||
    die "psnic binary not found or not executable: $PSNIC
       build it first (release build into build/release), or point PSNIC at it"

# ---------------------------------------------------------------- cleanup
CONTAINER=""
TMP_DIR=""
cleanup() {
    local rc=$?
    if [[ -n $CONTAINER ]]; then
        docker rm -f "$CONTAINER" >/dev/null 2>&1 || log "warning: could not remove container $CONTAINER"
    fi
    [[ -n $TMP_DIR && -d $TMP_DIR ]] && rm -rf -- "$TMP_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMP_DIR=$(mktemp -d /tmp/psnictest-bench.XXXXXX)

# ---------------------------------------------------------------- packages
APT_UPDATED=0
apt_install() { # install the given Debian packages that are not installed yet
    local missing=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    if ((!APT_UPDATED)); then
        log "apt-get update"
        apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

command -v hyperfine >/dev/null || apt_install hyperfine
command -v nsenter >/dev/null || apt_install util-linux
command -v ip >/dev/null || apt_install iproute2
command -v jq >/dev/null || apt_install jq
command -v docker >/dev/null || die "docker CLI not found (install Debian package docker.io)"

# -N (--shell=none) needs hyperfine >= 1.13
hyperfine --help 2>&1 | grep -q -- '--shell' || die "hyperfine too old (need -N/--shell=none)"

# ---------------------------------------------------------------- cgroup-network
CGN=$CACHE_DIR/netdata-core/usr/lib/netdata/plugins.d/cgroup-network
fetch_cgroup_network() {
    mkdir -p "$CACHE_DIR"
    local deb
    newest_deb() { find "$CACHE_DIR" -maxdepth 1 -name 'netdata-core_*.deb' | sort -V | tail -n1; }
    deb=$(newest_deb)
    if [[ -z $deb ]]; then
        log "downloading netdata-core .deb into $CACHE_DIR (not installing it)"
        if ! (cd "$CACHE_DIR" && apt-get -o APT::Sandbox::User=root download -qq netdata-core >&2); then
            ((APT_UPDATED)) || { apt-get update -qq >&2; APT_UPDATED=1; }
            (cd "$CACHE_DIR" && apt-get -o APT::Sandbox::User=root download -qq netdata-core >&2) ||
                die "apt-get download netdata-core failed"
        fi
        deb=$(newest_deb)
        [[ -n $deb ]] || die "apt-get download left no netdata-core_*.deb in $CACHE_DIR"
    fi
    if [[ ! -x $CGN ]]; then
        rm -rf -- "$CACHE_DIR/netdata-core"
        dpkg -x "$deb" "$CACHE_DIR/netdata-core"
        if [[ ! -x $CGN ]]; then
            CGN=$(find "$CACHE_DIR/netdata-core" -type f -name cgroup-network -perm -u+x | head -n1)
            [[ -n $CGN ]] || die "no cgroup-network binary inside $deb"
        fi
    fi
    # runtime libraries: install the lib* packages netdata-core depends on,
    # but only when the dynamic loader reports something missing.
    if ldd "$CGN" | grep -q 'not found'; then
        local libs
        libs=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/[[:space:]]//g' |
            grep -E '^lib' | grep -v -- '-bin$' || true)
        # shellcheck disable=SC2086
        apt_install $libs
        ! ldd "$CGN" | grep 'not found' || die "cgroup-network still misses shared libraries"
    fi
    CGN_VERSION=$(dpkg-deb -f "$deb" Version)
}
fetch_cgroup_network

# ---------------------------------------------------------------- docker
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || die "docker daemon is not running and dockerd is not installed"
    log "starting dockerd (log: /tmp/dockerd.log); it is left running afterwards"
    nohup setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || die "dockerd did not come up within 60 s (see /tmp/dockerd.log)"
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "building $IMAGE from busybox-static"
    apt_install busybox-static
    rootfs=$TMP_DIR/rootfs
    mkdir -p "$rootfs/bin"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in sh sleep ip ping wget nc httpd; do
        ln -s busybox "$rootfs/bin/$applet"
    done
    tar -C "$rootfs" -c . | docker import - "$IMAGE" >/dev/null
fi

CONTAINER=psnictest-bench-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
log "starting container $CONTAINER"
docker run -d --name "$CONTAINER" "$IMAGE" sleep 3600 >/dev/null
PID=$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")
[[ $PID =~ ^[0-9]+$ && $PID -gt 0 ]] || die "could not get the container's PID (got '$PID')"
log "container PID: $PID"

# ---------------------------------------------------------------- sanity check
# Each tool must succeed and name the same host interface(s).

# nsenter + ip, text-matched the way a script would: a container link
# "N: name@ifM: ..." pairs with the host link "M: hostname@ifN: ...".
ns_out=$(nsenter -t "$PID" -n ip -o link) || die "nsenter -t $PID -n ip -o link failed"
host_out=$(ip -o link) || die "ip -o link failed"
expected=$(
    awk -v host="$host_out" '
        BEGIN {
            n = split(host, lines, "\n")
            for (i = 1; i <= n; i++) {
                split(lines[i], f, " ")
                idx = f[1]; sub(/:$/, "", idx)
                name = f[2]; sub(/:$/, "", name)
                peer = ""
                if (match(name, /@if[0-9]+$/)) { peer = substr(name, RSTART + 3); name = substr(name, 1, RSTART - 1) }
                hname[idx] = name; hpeer[idx] = peer
            }
        }
        {
            idx = $1; sub(/:$/, "", idx)
            name = $2; sub(/:$/, "", name)
            if (match(name, /@if[0-9]+$/)) {
                peer = substr(name, RSTART + 3)
                if ((peer in hname) && hpeer[peer] == idx) print hname[peer]
            }
        }' <<<"$ns_out" | sort -u
)
[[ -n $expected ]] || die "nsenter+ip found no host veth peer for PID $PID:
$ns_out"

cgn_out=$(env "${K8S_ENV[@]}" "$CGN" --pid "$PID" 2>"$TMP_DIR/cgn.err") ||
    die "cgroup-network --pid $PID exited $? : $(cat "$TMP_DIR/cgn.err")"
cgn_names=$(awk 'NF { print $1 }' <<<"$cgn_out" | sort -u)

psnic_out=$("$PSNIC" "$PID" 2>"$TMP_DIR/psnic.err") ||
    die "$PSNIC $PID exited $? : $(cat "$TMP_DIR/psnic.err")"
psnic_names=$(awk 'NF { print $1 }' <<<"$psnic_out" | sort -u)

log "nsenter+ip     -> $(tr '\n' ' ' <<<"$expected")"
log "cgroup-network -> $(tr '\n' ' ' <<<"$cgn_names")(raw: $(tr '\n' ';' <<<"$cgn_out"))"
[[ $cgn_names == "$expected" ]] ||
    die "cgroup-network names '$cgn_names' but nsenter+ip names '$expected'"
if [[ ${SKIP_PSNIC_CHECK:-0} == 1 ]]; then
    log "psnic          -> (check skipped: SKIP_PSNIC_CHECK=1)"
else
    log "psnic          -> $(tr '\n' ' ' <<<"$psnic_names")"
    [[ $psnic_names == "$expected" ]] ||
        die "psnic names '$psnic_names' but nsenter+ip and cgroup-network name '$expected'"
fi

# cgroup-network must not touch the network with the dummy kubernetes env.
if command -v strace >/dev/null; then
    env "${K8S_ENV[@]}" strace -f -qq -e trace=socket,connect,sendto,sendmsg,bind \
        -o "$TMP_DIR/cgn.strace" "$CGN" --pid "$PID" >/dev/null 2>&1 || true
    if grep -E 'AF_INET|AF_INET6' "$TMP_DIR/cgn.strace" | grep -qE 'connect|sendto|sendmsg|bind'; then
        die "cgroup-network made an IP network call: $(cat "$TMP_DIR/cgn.strace")"
    fi
    log "cgroup-network network syscalls (strace): $(grep -cE '^[0-9]+ +(socket|connect|sendto|sendmsg|bind)\(' "$TMP_DIR/cgn.strace" || true)"
else
    log "strace not found: skipping the no-network check of cgroup-network"
fi

# ---------------------------------------------------------------- benchmark
RESULTS_DIR=${RESULTS_DIR:-$CACHE_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS_DIR"
JSON=$RESULTS_DIR/compare_cli.json
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

TRUE_BIN=/bin/true
# An empty program linked statically like psnic (built with it): the floor for psnic itself.
FLOOR_BIN=$(dirname "$PSNIC")/spawn_floor
[[ -x $FLOOR_BIN ]] || die "$FLOOR_BIN not found: build it with the release preset"
SH_CMD="nsenter -t $PID -n ip -o link >/dev/null; ip -o link >/dev/null"
log "hyperfine: $RUNS runs + $WARMUP warmup per command, results in $RESULTS_DIR"
# The kubernetes variables are inherited by every measured command; only
# cgroup-network looks at them.
env "${K8S_ENV[@]}" hyperfine -N --style basic \
    --runs "$RUNS" --warmup "$WARMUP" \
    --export-json "$JSON" \
    -n psnic "$PSNIC $PID" \
    -n nsenter "nsenter -t $PID -n ip -o link" \
    -n ip "ip -o link" \
    -n sh-nsenter-ip "sh -c '$SH_CMD'" \
    -n cgroup-network "$CGN --pid $PID" \
    -n true "$TRUE_BIN" \
    -n floor "$FLOOR_BIN" >&2

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
# One TSV row per line: label, median_ms, mean_ms, stddev_ms, rel_stddev_%, ratio
rows=$(jq -r '
    def r(n): .results[] | select(.command == n);
    (r("psnic").median) as $p
    | def row(name; med; mean; sd):
        [name, med * 1000, mean * 1000, sd * 1000,
         (if mean > 0 then sd / mean * 100 else 0 end),
         (med / $p)] | @tsv;
    row("psnic PID"; r("psnic").median; r("psnic").mean; r("psnic").stddev),
    row("nsenter -t PID -n ip -o link"; r("nsenter").median; r("nsenter").mean; r("nsenter").stddev),
    row("ip -o link"; r("ip").median; r("ip").mean; r("ip").stddev),
    row("nsenter+ip together (sum of the two above)";
        r("nsenter").median + r("ip").median;
        r("nsenter").mean + r("ip").mean;
        ((r("nsenter").stddev | . * .) + (r("ip").stddev | . * .) | sqrt)),
    row("sh -c \"nsenter ...; ip ...\" (reference, incl. sh startup)";
        r("sh-nsenter-ip").median; r("sh-nsenter-ip").mean; r("sh-nsenter-ip").stddev),
    row("cgroup-network --pid PID (netdata-core '"$CGN_VERSION"')";
        r("cgroup-network").median; r("cgroup-network").mean; r("cgroup-network").stddev),
    row("/bin/true (reference: a dynamic program doing nothing)"; r("true").median; r("true").mean; r("true").stddev),
    row("spawn_floor (reference: a static program doing nothing)"; r("floor").median; r("floor").mean; r("floor").stddev)
' "$JSON")

ratio_of() { awk -F'\t' -v l="$1" 'index($1, l) == 1 { printf "%.2f", $6 }' <<<"$rows"; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r + 0 >= t + 0) ? "met" : "NOT met" }'; }
r_together=$(ratio_of "nsenter+ip together")
r_cgn=$(ratio_of "cgroup-network")
# The best ratio any program could reach here: competitor median / median of
# spawn_floor, which only pays for being spawned.
best_of() {
    jq -r --arg a "$1" --arg b "${2:-}" '
        def m(n): [.results[] | select(.command == n) | .median] | add // 0;
        ((m($a) + m($b)) / m("floor")) * 100 | round / 100' "$JSON"
}
b_together=$(best_of nsenter ip)
b_cgn=$(best_of cgroup-network)

SUMMARY=$RESULTS_DIR/summary.md
{
    echo "## psnic vs. existing tools (container PID $PID, $RUNS runs, $WARMUP warmup, hyperfine -N)"
    echo
    echo "| command | median (ms) | mean ± stddev (ms) | rel. stddev | median / psnic median |"
    echo "|---|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %.3f | %.3f ± %.3f | %.1f%% | %.2fx |\n", $1, $2, $3, $4, $5, $6 }' <<<"$rows"
    echo
    echo "\"nsenter+ip together\" = median(nsenter) + median(ip), each measured alone without a shell;"
    echo "its mean is the sum of the means and its stddev sqrt(s1^2 + s2^2). The sh -c row is for reference only."
    echo
    echo "Targets (reported, not asserted):"
    echo "- psnic >= 4x faster than nsenter+ip together: ${r_together}x — $(verdict "$r_together" 4)"
    echo "- psnic >= 3.5x faster than cgroup-network: ${r_cgn}x — $(verdict "$r_cgn" 3.5)"
    echo
    echo "Ceiling: a static program that does nothing reaches ${b_together}x against nsenter+ip"
    echo "and ${b_cgn}x against cgroup-network on this machine (whole-process timing)."
    echo
    echo "Machine: nproc=$(nproc), load average before=$LOAD_BEFORE after=$LOAD_AFTER, kernel $(uname -r), $(hyperfine --version)"
    echo "psnic: $PSNIC"
    echo "JSON: $JSON"
} | tee "$SUMMARY"
