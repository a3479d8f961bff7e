// The Docker event stream, without Docker: EventStreamParser on the body of GET /events (as
// libcurl hands it over, the chunked framing removed) as recorded from dockerd 20.10 (API 1.41)
// and in the shape of API 1.52, fed in every split; and DockerEvents against a fake daemon on a
// unix socket in /tmp that answers as dockerd does or misbehaves.
#include "runtime/docker_events.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "resolver/namespace.h"
#include "tests/support/unix_server.h"

namespace psnic {

// How failures show an event.
void PrintTo(const ContainerEvent& e, std::ostream* out) {
  *out << "{" << e.action << " " << e.id << " \"" << e.name << "\"}";
}

namespace {

// The messages of GET /v1.41/events, filtered as DockerEvents asks, around `docker run -d --name
// psnictest-rec1 --label psnictest.key=value psnic-test:latest sleep 600`, `docker rename
// psnictest-rec1 psnictest-rec2` and `docker rm -f psnictest-rec2` on dockerd 20.10.24, as
// recorded (one line each).
constexpr std::string_view kId = "6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355";
constexpr std::string_view kStart =
    R"({"status":"start","id":"6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355",)"
    R"("from":"psnic-test:latest","Type":"container","Action":"start","Actor":{"ID":)"
    R"("6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355","Attributes":)"
    R"({"image":"psnic-test:latest","name":"psnictest-rec1","psnictest.key":"value"}},)"
    R"("scope":"local","time":1795700516,"timeNano":1795700516012461652})";
constexpr std::string_view kRename =
    R"({"status":"rename","id":"6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355",)"
    R"("from":"psnic-test:latest","Type":"container","Action":"rename","Actor":{"ID":)"
    R"("6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355","Attributes":)"
    R"({"image":"psnic-test:latest","name":"psnictest-rec2","oldName":"/psnictest-rec1",)"
    R"("psnictest.key":"value"}},"scope":"local","time":1795700516,)"
    R"("timeNano":1795700516028164984})";
constexpr std::string_view kDie =
    R"({"status":"die","id":"6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355",)"
    R"("from":"psnic-test:latest","Type":"container","Action":"die","Actor":{"ID":)"
    R"("6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355","Attributes":)"
    R"({"exitCode":"137","image":"psnic-test:latest","name":"psnictest-rec2",)"
    R"("psnictest.key":"value"}},"scope":"local","time":1795700516,)"
    R"("timeNano":1795700516066321320})";
constexpr std::string_view kDestroy =
    R"({"status":"destroy","id":"6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355",)"
    R"("from":"psnic-test:latest","Type":"container","Action":"destroy","Actor":{"ID":)"
    R"("6e427f435b8b826c2757293e4eb0375df7e0a5d9aeec77e4771ee7c712ee2355","Attributes":)"
    R"({"image":"psnic-test:latest","name":"psnictest-rec2","psnictest.key":"value"}},)"
    R"("scope":"local","time":1795700516,"timeNano":1795700516113607977})";

// Recorded from an unfiltered GET /v1.41/events around `docker network create` and `docker run`:
// events of other types, and a container event the subscription does not ask for.
constexpr std::string_view kNetworkCreate =
    R"({"Type":"network","Action":"create","Actor":{"ID":)"
    R"("de4042da02701fb2a2cb748325a88f2cd291aca43c148527ed6d3e1d0d57c140","Attributes":)"
    R"({"name":"psnictest-recnet","type":"bridge"}},"scope":"local","time":1795700521,)"
    R"("timeNano":1795700521900614323})";
constexpr std::string_view kNetworkConnect =
    R"({"Type":"network","Action":"connect","Actor":{"ID":)"
    R"("d075753cf5f4d9cf8e9dd254be05b959f33cb7397191b47c8d85f4475f523804","Attributes":)"
    R"({"container":"d46697e069fec3fc6e41e6bba9f9348f17ba24c655891178a2c3f5fda9d0b513",)"
    R"("name":"bridge","type":"bridge"}},"scope":"local","time":1795700522,)"
    R"("timeNano":1795700522079682896})";
constexpr std::string_view kCreate =
    R"({"status":"create","id":"d46697e069fec3fc6e41e6bba9f9348f17ba24c655891178a2c3f5fda9d0b513",)"
    R"("from":"psnic-test:latest","Type":"container","Action":"create","Actor":{"ID":)"
    R"("d46697e069fec3fc6e41e6bba9f9348f17ba24c655891178a2c3f5fda9d0b513","Attributes":)"
    R"({"image":"psnic-test:latest","name":"psnictest-rec3"}},"scope":"local",)"
    R"("time":1795700522,"timeNano":1795700522072320255})";
// An image event, in the same shape (hand-made: the test host has no registry to pull from).
constexpr std::string_view kImagePull =
    R"({"status":"pull","id":"busybox:latest","Type":"image","Action":"pull","Actor":{"ID":)"
    R"("busybox:latest","Attributes":{"name":"busybox"}},"scope":"local","time":1795700522,)"
    R"("timeNano":1795700522072320255})";

// The response head of GET /v1.41/events, as recorded.
constexpr std::string_view kStreamHead =
    "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
    "Docker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\n"
    "Date: Thu, 26 Nov 2026 13:41:55 GMT\r\nTransfer-Encoding: chunked\r\n\r\n";
// What Go's net/http sends when the handler returns.
constexpr std::string_view kLastChunk = "0\r\n\r\n";

const std::vector<ContainerEvent> kRecordedEvents = {
    {"start", std::string(kId), "psnictest-rec1"},
    {"rename", std::string(kId), "psnictest-rec2"},
    {"die", std::string(kId), "psnictest-rec2"},
    {"destroy", std::string(kId), "psnictest-rec2"},
};

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

std::string line(std::string_view message) { return std::string(message) + "\n"; }

// The recorded body, decoded: each message with its newline.
std::string recorded_messages() {
  return line(kStart) + line(kRename) + line(kDie) + line(kDestroy);
}

// The recorded body as sent: each message with its newline in a chunk of its own, dockerd
// flushing after each one. The chunk sizes are the recorded ones.
std::string recorded_body() {
  return "188\r\n" + line(kStart) + "\r\n" + "1a6\r\n" + line(kRename) + "\r\n" + "195\r\n" +
         line(kDie) + "\r\n" + "18c\r\n" + line(kDestroy) + "\r\n";
}

// API 1.52 (Docker 29) no longer sends the deprecated status, id and from.
std::string without_old_fields(std::string_view message) {
  static const std::regex old_fields(
      R"re("status":"[a-z]+","id":"[0-9a-f]{64}","from":"[^"]*",)re");
  std::string out = std::regex_replace(std::string(message), old_fields, "");
  EXPECT_NE(out, message) << "nothing removed";
  return out;
}

// Feeds `bytes` in pieces of `step` bytes; all the events.
std::vector<ContainerEvent> feed_in_pieces(EventStreamParser& parser, std::string_view bytes,
                                           size_t step) {
  std::vector<ContainerEvent> all;
  for (size_t at = 0; at < bytes.size(); at += step) {
    for (ContainerEvent& e : parser.feed(bytes.substr(at, step))) all.push_back(std::move(e));
  }
  return all;
}

// Feeds `bytes` split at every byte boundary (and byte by byte), expecting `expected` each time,
// and the stream may end there.
void expect_every_split(std::string_view bytes, const std::vector<ContainerEvent>& expected) {
  for (size_t split = 0; split <= bytes.size(); ++split) {
    SCOPED_TRACE("split at byte " + std::to_string(split));
    EventStreamParser parser("test stream");
    std::vector<ContainerEvent> events = parser.feed(bytes.substr(0, split));
    for (ContainerEvent& e : parser.feed(bytes.substr(split))) events.push_back(std::move(e));
    ASSERT_EQ(events, expected);
    ASSERT_NO_THROW(parser.end());
  }
  EventStreamParser parser("test stream");
  EXPECT_EQ(feed_in_pieces(parser, bytes, 1), expected) << "byte by byte";
  EXPECT_NO_THROW(parser.end());
}

// Feeding `bytes` whole, and byte by byte, then (with `then_end`) ending the stream, throws
// Error(EBADMSG) naming the stream, one line, with `cause` in it.
void expect_bad_stream(std::string_view bytes, std::string_view cause, bool then_end = false) {
  SCOPED_TRACE(std::string(bytes.substr(0, 60)));
  for (size_t step : {bytes.size(), size_t{1}}) {
    EventStreamParser parser("test stream");
    try {
      feed_in_pieces(parser, bytes, std::max<size_t>(step, 1));
      if (then_end) parser.end();
      ADD_FAILURE() << "no error, feeding " << step << " bytes at a time";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.errnum(), EBADMSG) << what;
      EXPECT_EQ(e.object(), "test stream") << what;
      EXPECT_EQ(what.rfind("test stream: event stream: ", 0), 0u) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_NE(what.find(cause), std::string::npos) << what;
    }
  }
}

TEST(EventStreamParserTest, RecordedStream) {
  EventStreamParser parser("test stream");
  EXPECT_EQ(parser.feed(recorded_messages()), kRecordedEvents);
  EXPECT_TRUE(parser.feed("").empty());
  EXPECT_NO_THROW(parser.end());
}

TEST(EventStreamParserTest, RecordedStreamInEverySplit) {
  expect_every_split(recorded_messages(), kRecordedEvents);
}

TEST(EventStreamParserTest, NewerShapeWithoutOldFields) {
  std::string body;
  for (std::string_view message : {kStart, kRename, kDie, kDestroy}) {
    const std::string newer = without_old_fields(message);
    EXPECT_EQ(newer.find("\"status\""), std::string::npos) << newer;
    EXPECT_EQ(newer.rfind(R"({"Type":"container","Action":")", 0), 0u) << newer;
    body += line(newer);
  }
  expect_every_split(body, kRecordedEvents);
}

TEST(EventStreamParserTest, OldFieldsOnly) {
  // As API versions before 1.22 sent a container event: no Type, Action or Actor.
  const std::string old = R"({"status":"start","id":")" + std::string(kId) +
                          R"(","from":"psnic-test:latest","time":1795700516})";
  expect_every_split(line(old), {{"start", std::string(kId), ""}});
}

TEST(EventStreamParserTest, NewFieldsWinOverOldOnes) {
  const std::string other(64, 'a');
  std::string message(kStart);
  message.replace(message.find(kId), kId.size(), other);  // "id"
  message.replace(message.find("\"status\":\"start\""), 16, R"("status":"x")");
  EventStreamParser parser("test stream");
  EXPECT_EQ(parser.feed(line(message)),
            (std::vector<ContainerEvent>{{"start", std::string(kId), "psnictest-rec1"}}));
}

TEST(EventStreamParserTest, SeveralMessagesInOneRead) {
  // Three and a half messages in one read, the rest of the fourth and a fifth in the next.
  const std::string first =
      line(kStart) + line(kRename) + line(kDie) + std::string(kDestroy.substr(0, 100));
  const std::string second = std::string(kDestroy.substr(100)) + "\n" + line(kStart);
  std::vector<ContainerEvent> expected = kRecordedEvents;
  expected.push_back(kRecordedEvents[0]);
  EventStreamParser parser("test stream");
  std::vector<ContainerEvent> events = parser.feed(first);
  for (ContainerEvent& e : parser.feed(second)) events.push_back(std::move(e));
  EXPECT_EQ(events, expected);
  expect_every_split(first + second, expected);
}

TEST(EventStreamParserTest, MessageInManyReads) {
  EventStreamParser parser("test stream");
  EXPECT_EQ(feed_in_pieces(parser, line(kRename), 7),
            (std::vector<ContainerEvent>{kRecordedEvents[1]}));
}

TEST(EventStreamParserTest, BlankLinesAreSkipped) {
  expect_every_split("\n\r\n  \n" + line(kStart) + "\n" + "\n", {kRecordedEvents[0]});
}

TEST(EventStreamParserTest, OtherEventsAreSkipped) {
  const std::string body = line(kNetworkCreate) + line(kCreate) + line(kNetworkConnect) +
                           line(kImagePull) + line(kStart);
  // Container events of any action are returned; the subscription asks only for four.
  const std::string created = "d46697e069fec3fc6e41e6bba9f9348f17ba24c655891178a2c3f5fda9d0b513";
  expect_every_split(body, {{"create", created, "psnictest-rec3"}, kRecordedEvents[0]});
}

TEST(EventStreamParserTest, OversizedMessage) {
  const size_t limit = EventStreamParser::kMaxMessageBytes;
  // Exactly at the limit (padded with spaces inside the object), with its newline: fine.
  std::string at_limit(kStart);
  at_limit.insert(1, limit - at_limit.size(), ' ');
  ASSERT_EQ(at_limit.size(), limit);
  EventStreamParser parser("test stream");
  EXPECT_EQ(feed_in_pieces(parser, at_limit + "\n", 4096),
            (std::vector<ContainerEvent>{kRecordedEvents[0]}));
  // A byte more, and no newline is waited for.
  const std::string over = " " + at_limit;
  expect_bad_stream(over, "a message larger than 1 MiB");
  // Many messages of any size are fine: the limit is per message.
  EventStreamParser many("test stream");
  std::string lines;
  for (int i = 0; i < 3000; ++i) lines += line(kStart);
  ASSERT_GT(lines.size(), limit);
  EXPECT_EQ(many.feed(lines).size(), 3000u);
}

TEST(EventStreamParserTest, MalformedMessages) {
  auto bad = [](const std::string& message, std::string_view cause) {
    expect_bad_stream(line(message), cause);
  };
  bad("{", "malformed JSON at byte");
  bad(std::string(kStart.substr(0, 200)), "malformed JSON");
  bad("<html>502 Bad Gateway</html>", "malformed JSON");
  bad("{\"Type\":\"container\",\"Action\":\"\xff\"}", "malformed JSON");  // not UTF-8
  bad(std::string(kStart) + " {}", "malformed JSON");                     // two objects on one line
  bad("[]", "an event is not a JSON object");
  bad("\"start\"", "an event is not a JSON object");
  bad("null", "an event is not a JSON object");
  const std::string id(kId);
  bad(R"({"Type":"container","Actor":{"ID":")" + id + "\"}}", "a container event without Action");
  bad(R"({"Type":"container","Action":"start"})", "container event id \"\" is not a 64-hex");
  bad(R"({"Type":"container","Action":"start","Actor":{"ID":"6e427f435b8b"}})",
      "container event id \"6e427f435b8b\" is not a 64-hex container id");
  bad(R"({"Type":"container","Action":"start","Actor":{"ID":"6E427F435B8B826C2757293E4EB0375DF7E0A5D9AEEC77E4771EE7C712EE2355"}})",
      "is not a 64-hex container id");
  bad(R"({"Type":"container","Action":"start","Actor":{"ID":"../)" + id.substr(3) + "\"}}",
      "is not a 64-hex container id");
  bad(R"({"Type":7})", "Type is not a string");
  bad(R"({"Type":"container","Action":["start"]})", "Action is not a string");
  bad(R"({"Type":"container","Action":"start","Actor":{"ID":42}})", "Actor.ID is not a string");
  bad(R"({"Type":"container","Action":"start","Actor":{"ID":")" + id +
          R"(","Attributes":{"name":1}}})",
      "Actor.Attributes.name is not a string");
  // A control character in what is quoted does not break the line.
  bad(R"({"Type":"container","Action":"start","Actor":{"ID":"a\nb"}})",
      "container event id \"a?b\" is not");
}

TEST(EventStreamParserTest, NullOrAbsentOptionalFields) {
  const std::string id(kId);
  EventStreamParser parser("test stream");
  EXPECT_EQ(parser.feed(line(R"({"Type":"container","Action":"start","Actor":{"ID":")" + id +
                             R"(","Attributes":null}})") +
                        line(R"({"Type":"container","Action":"die","Actor":{"ID":")" + id +
                             R"(","Attributes":{"name":null}}})") +
                        line(R"({"Type":null,"Action":"destroy","Actor":{"ID":")" + id + R"("}})")),
            (std::vector<ContainerEvent>{{"start", id, ""}, {"die", id, ""}, {"destroy", id, ""}}));
}

TEST(EventStreamParserTest, StreamEndingInsideAMessage) {
  expect_bad_stream(kStart, "the stream ended inside a message", /*then_end=*/true);
  // Blanks after the last newline are no message.
  EventStreamParser parser("test stream");
  EXPECT_EQ(parser.feed(line(kStart) + "  ").size(), 1u);
  EXPECT_NO_THROW(parser.end());
}

// A Docker daemon stand-in on a unix socket for DockerEvents, served by one thread. Every
// connection gets the scripted response of its request's path (query removed; "/_ping" and
// "/events" with any version prefix have defaults) and is closed, except when it is a chunked
// one (or none) to an /events path: the last such stays open as the event stream, which the
// test writes to.
class FakeEventDaemon {
 public:
  static constexpr std::string_view kPong =
      "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, "
      "must-revalidate\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK";

  const std::string& path() const { return server_.path(); }

  // The raw response to requests of `path` ("/v1.41/events"); "" answers nothing.
  void answer(std::string path, std::string response) {
    std::lock_guard lock(mutex_);
    answers_[std::move(path)] = std::move(response);
  }
  // The request targets received, in order.
  std::vector<std::string> targets() const {
    std::lock_guard lock(mutex_);
    return targets_;
  }
  // Writes to the event stream.
  void send(std::string_view bytes) {
    std::lock_guard lock(mutex_);
    ASSERT_TRUE(stream_.valid()) << "no event stream";
    ASSERT_EQ(::send(stream_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  void close_stream() {
    std::lock_guard lock(mutex_);
    stream_ = Fd();
  }
  // Whether the client closed the event stream's connection within `timeout_ms`.
  bool stream_closed_by_client(int timeout_ms) {
    std::lock_guard lock(mutex_);
    pollfd p{stream_.get(), POLLIN, 0};
    char byte;
    return poll(&p, 1, timeout_ms) == 1 && recv(stream_.get(), &byte, 1, MSG_DONTWAIT) == 0;
  }

 private:
  // One connection: the request head, the scripted response.
  void serve(int conn) {
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos && server_.wait_readable(conn)) {
      char buffer[4096];
      const ssize_t n = read(conn, buffer, sizeof buffer);
      if (n <= 0) break;
      request.append(buffer, static_cast<size_t>(n));
    }
    // "GET /v1.41/events?filters=... HTTP/1.1"
    const size_t start = request.find(' ') + 1;
    const std::string target = request.substr(start, request.find(' ', start) - start);
    const std::string path = target.substr(0, target.find('?'));
    const bool events = path.size() >= 7 && path.compare(path.size() - 7, 7, "/events") == 0;
    std::lock_guard lock(mutex_);
    targets_.push_back(target);
    std::string response = events ? std::string(kStreamHead) : std::string(kPong);
    if (auto it = answers_.find(path); it != answers_.end()) response = it->second;
    if (!response.empty()) (void)!::send(conn, response.data(), response.size(), MSG_NOSIGNAL);
    if (events && (response.empty() || response.find("chunked") != std::string::npos)) {
      stream_ = Fd(conn);
    } else {
      close(conn);
    }
  }

  mutable std::mutex mutex_;
  std::map<std::string, std::string> answers_;
  std::vector<std::string> targets_;
  Fd stream_;
  // Last: it serves from its own thread, with the members above.
  test::UnixSocketServer server_{[this](int conn) { serve(conn); }};
};

constexpr std::string_view kEventsTarget =
    "/v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%2C"
    "%22rename%22%2C%22die%22%2C%22destroy%22%5D%7D";

std::string json_response(int status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1;
}

// Drains until `count` events arrived or the stream closed, waiting up to 2 s for each read.
std::vector<ContainerEvent> drain_events(DockerEvents& events, size_t count, bool& closed) {
  std::vector<ContainerEvent> all;
  closed = false;
  while (all.size() < count && !closed && readable(events.fd(), 2000))
    for (ContainerEvent& e : events.drain(closed)) all.push_back(std::move(e));
  return all;
}

class DockerEventsTest : public ::testing::Test {
 protected:
  // open() fails with an Error of the fake's socket, one line: "<socket>" + `cause` + the rest.
  void expect_open_error(int errnum, std::string_view cause) {
    try {
      DockerEvents::open(fake.path());
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.errnum(), errnum) << what;
      EXPECT_EQ(e.object(), fake.path()) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_EQ(what.rfind(fake.path() + std::string(cause), 0), 0u) << what;
    }
  }

  FakeEventDaemon fake;
};

TEST_F(DockerEventsTest, SubscribesAtTheNegotiatedVersion) {
  DockerEvents events = DockerEvents::open(fake.path());
  EXPECT_EQ(events.socket_path(), fake.path());
  EXPECT_EQ(events.api_version(), "1.41");
  EXPECT_EQ(fake.targets(), (std::vector<std::string>{"/_ping", std::string(kEventsTarget)}));
  bool closed = true;
  EXPECT_TRUE(events.drain(closed).empty());
  EXPECT_FALSE(closed);
  EXPECT_FALSE(readable(events.fd(), 0));

  fake.send(recorded_body());
  EXPECT_EQ(drain_events(events, 4, closed), kRecordedEvents);
  EXPECT_FALSE(closed);
  EXPECT_FALSE(readable(events.fd(), 0));

  fake.send(kLastChunk);
  EXPECT_TRUE(drain_events(events, 1, closed).empty());
  EXPECT_TRUE(closed);
  // And it stays closed.
  EXPECT_TRUE(events.drain(closed).empty());
  EXPECT_TRUE(closed);
}

TEST_F(DockerEventsTest, AnEventSentWithTheHeadIsNotLost) {
  // open() reads the head and nothing more, so the fd is readable for the first event.
  fake.answer("/v1.41/events", std::string(kStreamHead) + chunk(line(kStart)));
  DockerEvents events = DockerEvents::open(fake.path());
  ASSERT_TRUE(readable(events.fd(), 2000));
  bool closed = true;
  EXPECT_EQ(events.drain(closed), (std::vector<ContainerEvent>{kRecordedEvents[0]}));
  EXPECT_FALSE(closed);
}

TEST_F(DockerEventsTest, DaemonGoingAwayClosesTheStream) {
  DockerEvents events = DockerEvents::open(fake.path());
  fake.send(chunk(line(kStart)) + chunk(kDie.substr(0, 50)));
  fake.close_stream();  // dockerd stopped, mid-message
  bool closed = false;
  EXPECT_EQ(drain_events(events, 2, closed), (std::vector<ContainerEvent>{kRecordedEvents[0]}));
  EXPECT_TRUE(closed);
}

TEST_F(DockerEventsTest, MovedSubscriptionKeepsWorking) {
  DockerEvents first = DockerEvents::open(fake.path());
  const int fd = first.fd();
  DockerEvents second = std::move(first);
  EXPECT_EQ(second.fd(), fd);
  fake.send(chunk(line(kRename)));
  bool closed = true;
  EXPECT_EQ(drain_events(second, 1, closed), (std::vector<ContainerEvent>{kRecordedEvents[1]}));
}

// drain() throws Error(EBADMSG) of the socket, one line, starting "<socket>" + `cause`.
void expect_drain_error(DockerEvents& events, const std::string& socket, std::string_view cause) {
  bool closed = false;
  try {
    while (readable(events.fd(), 2000) && !closed) events.drain(closed);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.errnum(), EBADMSG) << what;
    EXPECT_EQ(e.object(), socket) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(what.rfind(socket + std::string(cause), 0), 0u) << what;
  }
}

TEST_F(DockerEventsTest, MalformedStreamThrows) {
  // The chunked framing is libcurl's to decode, and the words its own.
  DockerEvents events = DockerEvents::open(fake.path());
  fake.send("zz\r\n");
  expect_drain_error(events, fake.path(), ": event stream: ");
}

TEST_F(DockerEventsTest, MalformedMessageThrows) {
  DockerEvents events = DockerEvents::open(fake.path());
  fake.send(chunk(line(kStart)) + chunk("{\"Type\":\n"));
  expect_drain_error(events, fake.path(), ": event stream: malformed JSON at byte");
}

TEST_F(DockerEventsTest, StreamEndingInsideAMessageThrows) {
  DockerEvents events = DockerEvents::open(fake.path());
  fake.send(chunk(kStart) + std::string(kLastChunk));
  expect_drain_error(events, fake.path(), ": event stream: the stream ended inside a message");
}

TEST_F(DockerEventsTest, DaemonGoingAwayInsideAChunkClosesTheStream) {
  // libcurl fails the transfer (the chunk is short of its size): a broken connection, not
  // malformed data.
  DockerEvents events = DockerEvents::open(fake.path());
  fake.send(chunk(line(kStart)) + "188\r\n" + std::string(kRename.substr(0, 50)));
  fake.close_stream();
  bool closed = false;
  EXPECT_EQ(drain_events(events, 2, closed), (std::vector<ContainerEvent>{kRecordedEvents[0]}));
  EXPECT_TRUE(closed);
}

TEST_F(DockerEventsTest, EndSentWithTheHeadIsSeen) {
  fake.answer("/v1.41/events",
              std::string(kStreamHead) + chunk(line(kStart)) + std::string(kLastChunk));
  DockerEvents events = DockerEvents::open(fake.path());
  ASSERT_TRUE(readable(events.fd(), 2000));
  bool closed = false;
  EXPECT_EQ(events.drain(closed), (std::vector<ContainerEvent>{kRecordedEvents[0]}));
  EXPECT_TRUE(closed);
}

TEST_F(DockerEventsTest, EdgeTriggeredEpollSeesEveryBurst) {
  DockerEvents events = DockerEvents::open(fake.path());
  Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  epoll_event watched{};
  watched.events = EPOLLIN | EPOLLET;
  ASSERT_EQ(epoll_ctl(epoll.get(), EPOLL_CTL_ADD, events.fd(), &watched), 0);
  for (size_t i = 0; i < kRecordedEvents.size(); ++i) {
    SCOPED_TRACE("burst " + std::to_string(i));
    fake.send(chunk(line(std::vector{kStart, kRename, kDie, kDestroy}[i])));
    epoll_event ready{};
    ASSERT_EQ(epoll_wait(epoll.get(), &ready, 1, 2000), 1);
    bool closed = true;
    std::vector<ContainerEvent> got;
    // Every edge is followed by drains until the burst is in (a burst may take more than one).
    do {
      for (ContainerEvent& e : events.drain(closed)) got.push_back(std::move(e));
    } while (got.empty() && epoll_wait(epoll.get(), &ready, 1, 2000) == 1);
    EXPECT_EQ(got, std::vector<ContainerEvent>{kRecordedEvents[i]});
    EXPECT_FALSE(closed);
  }
}

TEST_F(DockerEventsTest, DestroyedPromptlyWhileTheDaemonIsSilent) {
  // A daemon that sent the head and then nothing, for ever: destroying the subscription does not
  // wait for it, and closes the connection.
  std::optional<DockerEvents> events(DockerEvents::open(fake.path()));
  bool closed = true;
  EXPECT_TRUE(events->drain(closed).empty());
  const auto start = std::chrono::steady_clock::now();
  events.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_TRUE(fake.stream_closed_by_client(2000));
}

TEST_F(DockerEventsTest, MovedOverSubscriptionIsClosed) {
  DockerEvents events = DockerEvents::open(fake.path());
  events = DockerEvents::open(fake.path());  // the first one's connection is closed at once
  fake.send(chunk(line(kStart)));
  bool closed = true;
  EXPECT_EQ(drain_events(events, 1, closed), (std::vector<ContainerEvent>{kRecordedEvents[0]}));
  EXPECT_FALSE(closed);
}

TEST_F(DockerEventsTest, UnversionedWithoutApiVersionHeader) {
  fake.answer("/_ping", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
  DockerEvents events = DockerEvents::open(fake.path());
  EXPECT_EQ(events.api_version(), "");
  EXPECT_EQ(fake.targets().back(), kEventsTarget.substr(6));  // without "/v1.41"
}

TEST_F(DockerEventsTest, UnversionedWhenItsOwnVersionIsRefused) {
  fake.answer("/_ping", "HTTP/1.1 200 OK\r\nApi-Version: 1.61\r\nContent-Length: 2\r\n\r\nOK");
  fake.answer("/v1.52/events",
              json_response(400, "Bad Request",
                            R"({"message":"client version 1.52 is too old. Minimum supported API )"
                            R"(version is 1.60, please upgrade your client to a newer version"})"));
  DockerEvents events = DockerEvents::open(fake.path());
  EXPECT_EQ(events.api_version(), "");
  // As DockerClient, with the same code: the refusal is checked with the daemon once more.
  const std::vector<std::string> targets = fake.targets();
  ASSERT_EQ(targets.size(), 4u);
  EXPECT_EQ(targets[1].rfind("/v1.52/events?filters=", 0), 0u) << targets[1];
  EXPECT_EQ(targets[2], "/_ping");
  EXPECT_EQ(targets[3].rfind("/events?filters=", 0), 0u) << targets[3];
}

TEST_F(DockerEventsTest, DaemonErrorIsOneLine) {
  // As dockerd 20.10 answers a filter it cannot parse; the message is made one line.
  fake.answer("/v1.41/events",
              json_response(500, "Internal Server Error",
                            R"({"message":"invalid character 'b'\nlooking for beginning"})"));
  expect_open_error(EPROTO,
                    ": GET /v1.41/events: HTTP 500: invalid character 'b'?looking for beginning");
}

TEST_F(DockerEventsTest, ErrorBodyWithoutLength) {
  fake.answer("/v1.41/events", "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\npage not found");
  expect_open_error(EPROTO, ": GET /v1.41/events: HTTP 404: page not found");
}

TEST_F(DockerEventsTest, RefusedPing) {
  fake.answer("/_ping",
              json_response(500, "Internal Server Error", R"({"message":"shutting down"})"));
  expect_open_error(EPROTO, ": GET /_ping: HTTP 500: shutting down");
  EXPECT_EQ(fake.targets(), std::vector<std::string>{"/_ping"});
}

TEST_F(DockerEventsTest, ResponseNotChunked) {
  fake.answer("/v1.41/events", json_response(200, "OK", "{}\n"));
  expect_open_error(EPROTO, ": GET /v1.41/events: the response is not chunked");
}

TEST_F(DockerEventsTest, NotHttp) {
  fake.answer("/_ping", "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  expect_open_error(EPROTO, ": GET /_ping: not an HTTP/1.x response");
  fake.answer("/_ping", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n");
  expect_open_error(EPROTO, ": GET /_ping: not an HTTP/1.x response");
  fake.answer("/_ping", "HTTP/1.1 2000 OK\r\n\r\n");
  expect_open_error(EPROTO, ": GET /_ping: not an HTTP/1.x response");
}

TEST_F(DockerEventsTest, ClosedBeforeTheHead) {
  fake.answer("/_ping", "HTTP/1.1 200 OK\r\n");  // and the connection is closed
  expect_open_error(EPROTO, ": GET /_ping: connection closed before the response head");
}

TEST_F(DockerEventsTest, OversizedHead) {
  fake.answer("/_ping", "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70000, 'x') + "\r\n\r\nOK");
  expect_open_error(EMSGSIZE, ": GET /_ping: response head larger than 64 KiB");
}

TEST_F(DockerEventsTest, TimesOut) {
  fake.answer("/v1.41/events", "");  // never answers
  const auto start = std::chrono::steady_clock::now();
  expect_open_error(ETIMEDOUT, ": GET /v1.41/events: no answer within 2000 ms");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(DockerEvents::kOpenTimeoutMs - 50));
  EXPECT_LT(elapsed, std::chrono::milliseconds(DockerEvents::kOpenTimeoutMs + 500));
}

TEST(DockerEventsTransportTest, PathTooLong) {
  const std::string path = "/tmp/" + std::string(200, 'x') + ".sock";
  try {
    DockerEvents::open(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), ENAMETOOLONG);
    EXPECT_EQ(e.object(), path);
  }
}

}  // namespace
}  // namespace psnic
