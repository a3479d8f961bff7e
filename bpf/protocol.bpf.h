/* SPDX-License-Identifier: GPL-2.0 */
/* The protocol of a packet for --split protocol (enum psnic_protocol), read from the packet
 * itself with direct packet access: bounds-checked loads from the skb's linear data, no helper
 * call. bench/bpf_bench measured it against bpf_skb_load_bytes (bench/README.md). */
#pragma once

#include <bpf/bpf_endian.h>

#include "traffic.h"

#define PSNIC_ETH_HLEN 14
#define PSNIC_ETH_P_IP 0x0800
#define PSNIC_ETH_P_IPV6 0x86DD
#define PSNIC_ETH_P_8021Q 0x8100
#define PSNIC_ETH_P_8021AD 0x88A8
#define PSNIC_VLAN_HLEN 4
/* An 802.1ad tag outside an 802.1Q one: QinQ. */
#define PSNIC_MAX_VLAN_TAGS 2

#define PSNIC_IPPROTO_ICMP 1
#define PSNIC_IPPROTO_TCP 6
#define PSNIC_IPPROTO_UDP 17
#define PSNIC_IPPROTO_ICMPV6 58
/* IPv6 extension headers walked to find the upper-layer protocol. */
#define PSNIC_NEXTHDR_HOP 0
#define PSNIC_NEXTHDR_ROUTING 43
#define PSNIC_NEXTHDR_FRAGMENT 44
#define PSNIC_NEXTHDR_DEST 60
/* Enough for hop-by-hop, destination options, routing, fragment, destination options (RFC 8200
 * 4.1's order); a packet with more is "other". */
#define PSNIC_MAX_IPV6_EXTENSIONS 5

static __always_inline __u32 psnic_protocol_slot(__u8 protocol, __u8 icmp)
{
	if (protocol == PSNIC_IPPROTO_TCP)
		return PSNIC_PROTOCOL_TCP;
	if (protocol == PSNIC_IPPROTO_UDP)
		return PSNIC_PROTOCOL_UDP;
	if (protocol == icmp)
		return PSNIC_PROTOCOL_ICMP;
	return PSNIC_PROTOCOL_OTHER;
}

/* A packet whose headers are not all in the skb's linear data is "other": on a veth the stack
 * built (or GRO pulled) the headers there; a frame cut short is "other" on every path. */
static __always_inline __u32 psnic_protocol_of(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	/* The L3 protocol as the stack saw it. An accelerated VLAN tag (skb->vlan_present) is not
	 * in the packet, and skb->protocol is the inner protocol already; a tag still in the
	 * packet shows as ETH_P_8021Q/8021AD here, and is stepped over. */
	__be16 proto = skb->protocol;
	__u32 l3 = PSNIC_ETH_HLEN;

#pragma unroll
	for (int i = 0; i < PSNIC_MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(PSNIC_ETH_P_8021Q) && proto != bpf_htons(PSNIC_ETH_P_8021AD))
			break;
		/* struct vlan_hdr: TCI, then the encapsulated protocol. */
		if (data + l3 + PSNIC_VLAN_HLEN > end)
			return PSNIC_PROTOCOL_OTHER;
		proto = *(__be16 *)(data + l3 + 2);
		l3 += PSNIC_VLAN_HLEN;
	}

	if (proto == bpf_htons(PSNIC_ETH_P_IP)) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end)
			return PSNIC_PROTOCOL_OTHER;
		/* Options included: the whole header must be there. A fragment keeps the protocol
		 * of its protocol byte, the first one and the others alike. */
		if (ip->ihl < 5 || (void *)ip + ip->ihl * 4 > end)
			return PSNIC_PROTOCOL_OTHER;
		return psnic_protocol_slot(ip->protocol, PSNIC_IPPROTO_ICMP);
	}
	if (proto == bpf_htons(PSNIC_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3;
		__u32 offset = l3 + sizeof(*ip6);
		__u8 next;

		if ((void *)(ip6 + 1) > end)
			return PSNIC_PROTOCOL_OTHER;
		next = ip6->nexthdr;
#pragma unroll
		for (int i = 0; i < PSNIC_MAX_IPV6_EXTENSIONS; i++) {
			__u8 *extension = data + offset;

			if (next != PSNIC_NEXTHDR_HOP && next != PSNIC_NEXTHDR_ROUTING &&
			    next != PSNIC_NEXTHDR_DEST && next != PSNIC_NEXTHDR_FRAGMENT)
				break;
			/* Each starts with its next header and (but the fragment header, which is
			 * 8 bytes) its length in 8-byte units beyond the first 8. */
			if ((void *)(extension + 8) > end)
				return PSNIC_PROTOCOL_OTHER;
			offset += next == PSNIC_NEXTHDR_FRAGMENT ? 8 : (extension[1] + 1) * 8;
			next = extension[0];
			/* The header must be there whole, as for IPv4 options. */
			if (data + offset > end)
				return PSNIC_PROTOCOL_OTHER;
		}
		return psnic_protocol_slot(next, PSNIC_IPPROTO_ICMPV6);
	}
	return PSNIC_PROTOCOL_OTHER;
}
