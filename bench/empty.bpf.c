// SPDX-License-Identifier: GPL-2.0
/* The baseline for bpf_bench: a tc program that does nothing but let the packet go on. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tc")
int psnic_empty(struct __sk_buff *skb)
{
	return -1; /* TC_ACT_UNSPEC */
}

char LICENSE[] SEC("license") = "GPL";
