// SPDX-License-Identifier: GPL-2.0
/* Counts the traffic of host-side container interfaces, per interface and direction. An
 * observer: it reads skb->len, skb->gso_segs and skb->ifindex, writes nothing and always lets
 * the packet go on (TC_ACT_UNSPEC, which is TCX_NEXT for TCX links). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "traffic.h"

#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	/* Entries are made by user space, one per counted interface: allocate them then, not
	 * 65536 * CPUs of them at load time. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PSNIC_MAX_INTERFACES);
	__type(key, __u32);
	__type(value, struct psnic_traffic);
} traffic SEC(".maps");

static __always_inline void count(struct psnic_counters *c, struct __sk_buff *skb)
{
	__u32 segments = skb->gso_segs;

	c->bytes += skb->len;
	c->packets += 1;
	/* A GSO skb built without gso_segs set (some tun/virtio paths) counts as one segment. */
	c->segments += segments ? segments : 1;
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
