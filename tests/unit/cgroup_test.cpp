#include "resolver/cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"

namespace psnic {

// Lets gtest print identities in failure messages (found by ADL).
void PrintTo(const ContainerIdentity& identity, std::ostream* os) {
  *os << "{runtime=\"" << identity.runtime << "\", id=\"" << identity.id << "\", pod_uid=\""
      << identity.pod_uid << "\"}";
}

namespace {

const std::string kIdA = "e83321bdfaf530c87d865dcfd273a6cbc55abf9bdcc805a488843fbf4a155858";
const std::string kIdB = "5b337d23645e5c8df9b8fc5c036d708ce62f942b543de656c12d04a9dd50c012";
const std::string kIdC = "4e4dd3edd449636ea707ea3d8148bf5c241c1ee5dc9df1013676a948a173bba7";
const std::string kIdD = "657233a699c33e1a6e2d795919f4c2a82e6ab71f198ec36f8dc3db28b0f98c75";

const std::string kPod1 = "dc2e3247-f929-4a88-b4ef-00376b0c86ed";
const std::string kPod1Slice = "dc2e3247_f929_4a88_b4ef_00376b0c86ed";
const std::string kPod2 = "b02afa84-da9f-44cc-9345-7ded35c3345c";
const std::string kPod2Slice = "b02afa84_da9f_44cc_9345_7ded35c3345c";
const std::string kPod3 = "eacded51-9e24-4d53-b30d-370157c1a5ee";
const std::string kPod3Slice = "eacded51_9e24_4d53_b30d_370157c1a5ee";
// Static pods (kube-apiserver, etcd, ...) are named by the md5 of their manifest.
const std::string kStaticPod = "00b7c87b77dc5cf2332b6ddb4c9ecd30";

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The same path on every line of a cgroup v1 file, as runtimes that manage all controllers do,
// plus the unified line of a hybrid host.
std::string v1_file(const std::string& path, const std::string& unified) {
  return "12:pids:" + path + "\n11:hugetlb:" + path + "\n10:net_cls,net_prio:" + path +
         "\n9:perf_event:" + path + "\n8:memory:" + path + "\n7:blkio:" + path +
         "\n6:cpuset:" + path + "\n5:devices:" + path + "\n4:freezer:" + path +
         "\n3:cpu,cpuacct:" + path + "\n2:rdma:/\n1:name=systemd:" + path + "\n0::" + unified +
         "\n";
}

struct Case {
  std::string description;
  std::string input;
  ContainerIdentity expected;
};

// Keeps test names (and CTest's, which include the parameter) readable.
void PrintTo(const Case& c, std::ostream* os) { *os << '"' << c.description << '"'; }

std::vector<Case> docker_cases() {
  return {
      {"docker cgroupfs v1 memory line", "12:memory:/docker/" + kIdA + "\n", {"docker", kIdA, ""}},
      {"docker cgroupfs v1 hybrid full file",
       v1_file("/docker/" + kIdA, "/system.slice/containerd.service"),
       {"docker", kIdA, ""}},
      {"docker cgroupfs v2", "0::/docker/" + kIdA + "\n", {"docker", kIdA, ""}},
      {"docker systemd v2", "0::/system.slice/docker-" + kIdA + ".scope\n", {"docker", kIdA, ""}},
      {"docker systemd v1 full file",
       v1_file("/system.slice/docker-" + kIdA + ".scope",
               "/system.slice/docker-" + kIdA + ".scope"),
       {"docker", kIdA, ""}},
      {"docker systemd with systemd running inside the container",
       "0::/system.slice/docker-" + kIdA + ".scope/init.scope\n",
       {"docker", kIdA, ""}},
      {"docker rootless systemd",
       "0::/user.slice/user-1000.slice/user@1000.service/user.slice/docker-" + kIdA + ".scope\n",
       {"docker", kIdA, ""}},
      {"docker in docker reports innermost",
       "0::/docker/" + kIdA + "/docker/" + kIdB + "\n",
       {"docker", kIdB, ""}},
      {"docker in docker v1 full file",
       v1_file("/docker/" + kIdA + "/docker/" + kIdB, "/"),
       {"docker", kIdB, ""}},
      {"docker in docker systemd outer cgroupfs inner",
       "0::/system.slice/docker-" + kIdA + ".scope/docker/" + kIdB + "\n",
       {"docker", kIdB, ""}},
      {"custom cgroup parent gives id without runtime",
       "0::/actions_job/" + kIdA + "\n",
       {"", kIdA, ""}},
      {"docker v1 name systemd line only",
       "1:name=systemd:/docker/" + kIdA + "\n",
       {"docker", kIdA, ""}},
      {"path relative to another cgroup namespace",
       "0::/../docker-" + kIdB + ".scope\n",
       {"docker", kIdB, ""}},
  };
}

std::vector<Case> kubernetes_cases() {
  return {
      {"containerd systemd burstable",
       "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPod1Slice +
           ".slice/cri-containerd-" + kIdA + ".scope\n",
       {"containerd", kIdA, kPod1}},
      {"containerd systemd besteffort",
       "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kPod2Slice +
           ".slice/cri-containerd-" + kIdB + ".scope\n",
       {"containerd", kIdB, kPod2}},
      {"containerd systemd guaranteed",
       "0::/kubepods.slice/kubepods-pod" + kPod3Slice + ".slice/cri-containerd-" + kIdC +
           ".scope\n",
       {"containerd", kIdC, kPod3}},
      {"containerd systemd v1 hybrid full file",
       v1_file("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPod1Slice +
                   ".slice/cri-containerd-" + kIdA + ".scope",
               "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPod1Slice +
                   ".slice/cri-containerd-" + kIdA + ".scope"),
       {"containerd", kIdA, kPod1}},
      {"containerd cgroupfs burstable",
       "0::/kubepods/burstable/pod" + kPod1 + "/" + kIdA + "\n",
       {"containerd", kIdA, kPod1}},
      {"containerd cgroupfs besteffort v1 full file",
       v1_file("/kubepods/besteffort/pod" + kPod2 + "/" + kIdB, "/"),
       {"containerd", kIdB, kPod2}},
      {"containerd cgroupfs guaranteed",
       "0::/kubepods/pod" + kPod3 + "/" + kIdC + "\n",
       {"containerd", kIdC, kPod3}},
      {"kind node systemd kubelet cgroup root",
       "0::/system.slice/docker-" + kIdD +
           ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
           "kubelet-kubepods-besteffort-pod" +
           kPod2Slice + ".slice/cri-containerd-" + kIdB + ".scope\n",
       {"containerd", kIdB, kPod2}},
      {"kind node v1 cgroupfs",
       "12:memory:/docker/" + kIdD + "/kubepods/besteffort/pod" + kPod2 + "/" + kIdB + "\n",
       {"containerd", kIdB, kPod2}},
      {"kind node own service is the node container",
       "0::/system.slice/docker-" + kIdD + ".scope/system.slice/kubelet.service\n",
       {"docker", kIdD, ""}},
      {"static pod systemd",
       "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kStaticPod +
           ".slice/cri-containerd-" + kIdA + ".scope\n",
       {"containerd", kIdA, kStaticPod}},
      {"static pod cgroupfs",
       "0::/kubepods/burstable/pod" + kStaticPod + "/" + kIdA + "\n",
       {"containerd", kIdA, kStaticPod}},
      {"pod cgroup without container systemd",
       "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kPod2Slice +
           ".slice\n",
       {"", "", kPod2}},
      {"pod cgroup without container cgroupfs",
       "0::/kubepods/burstable/pod" + kPod1 + "\n",
       {"", "", kPod1}},
      {"dockershim systemd",
       "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
           kPod1Slice + ".slice/docker-" + kIdA + ".scope\n",
       {"docker", kIdA, kPod1}},
      {"docker inside a pod container does not inherit the pod",
       "0::/kubepods/burstable/pod" + kPod1 + "/" + kIdA + "/docker/" + kIdB + "\n",
       {"docker", kIdB, ""}},
      {"crio systemd",
       "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPod1Slice +
           ".slice/crio-" + kIdA + ".scope\n",
       {"cri-o", kIdA, kPod1}},
      {"crio systemd nested container cgroup",
       "0::/kubepods.slice/kubepods-pod" + kPod3Slice + ".slice/crio-" + kIdC +
           ".scope/container\n",
       {"cri-o", kIdC, kPod3}},
      {"crio systemd v1 full file",
       v1_file("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kPod2Slice +
                   ".slice/crio-" + kIdB + ".scope",
               "/"),
       {"cri-o", kIdB, kPod2}},
      {"crio cgroupfs",
       "0::/kubepods/burstable/pod" + kPod1 + "/crio-" + kIdA + "\n",
       {"cri-o", kIdA, kPod1}},
      {"crio conmon in pod slice is not the container",
       "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kPod1Slice +
           ".slice/crio-conmon-" + kIdA + ".scope\n",
       {"cri-o", "", ""}},
      {"crio conmon in system slice",
       "0::/system.slice/crio-conmon-" + kIdA + ".scope\n",
       {"cri-o", "", ""}},
      {"crio conmon cgroupfs",
       "0::/kubepods/burstable/pod" + kPod1 + "/crio-conmon-" + kIdA + "\n",
       {"cri-o", "", ""}},
      {"crio conmon with mangled id is still conmon",
       "0::/kubepods.slice/kubepods-pod" + kPod3Slice + ".slice/crio-conmon-" + kIdC.substr(0, 12) +
           ".scope\n",
       {"cri-o", "", ""}},
  };
}

std::vector<Case> podman_and_containerd_cases() {
  return {
      {"podman root systemd v2",
       "0::/machine.slice/libpod-" + kIdA + ".scope/container\n",
       {"podman", kIdA, ""}},
      {"podman root systemd v1",
       "1:name=systemd:/machine.slice/libpod-" + kIdA + ".scope\n",
       {"podman", kIdA, ""}},
      {"podman rootless systemd",
       "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kIdA +
           ".scope/container\n",
       {"podman", kIdA, ""}},
      {"podman pod member has no kubernetes pod uid",
       "0::/machine.slice/machine-libpod_pod_" + kIdD + ".slice/libpod-" + kIdA +
           ".scope/container\n",
       {"podman", kIdA, ""}},
      {"podman conmon systemd",
       "0::/machine.slice/libpod-conmon-" + kIdA + ".scope\n",
       {"podman", "", ""}},
      {"podman rootless conmon",
       "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-" + kIdA +
           ".scope\n",
       {"podman", "", ""}},
      {"podman cgroupfs v1 full file",
       v1_file("/libpod_parent/libpod-" + kIdA, "/"),
       {"podman", kIdA, ""}},
      {"podman cgroupfs conmon", "12:memory:/libpod_parent/conmon\n", {"podman", "", ""}},
      {"podman pod cgroupfs conmon",
       "12:memory:/libpod_parent/" + kIdD + "/conmon\n",
       {"podman", "", ""}},
      {"conmon directory outside libpod is nothing", "0::/somewhere/conmon\n", {}},
      {"nerdctl cgroupfs default namespace",
       "0::/default/" + kIdA + "\n",
       {"containerd", kIdA, ""}},
      {"nerdctl systemd",
       "0::/system.slice/nerdctl-" + kIdA + ".scope\n",
       {"containerd", kIdA, ""}},
  };
}

std::vector<Case> host_cases() {
  return {
      {"user session", "0::/user.slice/user-1000.slice/session-2.scope\n", {}},
      {"init scope", "0::/init.scope\n", {}},
      {"root cgroup", "0::/\n", {}},
      {"system service", "0::/system.slice/sshd.service\n", {}},
      {"docker daemon itself", "0::/system.slice/docker.service\n", {}},
      {"containerd shim service", "0::/system.slice/containerd.service\n", {}},
      {"desktop application scope",
       "0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
       "app-gnome-firefox-2841.scope\n",
       {}},
      {"host v1 hybrid full file",
       "12:pids:/user.slice/user-1000.slice/session-2.scope\n11:hugetlb:/\n"
       "10:net_cls,net_prio:/\n9:perf_event:/\n8:memory:/user.slice/user-1000.slice/"
       "session-2.scope\n7:blkio:/user.slice\n6:cpuset:/\n5:devices:/user.slice\n4:freezer:/\n"
       "3:cpu,cpuacct:/user.slice\n2:rdma:/\n1:name=systemd:/user.slice/user-1000.slice/"
       "session-2.scope\n0::/user.slice/user-1000.slice/session-2.scope\n",
       {}},
      {"inside a private cgroup namespace", "0::/\n", {}},
      {"machine scope that is no known runtime", "0::/machine.slice/machine-qemu-1-vm.scope\n", {}},
  };
}

std::vector<Case> selection_cases() {
  return {
      {"id line after root lines wins",
       "2:rdma:/\n1:name=systemd:/\n0::/system.slice/docker-" + kIdA + ".scope\n",
       {"docker", kIdA, ""}},
      {"id beats pod only line",
       "1:name=systemd:/kubepods/burstable/pod" + kPod1 + "\n8:memory:/kubepods/burstable/pod" +
           kPod1 + "/" + kIdA + "\n",
       {"containerd", kIdA, kPod1}},
      {"disagreeing ids keep the first",
       "12:memory:/docker/" + kIdA + "\n11:pids:/docker/" + kIdB + "\n",
       {"docker", kIdA, ""}},
      {"last line without newline", "0::/docker/" + kIdA, {"docker", kIdA, ""}},
      {"colon inside path", "0::/weird:dir/docker/" + kIdA + "\n", {"docker", kIdA, ""}},
      {"garbage lines around a valid one",
       "garbage\n\n:::\nx:y\n5:devices:/docker/" + kIdA + "\nmore garbage\n",
       {"docker", kIdA, ""}},
  };
}

std::vector<Case> malformed_cases() {
  std::string bad_char = kIdA;
  bad_char[40] = 'g';
  return {
      {"empty", "", {}},
      {"only newlines", "\n\n\n", {}},
      {"no colons", "docker " + kIdA + "\n", {}},
      {"one colon", "0:/docker/" + kIdA + "\n", {}},
      {"path without leading slash", "0::docker/" + kIdA + "\n", {}},
      {"non numeric hierarchy", "x::/docker/" + kIdA + "\n", {}},
      {"empty hierarchy", "::/docker/" + kIdA + "\n", {}},
      {"empty path", "0::\n", {}},
      {"only slashes", "0:://///\n", {}},
      {"truncated id", "0::/docker/" + kIdA.substr(0, 63) + "\n", {}},
      {"line cut mid id", "0::/docker/e83321bd", {}},
      {"uppercase id", "0::/docker/" + upper(kIdA) + "\n", {}},
      {"uppercase systemd id", "0::/system.slice/docker-" + upper(kIdA) + ".scope\n", {}},
      {"id too long", "0::/docker/" + kIdA + "0\n", {}},
      {"non hex character in id", "0::/docker/" + bad_char + "\n", {}},
      {"id with trailing junk in scope", "0::/system.slice/docker-" + kIdA + ".scope.bak\n", {}},
      {"empty scope id", "0::/system.slice/docker-.scope\n", {}},
      {"carriage return line ending", "0::/docker/" + kIdA + "\r\n", {}},
      {"embedded nul", std::string("0::/docker/\0", 12) + kIdA + "\n", {}},
      {"truncated container id leaves the pod",
       "0::/kubepods.slice/kubepods-pod" + kPod3Slice + ".slice/cri-containerd-" +
           kIdC.substr(0, 30) + ".scope\n",
       {"", "", kPod3}},
      {"uppercase pod uid",
       "0::/kubepods/burstable/pod" + upper(kPod1) + "/" + kIdA + "\n",
       {"", kIdA, ""}},
      {"pod uid with misplaced dashes",
       "0::/kubepods/burstable/poddc2e324-7f929-4a88-b4ef-00376b0c86ed/" + kIdA + "\n",
       {"", kIdA, ""}},
      {"pod uid truncated", "0::/kubepods/burstable/pod" + kPod1.substr(0, 35) + "\n", {}},
      {"dashed pod uid in slice name",
       "0::/kubepods.slice/kubepods-pod" + kPod3 + ".slice/cri-containerd-" + kIdC + ".scope\n",
       {"containerd", kIdC, ""}},
      {"underscored pod uid in cgroupfs",
       "0::/kubepods/pod" + kPod3Slice + "/" + kIdC + "\n",
       {"", kIdC, ""}},
      {"very long component", "0::/" + std::string(1 << 20, 'a') + "\n", {}},
      {"very long hex component", "0::/docker/" + std::string(1 << 16, 'a') + "\n", {}},
      {"very deep path",
       "0::" +
           [] {
             std::string s;
             for (int i = 0; i < 100000; ++i) s += "/d";
             return s;
           }() +
           "\n",
       {}},
      {"many conmon components",
       "0::/libpod_parent" +
           [] {
             std::string s;
             for (int i = 0; i < 100000; ++i) s += "/conmon";
             return s;
           }() +
           "/x\n",
       {}},
      {"binary garbage", std::string("\x01\xff:\x80:/\xfe\n\0\0\0:", 12), {}},
  };
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto group : {docker_cases(), kubernetes_cases(), podman_and_containerd_cases(),
                     host_cases(), selection_cases(), malformed_cases()}) {
    all.insert(all.end(), group.begin(), group.end());
  }
  return all;
}

std::string test_name(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.description;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class ParseCgroupTest : public testing::TestWithParam<Case> {};

TEST_P(ParseCgroupTest, ExtractsIdentity) {
  const Case& c = GetParam();
  EXPECT_EQ(parse_cgroup(c.input), c.expected) << c.description;
}

INSTANTIATE_TEST_SUITE_P(Cases, ParseCgroupTest, testing::ValuesIn(all_cases()), test_name);

TEST(ReadContainerIdentityTest, OwnProcessMatchesParsedFile) {
  ContainerIdentity identity;
  ASSERT_NO_THROW(identity = read_container_identity(getpid()));
  std::ifstream file("/proc/self/cgroup");
  std::stringstream content;
  content << file.rdbuf();
  EXPECT_EQ(identity, parse_cgroup(content.str()));
}

TEST(ReadContainerIdentityTest, MissingProcessThrowsNoSuchProcess) {
  pid_t pid = 4194303;  // PID_MAX_LIMIT - 1: almost never in use.
  while (pid > 1 && !(kill(pid, 0) == -1 && errno == ESRCH)) --pid;
  ASSERT_GT(pid, 1);
  try {
    read_container_identity(pid);
    FAIL() << "no exception for pid " << pid;
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), ESRCH);
    EXPECT_EQ(e.object(), std::to_string(pid));
    EXPECT_STREQ(e.what(), (std::to_string(pid) + ": no such process").c_str());
  }
}

}  // namespace
}  // namespace psnic
