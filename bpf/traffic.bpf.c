// SPDX-License-Identifier: GPL-2.0
/* Counts the traffic of host-side container interfaces, per interface and direction. An
 * observer: it reads skb->len and skb->ifindex, writes nothing and always lets the packet go on
 * (TC_ACT_UNSPEC, which is TCX_NEXT for TCX links). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "traffic_map.bpf.h"

#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)
#endif

static __always_inline void count(struct psnic_counters *c, struct __sk_buff *skb)
{
	/* A GSO skb is one packet of its whole length, as the kernel's interface statistics count
	 * it; its wire segments are not counted (README, "GSO segments"). */
	c->bytes += skb->len;
	c->packets += 1;
}

SEC("tc")
int psnic_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic *t = bpf_map_lookup_elem(&traffic, &ifindex);

	if (t)
		count(&t->ingress, skb);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int psnic_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic *t = bpf_map_lookup_elem(&traffic, &ifindex);

	if (t)
		count(&t->egress, skb);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
