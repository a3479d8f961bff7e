#pragma once

#include <string>

namespace psnic {

// The capabilities psnic-agent needs that the process lacks, named as in capabilities(7)
// ("CAP_BPF, CAP_NET_ADMIN"); empty when it has them all. Read from /proc/self/status.
std::string missing_agent_capabilities();

}  // namespace psnic
