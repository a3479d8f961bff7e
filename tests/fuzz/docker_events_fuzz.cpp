// The body of GET /events (EventStreamParser), as libcurl hands it over once it has removed the
// chunked transfer coding: newline-ended JSON messages whose boundaries have nothing to do with
// those of the reads. The same bytes must give the same events, and fail the same way, whether
// they come in one read, byte by byte, or split anywhere (partial reads, empty reads, a message
// across many).
//
// Input: the stream, then 8 bytes that choose where the reads are cut (FuzzedDataProvider takes
// integers from the end).
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "fuzz_check.h"
#include "resolver/cgroup.h"
#include "runtime/docker_events.h"

namespace {

struct Outcome {
  std::vector<psnic::ContainerEvent> events;
  std::optional<std::string> error;  // the message of the Error that ended the stream
};

// Feeds `reads` in order, then ends the stream.
Outcome parse(const std::vector<std::string_view>& reads) {
  psnic::EventStreamParser parser("/run/docker.sock");
  Outcome outcome;
  try {
    for (std::string_view read : reads)
      for (psnic::ContainerEvent& event : parser.feed(read)) outcome.events.push_back(event);
    parser.end();
  } catch (const psnic::Error& e) {
    PSNIC_FUZZ_CHECK(e.errnum() == EBADMSG);
    outcome.error = e.what();
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  uint64_t cuts = provider.ConsumeIntegral<uint64_t>();
  const std::string stream = provider.ConsumeRemainingBytesAsString();

  // Byte by byte, every event is handed over as soon as its newline is read.
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(std::string_view(stream).substr(i, 1));
  const Outcome reference = parse(bytes);
  for (const psnic::ContainerEvent& event : reference.events) {
    PSNIC_FUZZ_CHECK(!event.action.empty());
    PSNIC_FUZZ_CHECK(psnic::is_full_container_id(event.id));
  }

  // Reads of 0 to 15 bytes, four bits of `cuts` each, then (bits spent) one byte at a time.
  std::vector<std::string_view> reads;
  std::string_view rest = stream;
  for (int i = 0; !rest.empty(); ++i) {
    const size_t n = i < 16 ? static_cast<size_t>(cuts & 0xf) : 1;
    cuts >>= 4;
    reads.push_back(rest.substr(0, n));
    rest.remove_prefix(std::min(n, rest.size()));
  }
  for (const Outcome& outcome : {parse({stream}), parse(reads)}) {
    PSNIC_FUZZ_CHECK(outcome.error == reference.error);
    if (!reference.error) {
      PSNIC_FUZZ_CHECK(outcome.events == reference.events);
    } else {
      // A read that ends in an error hands over nothing (the caller resubscribes and lists the
      // running containers): what came before is a prefix of the events.
      PSNIC_FUZZ_CHECK(outcome.events.size() <= reference.events.size());
      PSNIC_FUZZ_CHECK(
          std::equal(outcome.events.begin(), outcome.events.end(), reference.events.begin()));
    }
  }
  return 0;
}
