#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "agent/owner.h"

namespace psnic {
namespace {

constexpr const char* kUid = "dc2e3247-f929-4a88-b4ef-00376b0c86ed";

TEST(PodLogDir, SplitsNamespacePodAndUid) {
  std::optional<PodRef> pod =
      parse_pod_log_dir(std::string("kube-system_coredns-5d78c9869d-7xkqp_") + kUid, kUid);
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->namespace_name, "kube-system");
  EXPECT_EQ(pod->name, "coredns-5d78c9869d-7xkqp");
}

TEST(PodLogDir, RejectsOtherUidsAndMalformedNames) {
  EXPECT_FALSE(parse_pod_log_dir(std::string("default_web_") + kUid, "other-uid"));
  EXPECT_FALSE(parse_pod_log_dir(kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("default_") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("a_b_c_") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("_web_") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir(std::string("default__") + kUid, kUid));
  EXPECT_FALSE(parse_pod_log_dir("default_web_", ""));
}

TEST(FindPod, LooksTheUidUpAmongKubeletsDirectories) {
  char dir[] = "/tmp/psnictest-pods-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string base = dir;
  std::string mine = base + "/monitoring_prometheus-0_" + kUid;
  std::string other = base + "/default_web_11111111-2222-3333-4444-555555555555";
  ASSERT_EQ(mkdir(mine.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(other.c_str(), 0700), 0);
  std::optional<PodRef> pod = find_pod(base, kUid);
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->namespace_name, "monitoring");
  EXPECT_EQ(pod->name, "prometheus-0");
  EXPECT_FALSE(find_pod(base, "99999999-2222-3333-4444-555555555555"));
  EXPECT_FALSE(find_pod(base + "/absent", kUid));
  rmdir(mine.c_str());
  rmdir(other.c_str());
  rmdir(dir);
}

TEST(OwnerDescriber, PodFromKubeletDirectoriesWhenNoDockerApplies) {
  char dir[] = "/tmp/psnictest-pods-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string pod_dir = std::string(dir) + "/shop_cart-7f9c_" + kUid;
  ASSERT_EQ(mkdir(pod_dir.c_str(), 0700), 0);
  OwnerDescriber describer("/nonexistent/docker.sock", dir);
  NetnsReport owner;
  owner.identity.runtime = "containerd";
  owner.identity.id = std::string(64, 'a');
  owner.identity.pod_uid = kUid;
  InterfaceLabels labels;
  describer.describe(owner, labels);
  EXPECT_EQ(labels.pod, "cart-7f9c");
  EXPECT_EQ(labels.namespace_name, "shop");
  EXPECT_EQ(labels.container_name, "");
  rmdir(pod_dir.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace psnic
