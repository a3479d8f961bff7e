// The host interfaces' errors and drops, read from the kernel's own statistics at scrape time.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "agent/views.h"
#include "resolver/netlink.h"

namespace psnic {

// Reads the errors and drops of host interfaces with one RTM_GETSTATS dump (IFLA_STATS_LINK_64
// only) of the namespace the agent runs in, where the host peers live. One dump per read rather
// than one request per interface: at 1000 veths the dump costs a fraction of 1000 round trips
// (bench/README.md). Thread-safe: overlapping scrapes take turns on one socket.
class LinkDropsReader {
 public:
  // Errors and drops of the `ifindexes` (sorted) that exist now; others are left out. Throws
  // Error when the kernel cannot be asked; the next read starts on a new socket, so a dump cut
  // short leaves nothing behind.
  HostLinkDropsTable read(const std::vector<uint32_t>& ifindexes);

 private:
  std::mutex mutex_;
  std::optional<NetlinkSocket> socket_;  // opened on the first read, and again after a failure
};

// The errors and drops of a host interface's statistics, as the host counts them.
HostLinkDrops drops_of(const LinkStats& stats);

}  // namespace psnic
