#include "runtime/containerd.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/fd.h"

namespace psnic {
namespace {

// A few generations: the shim is normally the namespace's first process's parent; a process
// that joined later (`ctr task exec`) is the shim's child too.
constexpr int kMaxGenerations = 4;
// A shim's command line is short; anything longer is not one.
constexpr size_t kMaxCmdline = 4096;

std::optional<std::string> read_small(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(limit + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > limit) return std::nullopt;
  return text;
}

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The parent of `pid` from /proc/PID/stat (the field after the ')' that ends comm), 0 if none.
pid_t parent_of(const std::string& proc, pid_t pid) {
  std::optional<std::string> stat = read_small(proc + "/" + std::to_string(pid) + "/stat", 4096);
  if (!stat) return 0;
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat->substr(close + 1));
  std::string state;
  long ppid = 0;
  if (!(rest >> state >> ppid)) return 0;
  return ppid > 0 ? static_cast<pid_t>(ppid) : 0;
}

}  // namespace

std::optional<ShimRef> parse_shim_cmdline(std::string_view cmdline) {
  std::vector<std::string_view> argv;
  while (!cmdline.empty()) {
    const size_t nul = cmdline.find('\0');
    argv.push_back(cmdline.substr(0, nul));
    if (nul == std::string_view::npos) break;
    cmdline.remove_prefix(nul + 1);
  }
  if (argv.empty()) return std::nullopt;
  std::string_view program = argv[0];
  if (const size_t slash = program.rfind('/'); slash != std::string_view::npos)
    program.remove_prefix(slash + 1);
  if (!program.starts_with("containerd-shim")) return std::nullopt;
  ShimRef ref;
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string_view flag = argv[i];
    if (!flag.starts_with("-")) continue;
    flag.remove_prefix(flag.starts_with("--") ? 2 : 1);
    std::string_view value;
    if (const size_t equals = flag.find('='); equals != std::string_view::npos) {
      value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
    } else if (i + 1 < argv.size()) {
      value = argv[i + 1];
    }
    if (flag == "namespace") ref.namespace_name = value;
    if (flag == "id") ref.id = value;
  }
  if (ref.namespace_name.empty() || ref.id.empty()) return std::nullopt;
  return ref;
}

std::string nerdctl_name(const std::string& data_root, std::string_view ns, std::string_view id) {
  // Names are files in a directory per namespace; a namespace or id with a '/' or a leading '.'
  // could walk elsewhere.
  if (ns.empty() || ns.find('/') != std::string_view::npos || ns.front() == '.') return "";
  std::error_code error;
  for (const auto& store : std::filesystem::directory_iterator(data_root, error)) {
    const std::filesystem::path names = store.path() / "names" / std::string(ns);
    std::error_code inner;
    for (const auto& entry : std::filesystem::directory_iterator(names, inner)) {
      if (!entry.is_regular_file(inner)) continue;
      std::optional<std::string> content = read_small(entry.path(), 256);
      if (!content) continue;
      while (!content->empty() && (content->back() == '\n' || content->back() == ' '))
        content->pop_back();
      if (*content == id) return entry.path().filename();
    }
  }
  return "";
}

ContainerdRuntime::ContainerdRuntime(std::string socket, std::string nerdctl_root, std::string proc)
    : socket_(std::move(socket)), nerdctl_root_(std::move(nerdctl_root)), proc_(std::move(proc)) {}

bool ContainerdRuntime::claims(const NetnsReport& owner) const {
  const ContainerIdentity& identity = owner.identity;
  // Kubernetes pods (a pod uid in the cgroup) are kubelet's to name: their shim's -id is the
  // pod sandbox's, not a container's.
  return owner.pid > 0 && identity.pod_uid.empty() &&
         (identity.runtime == "containerd" || identity.runtime.empty());
}

std::optional<ShimRef> ContainerdRuntime::find_shim(pid_t pid, uint64_t netns_inode) const {
  // The host's mount namespace: PID 1's, or (where PID 1 cannot be looked at, as under a
  // sandboxing init) the agent's own.
  uint64_t host_mnt = inode_of(proc_ + "/1/ns/mnt");
  if (host_mnt == 0) host_mnt = inode_of(proc_ + "/self/ns/mnt");
  for (int generation = 0; generation < kMaxGenerations; ++generation) {
    pid = parent_of(proc_, pid);
    if (pid <= 1) return std::nullopt;
    const std::string dir = proc_ + "/" + std::to_string(pid);
    std::optional<std::string> cmdline = read_small(dir + "/cmdline", kMaxCmdline);
    if (!cmdline) continue;
    std::optional<ShimRef> ref = parse_shim_cmdline(*cmdline);
    if (!ref) continue;
    // A process in the container may name itself containerd-shim: the real one runs in the
    // host's mount namespace and not in the container's network namespace.
    if (host_mnt == 0 || inode_of(dir + "/ns/mnt") != host_mnt) return std::nullopt;
    if (netns_inode != 0 && inode_of(dir + "/ns/net") == netns_inode) return std::nullopt;
    return ref;
  }
  return std::nullopt;
}

Verdict ContainerdRuntime::describe(const NetnsReport& owner, OwnerFacts& facts, std::string& why) {
  std::optional<ShimRef> shim = find_shim(owner.pid, owner.netns_inode);
  if (!shim) return Verdict::kUnknown;
  if (!owner.identity.id.empty() && owner.identity.id != shim->id) {
    why = "its containerd shim runs " + shim->namespace_name + "/" + shim->id;
    return Verdict::kContradicted;
  }
  std::string name = nerdctl_name(nerdctl_root_, shim->namespace_name, shim->id);
  facts.labels.container_id = shim->id;
  facts.labels.container_name = shim->namespace_name + "/" + (name.empty() ? shim->id : name);
  facts.image.clear();
  facts.runtime = runtime_;
  return Verdict::kNamed;
}

bool ContainerdRuntime::reachable() {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || socket_.size() >= sizeof(sockaddr_un::sun_path)) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_.data(), socket_.size());
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

}  // namespace psnic
