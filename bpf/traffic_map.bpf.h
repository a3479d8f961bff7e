/* SPDX-License-Identifier: GPL-2.0 */
/* The traffic map as BPF programs declare it: per-CPU psnic_traffic values keyed by host
 * ifindex. bench/segments.bpf.c declares the same one. */
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
