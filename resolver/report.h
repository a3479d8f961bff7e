#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "resolver/resolver.h"

namespace psnic {

// `psnic PID`: the host peers' names, one per line; with `with_pid`, "PID<TAB>name".
std::string format_host_names(const NetnsReport& report, bool with_pid);

// `psnic --all`: one line per interface, "PID<TAB>HOST_INTERFACE<TAB>INTERFACE<TAB>CONTAINER_ID",
// "-" for what is absent; a namespace without interfaces still gets one line. A namespace no
// process is in has "net:[INODE]" for its PID.
std::string format_table(const std::vector<NetnsReport>& reports);

// `--json`: one array, one object per interface, every key present (null where it does not
// apply, an empty netns_name or container_id included): pid, netns, netns_name, interface, ifindex,
// kind, peer, host_interface, host_ifindex, parent, container_id. A namespace without interfaces
// (host network, only loopback) is one object whose interface keys are null, as in the table.
std::string format_json(const std::vector<NetnsReport>& reports);

// Why a report has no host peer, for the one stderr line: "host network", "no interfaces", ...
std::string no_peer_reason(const NetnsReport& report);

// `s` as a JSON string literal, quotes included.
std::string json_string(std::string_view s);

}  // namespace psnic
