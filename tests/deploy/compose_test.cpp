// The whole shipped path: docker/compose.yaml brought up with Debian's docker-compose, the agent
// image (built offline) and a real Prometheus (from Debian's package) scraping it with psnic's
// rules. Traffic between two containers is asked back of Prometheus over its HTTP API and
// compared with the kernel's own counters; every dashboard query and every rule is evaluated.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>

#include "tests/deploy/deploy_support.h"

namespace psnic::test::deploy {
namespace {

using namespace psnic::test::e2e;
using namespace std::chrono_literals;

constexpr const char* kPrometheusImage = "psnic-prometheus:debian";
// compose.yaml's agent listens on the default port, which docker/prometheus/prometheus.yml
// scrapes.
constexpr uint16_t kAgentPort = 9867;

const char* const kFamilies[] = {
    "psnic_container_network_receive_bytes_total",
    "psnic_container_network_receive_packets_total",
    "psnic_container_network_transmit_bytes_total",
    "psnic_container_network_transmit_packets_total",
};

// The four counts of host veth `veth` as Prometheus last scraped them; nullopt until it has all.
std::optional<Counts> prometheus_counts(const PrometheusApi& prometheus, const std::string& veth) {
  Counts counts;
  uint64_t* fields[] = {&counts.receive_bytes, &counts.receive_packets, &counts.transmit_bytes,
                        &counts.transmit_packets};
  for (size_t i = 0; i < 4; ++i) {
    std::optional<double> value =
        prometheus.value(std::string(kFamilies[i]) + "{host_interface=\"" + veth + "\"}");
    if (!value) return std::nullopt;
    *fields[i] = static_cast<uint64_t>(*value);
  }
  return counts;
}

// Waits up to 30 s for the agent to answer a scrape.
bool agent_serving() {
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    if (http_get("http://127.0.0.1:" + std::to_string(kAgentPort) + "/metrics").status == 200)
      return true;
  }
  return false;
}

class ComposeTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped()) return;
    for (const std::string& image : {agent_image(), std::string(kPrometheusImage)})
      ASSERT_EQ(run("docker image inspect " + image).status, 0)
          << "no " << image << ": the deploy.image fixture builds it";
    project_ = unique_name('c');
    pin_dir_ = "/sys/fs/bpf/" + project_;
    prometheus_port_ = free_port();
    compose_ = "PSNIC_IMAGE=" + agent_image() + " PROMETHEUS_IMAGE=" + kPrometheusImage +
               " PSNIC_PIN_DIR=" + pin_dir_ +
               " PROMETHEUS_LISTEN=127.0.0.1:" + std::to_string(prometheus_port_) +
               " docker-compose -p " + project_ + " -f " + source_path("docker/compose.yaml") + " ";
  }
  void TearDown() override {
    if (!project_.empty()) run(compose_ + "down -v --timeout 10");
    run_cleanup(pin_dir_);
  }

  std::string compose(const std::string& args) { return must(compose_ + args); }

  // Waits until Prometheus's last scrape of `veth` equals what the agent serves at a quiet
  // moment: Prometheus's counts then, and the kernel's. nullopt after `timeout`.
  std::optional<std::pair<Counts, Counts>> caught_up(const PrometheusApi& prometheus,
                                                     const std::string& veth,
                                                     std::chrono::seconds timeout = 60s) {
    std::optional<Counts> scraped;
    Snapshot agent;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;
         std::this_thread::sleep_for(500ms)) {
      agent = quiet_snapshot(kAgentPort, veth);
      scraped = prometheus_counts(prometheus, veth);
      if (scraped && *scraped == agent.agent) return std::pair{*scraped, agent.kernel};
    }
    ADD_FAILURE() << veth << ": Prometheus has "
                  << (scraped ? ::testing::PrintToString(*scraped) : "nothing")
                  << ", the agent serves " << agent.agent;
    return std::nullopt;
  }

  std::string project_;
  std::string pin_dir_;
  uint16_t prometheus_port_ = 0;
  std::string compose_;
};

TEST_F(ComposeTest, PrometheusSeesExactlyWhatTheKernelCountedAndEveryQueryAnswers) {
  compose("up -d");
  PrometheusApi prometheus(prometheus_port_);
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline && !prometheus.ready();)
    std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(prometheus.ready()) << run(compose_ + "logs prometheus 2>&1").out;
  ASSERT_TRUE(agent_serving()) << run(compose_ + "logs psnic-agent 2>&1").out;
  const std::string agent_id = chomp(compose("ps -q psnic-agent"));
  const std::string started = must("docker inspect -f '{{.State.StartedAt}}' " + agent_id);

  // Started twice: the same containers go on, nothing restarted.
  compose("up -d");
  EXPECT_EQ(chomp(compose("ps -q psnic-agent")), agent_id);
  EXPECT_EQ(must("docker inspect -f '{{.State.StartedAt}}' " + agent_id), started);

  Container a('a'), b('b');
  ASSERT_FALSE(HasFailure());
  const std::string veth_a = a.host_veth(), veth_b = b.host_veth();
  // Both named in the agent's /metrics, then caught up with in Prometheus.
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;
       std::this_thread::sleep_for(200ms)) {
    if (value_of(scrape(kAgentPort), "psnic_container_network_receive_bytes_total",
                 {{"host_interface", veth_b}, {"container_name", b.name()}}))
      break;
  }
  auto a0 = caught_up(prometheus, veth_a, 90s), b0 = caught_up(prometheus, veth_b);
  ASSERT_TRUE(a0 && b0) << run(compose_ + "logs psnic-agent 2>&1").out;
  EXPECT_TRUE(prometheus.value("psnic_container_network_receive_bytes_total{container_name=\"" +
                               a.name() + "\",container_id=\"" + a.id() + "\"}"));

  constexpr size_t kAToB = 3'000'000, kBToA = 1'000'000;
  exchange(a, b, kAToB, kBToA);
  auto a1 = caught_up(prometheus, veth_a), b1 = caught_up(prometheus, veth_b);
  ASSERT_TRUE(a1 && b1);
  // Prometheus's increase is the kernel's, to the byte and packet, both ways.
  const Counts sent_a = a1->first - a0->first, sent_b = b1->first - b0->first;
  EXPECT_EQ(sent_a, a1->second - a0->second);
  EXPECT_EQ(sent_b, b1->second - b0->second);
  RecordProperty("a_transmit_bytes", std::to_string(sent_a.transmit_bytes));
  RecordProperty("a_receive_bytes", std::to_string(sent_a.receive_bytes));
  // The payload, and no more than TCP/IP/Ethernet headers, acknowledgements and 20 pings on top.
  EXPECT_GE(sent_a.transmit_bytes, kAToB);
  EXPECT_LE(sent_a.transmit_bytes, kAToB + kAToB / 10 + kBToA / 10 + 20'000);
  EXPECT_GE(sent_a.receive_bytes, kBToA);
  EXPECT_LE(sent_a.receive_bytes, kBToA + kBToA / 10 + kAToB / 10 + 20'000);
  // What a sent, b received (give or take what the bridge itself says to each, ARP and such).
  EXPECT_NEAR(static_cast<double>(sent_a.transmit_bytes), static_cast<double>(sent_b.receive_bytes),
              1000.0);
  EXPECT_NEAR(static_cast<double>(sent_b.transmit_bytes), static_cast<double>(sent_a.receive_bytes),
              1000.0);

  // The agent stopped while Prometheus scrapes: its programs go on counting, pinned; the next
  // one adopts them, and Prometheus's counters continue with what was sent meanwhile.
  compose("stop psnic-agent");
  exchange(a, b, 500'000, 200'000);
  compose("start psnic-agent");
  ASSERT_TRUE(agent_serving()) << run(compose_ + "logs psnic-agent 2>&1").out;
  auto a2 = caught_up(prometheus, veth_a);
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->first - a1->first, a2->second - a1->second);
  EXPECT_GE((a2->first - a1->first).transmit_bytes, 500'000u);
  // The same container, started again: its log holds both runs.
  const std::string agent_log = run("docker logs " + agent_id).err;
  const std::vector<LogRecord> log = parse_log(agent_log);
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [&](const LogRecord& line) {
    return line.at("msg").starts_with("adopted " + veth_a + " (");
  })) << agent_log;

  // Every dashboard panel's query returns series (the dashboard's variables select everything).
  CommandResult queries =
      run(source_path("tests/deploy/dashboard-queries.sh") + " --json --var job=psnic");
  ASSERT_EQ(queries.status, 0) << queries.err;
  std::istringstream lines(queries.out);
  size_t panels = 0;
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json panel = nlohmann::json::parse(line);
    const std::string expr = panel.at("expr");
    ++panels;
    EXPECT_FALSE(prometheus.query(expr).empty())
        << "panel \"" << panel.at("panel").get<std::string>() << "\": " << expr;
  }
  EXPECT_GT(panels, 0u);
  RecordProperty("dashboard_queries", std::to_string(panels));

  // Every rule loaded and evaluated without error; every recording rule's series exists.
  size_t records = 0, alerts = 0;
  for (const auto& group : prometheus.rule_groups()) {
    for (const auto& rule : group.at("rules")) {
      const std::string name = rule.at("name");
      EXPECT_EQ(rule.value("health", ""), "ok") << name << ": " << rule.value("lastError", "");
      if (rule.at("type") == "recording") {
        ++records;
        // Recording rules are evaluated every 15 s: wait for a result of this one.
        bool answered = false;
        for (auto deadline = Clock::now() + 40s; !answered && Clock::now() < deadline;) {
          answered = !prometheus.query(name).empty();
          if (!answered) std::this_thread::sleep_for(1s);
        }
        EXPECT_TRUE(answered) << "recording rule " << name << " has no series";
      } else {
        ++alerts;
      }
    }
  }
  EXPECT_GT(records, 0u);
  EXPECT_GT(alerts, 0u);
  RecordProperty("recording_rules", std::to_string(records));
  RecordProperty("alerting_rules", std::to_string(alerts));

  // Down: nothing of the stack left but the images, and the pins go with --cleanup.
  compose("down -v --timeout 10");
  EXPECT_EQ(chomp(run("docker ps -aq --filter name=" + project_).out), "");
  EXPECT_EQ(chomp(run("docker volume ls -q --filter name=" + project_).out), "");
  CommandResult cleanup = run_cleanup(pin_dir_);
  EXPECT_EQ(cleanup.status, 0) << cleanup.err;
  EXPECT_EQ(psnic_programs(veth_a), 0u);
  EXPECT_EQ(psnic_programs(veth_b), 0u);
}

}  // namespace
}  // namespace psnic::test::deploy
