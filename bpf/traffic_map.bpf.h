/* SPDX-License-Identifier: GPL-2.0 */
/* The traffic maps as BPF programs declare them: per-CPU psnic_traffic values keyed by host
 * ifindex, and the same split by protocol. bench/segments.bpf.c and bench/split_load_bytes.bpf.c
 * declare the same ones (each uses one). */
#pragma once

#include "traffic.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	/* Entries are made by user space, one per counted interface: allocate them then, not
	 * 65536 * CPUs of them at load time. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PSNIC_MAX_INTERFACES);
	__type(key, __u32);
	__type(value, struct psnic_traffic);
} traffic SEC(".maps");

/* --split protocol's counters: one psnic_traffic per protocol in one value, so that a packet
 * costs one lookup. A map of its own, so that `traffic` keeps the layout an older psnic pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PSNIC_MAX_INTERFACES);
	__type(key, __u32);
	__type(value, struct psnic_traffic_split);
} traffic_proto SEC(".maps");
