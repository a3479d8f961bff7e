#include "agent/link_drops.h"

#include <algorithm>

namespace psnic {

HostLinkDrops drops_of(const LinkStats& stats) {
  return {stats.rx_errors, stats.tx_errors, stats.rx_dropped, stats.tx_dropped};
}

HostLinkDropsTable LinkDropsReader::read(const std::vector<uint32_t>& ifindexes) {
  std::lock_guard lock(mutex_);
  std::vector<LinkStatsReply> links;
  try {
    if (!socket_) socket_.emplace(NetlinkSocket::open());
    links = socket_->dump_link_stats();
  } catch (...) {
    // A dump cut short would still be running on this socket (the kernel answers a new dump
    // there with EBUSY until the old one is read out): start the next read afresh.
    socket_.reset();
    throw;
  }
  HostLinkDropsTable table;
  table.reserve(ifindexes.size());
  for (const LinkStatsReply& link : links)
    if (std::binary_search(ifindexes.begin(), ifindexes.end(), link.ifindex))
      table.emplace(link.ifindex, drops_of(link.stats));
  return table;
}

}  // namespace psnic
