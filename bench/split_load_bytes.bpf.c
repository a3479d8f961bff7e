// SPDX-License-Identifier: GPL-2.0
/* For bpf_bench only: psnic_split_in with the packet's headers read by bpf_skb_load_bytes
 * instead of direct packet access, to price the two (bpf/protocol.bpf.h uses the cheaper). Same
 * rules: VLAN tags in the packet, IPv4 protocol byte, IPv6 next header past up to 5 extension
 * headers, truncated headers are "other". */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "protocol.bpf.h"
#include "traffic_map.bpf.h"

static __always_inline __u32 protocol_by_load_bytes(struct __sk_buff *skb)
{
	__be16 proto = skb->protocol;
	__u32 l3 = PSNIC_ETH_HLEN;
	__u8 header[8];

#pragma unroll
	for (int i = 0; i < PSNIC_MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(PSNIC_ETH_P_8021Q) && proto != bpf_htons(PSNIC_ETH_P_8021AD))
			break;
		if (bpf_skb_load_bytes(skb, l3 + 2, &proto, sizeof(proto)))
			return PSNIC_PROTOCOL_OTHER;
		l3 += PSNIC_VLAN_HLEN;
	}
	if (proto == bpf_htons(PSNIC_ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) || ip.ihl < 5 ||
		    l3 + ip.ihl * 4 > skb->len)
			return PSNIC_PROTOCOL_OTHER;
		return psnic_protocol_slot(ip.protocol, PSNIC_IPPROTO_ICMP);
	}
	if (proto == bpf_htons(PSNIC_ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u32 offset = l3 + sizeof(ip6);
		__u8 next;

		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)))
			return PSNIC_PROTOCOL_OTHER;
		next = ip6.nexthdr;
		for (int i = 0; i < PSNIC_MAX_IPV6_EXTENSIONS; i++) {
			if (next != PSNIC_NEXTHDR_HOP && next != PSNIC_NEXTHDR_ROUTING &&
			    next != PSNIC_NEXTHDR_DEST && next != PSNIC_NEXTHDR_FRAGMENT)
				break;
			if (bpf_skb_load_bytes(skb, offset, header, sizeof(header)))
				return PSNIC_PROTOCOL_OTHER;
			offset += next == PSNIC_NEXTHDR_FRAGMENT ? 8 : (header[1] + 1) * 8;
			next = header[0];
			if (offset > skb->len)
				return PSNIC_PROTOCOL_OTHER;
		}
		return psnic_protocol_slot(next, PSNIC_IPPROTO_ICMPV6);
	}
	return PSNIC_PROTOCOL_OTHER;
}

SEC("tc")
int psnic_split_lb(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct psnic_traffic_split *t = bpf_map_lookup_elem(&traffic_proto, &ifindex);

	if (t) {
		struct psnic_counters *c = &t->protocol[protocol_by_load_bytes(skb)].ingress;

		c->bytes += skb->len;
		c->packets += 1;
	}
	return -1; /* TC_ACT_UNSPEC */
}

char LICENSE[] SEC("license") = "GPL";
