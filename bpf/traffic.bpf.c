// SPDX-License-Identifier: GPL-2.0
/* Counts the traffic of host-side container interfaces, per interface and direction, and with
 * --split protocol per protocol too. An observer: it reads skb->len and skb->ifindex (and for
 * the split, skb->protocol and the packet's headers), writes nothing and always lets the packet
 * go on (TC_ACT_UNSPEC, which is TCX_NEXT for TCX links).
 *
 * Two program pairs, one loaded: psnic_ingress/psnic_egress count into `traffic`, and
 * psnic_split_in/psnic_split_eg into `traffic_proto`. Separate programs rather than one with a
 * switch, so that the unsplit pair is exactly the code it was (no cost, and the tag an older
 * psnic's programs have), and so that a link running one pair's code is told from the other's
 * by its tag when an agent adopts it (a rodata switch leaves the tag alike). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "protocol.bpf.h"
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

SEC("tc")
int psnic_split_in(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic_split *t = bpf_map_lookup_elem(&traffic_proto, &ifindex);

	/* Parsed only for an interface psnic counts. */
	if (t)
		count(&t->protocol[psnic_protocol_of(skb)].ingress, skb);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int psnic_split_eg(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic_split *t = bpf_map_lookup_elem(&traffic_proto, &ifindex);

	if (t)
		count(&t->protocol[psnic_protocol_of(skb)].egress, skb);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
