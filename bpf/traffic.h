/* Shared by bpf/traffic.bpf.c and user space: fixed-width types only. The C++ side checks the
 * layout with static_assert. */
#pragma once

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The program counts only interfaces user space has inserted a key for. */
#define PSNIC_MAX_INTERFACES 65536

/* One direction of one interface, on one CPU. */
struct psnic_counters {
	__u64 bytes;    /* skb->len: L2 frames as the kernel's interface statistics count them */
	__u64 packets;  /* skbs, as the kernel's interface statistics count them */
	/* Written by no psnic since GSO segments stopped being counted (README, "GSO segments"):
	 * kept so that the value stays 48 bytes and a map pinned by an older psnic, which counted
	 * segments here, is adopted with its counters. Nobody reads it. */
	__u64 reserved;
};

/* Map value, keyed by host ifindex (__u32). Seen from the host interface's hooks; the container
 * sees the reverse (host ingress = container transmit, host egress = container receive). */
struct psnic_traffic {
	struct psnic_counters ingress;
	struct psnic_counters egress;
};

/* Key of the peers map: a container-side device (a veth's or netkit's peer) as its TCX ingress
 * program sees it. Its ifindex alone does not name it (every container's eth0 may be ifindex 2),
 * its network namespace's cookie (never 0, never reused while the kernel runs) with it does. The
 * value is the host ifindex whose counter the device's receive goes to. */
struct psnic_peer_key {
	__u64 netns_cookie;
	__u32 ifindex;
	__u32 pad; /* zero */
};

/* psnic-agent --split protocol: the protocol of a packet, each the index of its counters in
 * psnic_traffic_split and a value of the exported label "protocol" (tcp, udp, icmp, other). ICMP
 * is ICMP over IPv4 and ICMPv6 over IPv6. */
enum psnic_protocol {
	PSNIC_PROTOCOL_TCP,
	PSNIC_PROTOCOL_UDP,
	PSNIC_PROTOCOL_ICMP,
	PSNIC_PROTOCOL_OTHER,
	PSNIC_PROTOCOLS,
};

/* Value of the traffic_proto map (--split protocol), keyed by host ifindex (__u32): one
 * psnic_traffic per protocol, in one value so that a packet costs one lookup. */
struct psnic_traffic_split {
	struct psnic_traffic protocol[PSNIC_PROTOCOLS];
};
