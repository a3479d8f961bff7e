// SPDX-License-Identifier: GPL-2.0
/* Another tool's program, for the redirect_peer tests: what Cilium's BPF host routing does on an
 * uplink's ingress. IPv4 frames get the container-side device's MAC as destination and are moved
 * with bpf_redirect_peer straight into that device's ingress, past the host veth, whose egress
 * hook and tx statistics never see them. ARP and the rest go on to the host. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

const volatile __u32 host_veth_ifindex = 0; /* bpf_redirect_peer's target: the host veth */
const volatile __u8 container_mac[6] = {};  /* its peer's, the container-side eth0's */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} redirected SEC(".maps");

SEC("tc")
int psnictest_redirect_peer(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	__u64 *count;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1; /* TC_ACT_UNSPEC */
	for (int i = 0; i < 6; i++)
		eth->h_dest[i] = container_mac[i];
	count = bpf_map_lookup_elem(&redirected, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	return bpf_redirect_peer(host_veth_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
