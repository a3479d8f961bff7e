// SPDX-License-Identifier: GPL-2.0
/* For bpf_bench only: psnic_ingress as it was while psnic counted GSO segments (up to 0.2.0),
 * so that the cost of dropping them is measured side by side with the program that replaced it.
 * Same map layout: the third counter, now reserved, took the segments. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "traffic_map.bpf.h"

SEC("tc")
int psnic_segments(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic *t = bpf_map_lookup_elem(&traffic, &ifindex);
	__u32 segments;

	if (!t)
		return -1; /* TC_ACT_UNSPEC */
	segments = skb->gso_segs;
	t->ingress.bytes += skb->len;
	t->ingress.packets += 1;
	t->ingress.reserved += segments ? segments : 1;
	return -1;
}

char LICENSE[] SEC("license") = "GPL";
