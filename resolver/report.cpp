#include "resolver/report.h"

#include <cstdio>

#include "base/text.h"

namespace psnic {
namespace {

const std::string& or_dash(const std::string& s) {
  static const std::string dash = "-";
  return s.empty() ? dash : s;
}

std::string json_or_null(const std::string& s) { return s.empty() ? "null" : json_string(s); }

}  // namespace

std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  append_escaped(out, s);  // valid JSON whatever the bytes: a name is whatever its creator chose
  out += '"';
  return out;
}

std::string format_host_names(const NetnsReport& report, bool with_pid) {
  std::string out;
  for (const InterfacePair& pair : report.interfaces) {
    if (pair.placement != Placement::host_peer) continue;
    if (with_pid) out += std::to_string(report.pid) + '\t';
    out += pair.host_name + '\n';
  }
  return out;
}

std::string format_table(const std::vector<NetnsReport>& reports) {
  std::string out;
  for (const NetnsReport& report : reports) {
    // A namespace no process is in is named as the kernel names it (readlink /proc/PID/ns/net,
    // lsns), so that two of them are never two identical lines.
    std::string pid = report.pid > 0 ? std::to_string(report.pid)
                                     : "net:[" + std::to_string(report.netns_inode) + "]";
    const std::string& id = or_dash(report.identity.id);
    if (report.interfaces.empty()) out += pid + "\t-\t-\t" + id + '\n';
    for (const InterfacePair& pair : report.interfaces)
      out += pid + '\t' + or_dash(pair.host_name) + '\t' + pair.name + '\t' + id + '\n';
  }
  return out;
}

std::string format_json(const std::vector<NetnsReport>& reports) {
  std::string out = "[";
  bool first = true;
  auto object = [&](const NetnsReport& report, const InterfacePair* pair) {
    const bool host = pair && pair->placement == Placement::host_peer;
    out += first ? "\n" : ",\n";
    first = false;
    out += "{\"pid\":" + (report.pid > 0 ? std::to_string(report.pid) : "null");
    out += ",\"netns\":" + std::to_string(report.netns_inode);
    out += ",\"netns_name\":" + json_or_null(report.netns_name);
    out += ",\"interface\":" + (pair ? json_string(pair->name) : "null");
    out += ",\"ifindex\":" + (pair ? std::to_string(pair->ifindex) : "null");
    out += ",\"kind\":" + (pair ? json_string(pair->kind) : "null");
    out += ",\"peer\":" + (pair ? json_string(placement_name(pair->placement)) : "null");
    out += ",\"host_interface\":" + (host ? json_string(pair->host_name) : "null");
    out += ",\"host_ifindex\":" + (host ? std::to_string(pair->host_ifindex) : "null");
    out += ",\"parent\":" + (pair ? json_or_null(pair->parent) : "null");
    out += ",\"container_id\":" + json_or_null(report.identity.id);
    out += '}';
  };
  for (const NetnsReport& report : reports) {
    if (report.interfaces.empty()) object(report, nullptr);
    for (const InterfacePair& pair : report.interfaces) object(report, &pair);
  }
  out += first ? "]\n" : "\n]\n";
  return out;
}

std::string no_peer_reason(const NetnsReport& report) {
  if (report.host_network) return "host network, no interface of its own";
  if (report.interfaces.empty()) return "no interfaces but loopback";
  std::string reason;
  for (const InterfacePair& pair : report.interfaces) {
    reason += reason.empty() ? "no host peer: " : ", ";
    std::string kind = pair.kind.empty() ? "device" : pair.kind;
    reason += pair.name + " (" + kind;
    switch (pair.placement) {
      case Placement::peer_elsewhere:
        reason += ", peer in another namespace";
        break;
      case Placement::peer_local:
        reason += ", peer in the same namespace";
        break;
      case Placement::parent:
        reason += " on " + or_dash(pair.parent);
        break;
      default:
        break;
    }
    reason += ')';
  }
  return reason;
}

}  // namespace psnic
