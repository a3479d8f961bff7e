#!/usr/bin/env bash
# CTest fixture of the kernel-touching tiers, after leftovers.before: fails at once, in one line,
# when psnic's programs are loaded that this run did not load: another psnic-agent on the machine
# (or one killed, its programs left pinned). Such an agent attaches to every host veth, the tests'
# included, and dozens of count and chain mismatches would follow; this names the cause instead.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# psnic's programs by id: psnic_ingress, psnic_egress and psnic_peer_ingress, or with --split
# protocol psnic_split_in and psnic_split_eg (bpf/traffic.bpf.c; the kernel keeps 15 characters
# of a name).
foreign() {
  bpftool prog show -j 2>/dev/null |
    jq -r '.[] | select(.name == "psnic_ingress" or .name == "psnic_egress" or
                            .name == "psnic_peer_ingr" or .name == "psnic_split_in" or
                            .name == "psnic_split_eg") | .id'
}

# The kernel frees a program detached by an earlier run's cleanup in a work queue, after an RCU
# grace period: give it a moment.
for _ in $(seq 1 30); do
  ids=$(foreign)
  [ -z "$ids" ] && { echo "no-foreign-psnic: no psnic program loaded"; exit 0; }
  sleep 0.1
done

described=()
for id in $ids; do
  holders=$(grep -lsx "prog_id:[[:space:]]*$id" /proc/[0-9]*/fdinfo/* 2>/dev/null |
    cut -d/ -f3 | sort -u | while read -r pid; do echo "$(cat "/proc/$pid/comm" 2>/dev/null)($pid)"; done |
    paste -sd, -)
  described+=("prog $id held by ${holders:-pins or links only}")
done
list=$(printf '%s; ' "${described[@]}")
echo "no-foreign-psnic: psnic programs this test run did not load are on this host" \
  "(${list%; }): stop that psnic-agent and run psnic-agent --cleanup before the tests" >&2
exit 1
