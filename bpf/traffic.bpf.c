// SPDX-License-Identifier: GPL-2.0
/* Counts the traffic of host-side container interfaces, per interface and direction, and with
 * --split protocol per protocol too. An observer: it reads skb->len and skb->ifindex (at a
 * container-side device, that device's namespace; for the split, skb->protocol and the packet's
 * headers), writes nothing and always lets the packet go on (TC_ACT_UNSPEC, which is TCX_NEXT
 * for TCX links).
 *
 * Two program pairs, one loaded: psnic_ingress/psnic_egress count into `traffic`, and
 * psnic_split_in/psnic_split_eg into `traffic_proto`. Separate programs rather than one with a
 * switch, so that the unsplit pair is exactly the code it was (no cost, and the tag an older
 * psnic's programs have), and so that a link running one pair's code is told from the other's
 * by its tag when an agent adopts it (a rodata switch leaves the tag alike). The container's
 * receive is counted at the container-side device's ingress where the agent could hook it
 * (psnic_peer_ingress, or psnic_peer_split with the split), and the host egress programs then
 * skip that interface. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "protocol.bpf.h"
#include "traffic_map.bpf.h"

#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)
#endif

/* Container-side devices counted at their own ingress: psnic_peer_key -> host ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PSNIC_MAX_INTERFACES);
	__type(key, struct psnic_peer_key);
	__type(value, __u32);
} peers SEC(".maps");

/* Host ifindexes whose container receive is counted at the container-side device: their egress
 * hook leaves it alone, or the ordinary path (host veth transmit -> peer receive) would be
 * counted twice. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PSNIC_MAX_INTERFACES);
	__type(key, __u32);
	__type(value, __u8);
} received_at_peer SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The fields psnic reads of the kernel's sk_buff, net_device and net, as CO-RE flavours (the
 * part after "___" is ignored when libbpf matches them to the kernel's types): declared here
 * rather than taken from vmlinux.h, whose full definitions would put the whole type graph under
 * them (sk_buff, net_device, net: 650 KB of BTF) into the object and so into psnic-agent. */
struct net___psnic {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

struct net_device___psnic {
	struct {
		struct net___psnic *net;
	} nd_net;
} __attribute__((preserve_access_index));

struct sk_buff___psnic {
	struct net_device___psnic *dev;
} __attribute__((preserve_access_index));

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

/* The host egress of an interface whose receive is counted at its peer is not counted here.
 * received_at_peer is looked up first: once the agent has hooked the peers, nearly every
 * interface is in it, so the common case is one lookup, not two. */
SEC("tc")
int psnic_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic *t;

	if (bpf_map_lookup_elem(&received_at_peer, &ifindex))
		return TC_ACT_UNSPEC;
	t = bpf_map_lookup_elem(&traffic, &ifindex);
	if (t)
		count(&t->egress, skb);
	return TC_ACT_UNSPEC;
}

/* On a container-side device's ingress: the container's receive, on every path into it. A packet
 * the host veth transmits arrives here (veth_xmit -> the peer's receive), and so does one that a
 * program on another device moved with bpf_redirect_peer (the host veth never transmits it; the
 * core receive loop runs again with the peer as skb->dev). Counted as the host peer's egress, so
 * the traffic map and what reads it stay as they are.
 *
 * bpf_get_netns_cookie(skb) is no shortcut here: for tc programs it answers the namespace of
 * skb->sk, or the initial one without a socket (net/core/filter.c), never the device's. */
/* The host ifindex whose counter a container-side device's receive goes to, or null when psnic
 * does not count that device. */
static __always_inline __u32 *peer_host(struct __sk_buff *skb)
{
	struct sk_buff___psnic *kskb = bpf_cast_to_kern_ctx(skb);
	struct psnic_peer_key key = {};

	key.netns_cookie = kskb->dev->nd_net.net->net_cookie;
	key.ifindex = skb->ifindex;
	return bpf_map_lookup_elem(&peers, &key);
}

SEC("tc")
int psnic_peer_ingress(struct __sk_buff *skb)
{
	__u32 *host = peer_host(skb);
	struct psnic_traffic *t;

	if (!host)
		return TC_ACT_UNSPEC;
	t = bpf_map_lookup_elem(&traffic, host);
	if (t)
		count(&t->egress, skb);
	return TC_ACT_UNSPEC;
}

/* psnic_peer_ingress with --split protocol: the host peer's egress of the packet's protocol. */
SEC("tc")
int psnic_peer_split(struct __sk_buff *skb)
{
	__u32 *host = peer_host(skb);
	struct psnic_traffic_split *t;

	if (!host)
		return TC_ACT_UNSPEC;
	t = bpf_map_lookup_elem(&traffic_proto, host);
	if (t)
		count(&t->protocol[psnic_protocol_of(skb)].egress, skb);
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
	struct psnic_traffic_split *t;

	if (bpf_map_lookup_elem(&received_at_peer, &ifindex)) /* as psnic_egress */
		return TC_ACT_UNSPEC;
	t = bpf_map_lookup_elem(&traffic_proto, &ifindex);
	if (t)
		count(&t->protocol[psnic_protocol_of(skb)].egress, skb);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
