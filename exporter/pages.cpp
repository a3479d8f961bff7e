#include "exporter/pages.h"

#include <microhttpd.h>
#include <zlib.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iterator>
#include <optional>

#include "exporter/exposition.h"
#include "exporter/metrics.h"

namespace psnic {
namespace {

constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kHtmlType = "text/html; charset=utf-8";
// gzip level for /metrics. The exposition repeats the same label names on every line, so the
// fastest level already shrinks it 11x: 1000 interfaces' 1.15 MB become 106 KB in 3.1 ms, where
// zlib's default level (6) takes 8.5 ms for 97 KB, on the scrape's one thread.
constexpr int kGzipLevel = 1;

Reply text_reply(unsigned status, std::string body) {
  Reply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string_view trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

// `text` gzipped (RFC 1952) in one pass, or nullopt when zlib fails: the scrape then goes plain.
std::optional<std::string> gzip(const std::string& text) {
  z_stream stream{};
  // windowBits 15 + 16 asks for the gzip header and trailer instead of zlib's; memLevel 8 is
  // zlib's default.
  if (deflateInit2(&stream, kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return std::nullopt;
  // deflateBound counts the gzip wrapper too: one deflate() call finishes.
  std::string out(deflateBound(&stream, text.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int status = deflate(&stream, Z_FINISH);
  const size_t produced = stream.total_out;
  deflateEnd(&stream);
  if (status != Z_STREAM_END) return std::nullopt;
  out.resize(produced);
  return out;
}

std::string html_escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string seconds_text(std::chrono::nanoseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", std::chrono::duration<double>(duration).count());
  return text;
}

}  // namespace

bool accepts_gzip(std::string_view header) {
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    const size_t semicolon = item.find(';');
    const std::string_view coding = trim(item.substr(0, semicolon));
    if (!equals_ignoring_case(coding, "gzip") && !equals_ignoring_case(coding, "x-gzip")) continue;
    if (semicolon == std::string_view::npos) return true;
    const std::string_view parameter = trim(item.substr(semicolon + 1));
    if (parameter.size() < 2 || !equals_ignoring_case(parameter.substr(0, 2), "q=")) return true;
    // A weight is at most three decimals: "0", "0.", "0.000" are all zero.
    return parameter.substr(2).find_first_not_of("0.") != std::string_view::npos;
  }
  return false;
}

EndpointPages::EndpointPages(std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                             EndpointOptions options)
    : collectables_(std::move(collectables)), options_(std::move(options)) {}

Reply EndpointPages::answer(std::string_view path, std::string_view method,
                            const char* accept_encoding) const {
  enum class Page { metrics, landing, health };
  Page page;
  if (path == "/metrics")
    page = Page::metrics;
  else if (path == "/")
    page = Page::landing;
  else if (path == "/healthz")
    page = Page::health;
  else
    return text_reply(MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");

  // HEAD is answered as GET; libmicrohttpd sends the headers, Content-Length included, and
  // leaves out the body.
  if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD) {
    Reply reply = text_reply(MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    reply.headers.emplace_back(MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    return reply;
  }
  switch (page) {
    case Page::metrics:
      return metrics(accept_encoding && accepts_gzip(accept_encoding));
    case Page::landing:
      return landing();
    case Page::health:
      return health();
  }
  return text_reply(MHD_HTTP_NOT_FOUND, "not found\n");
}

Reply EndpointPages::metrics(bool gzip_accepted) const {
  Reply reply;
  try {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& collectable : collectables_) {
      std::vector<prometheus::MetricFamily> more = collectable->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()),
                      std::make_move_iterator(more.end()));
    }
    reply.body = write_exposition(families);
  } catch (const std::exception& e) {
    return text_reply(MHD_HTTP_INTERNAL_SERVER_ERROR, std::string("scrape failed: ") + e.what());
  }
  reply.content_type = kExpositionType;
  reply.headers.emplace_back(MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
  if (gzip_accepted) {
    if (std::optional<std::string> zipped = gzip(reply.body)) {
      reply.body = std::move(*zipped);
      reply.headers.emplace_back(MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    }
  }
  return reply;
}

Reply EndpointPages::landing() const {
  const std::string mode = options_.attach_mode.empty() ? "unknown" : options_.attach_mode;
  const long long counted = options_.self ? std::llround(options_.self->attached_interfaces()) : 0;
  Reply reply;
  reply.content_type = kHtmlType;
  reply.body =
      "<!DOCTYPE html>\n"
      "<html lang=\"en\">\n"
      "<head><meta charset=\"utf-8\"><title>psnic-agent</title></head>\n"
      "<body>\n"
      "<h1>psnic-agent</h1>\n"
      "<p>Container network traffic, counted in the kernel by TC eBPF programs on each "
      "container's host interface.</p>\n"
      "<table>\n"
      "<tr><th>version</th><td id=\"version\">" +
      html_escaped(PSNIC_VERSION) +
      "</td></tr>\n"
      "<tr><th>attach mode</th><td id=\"mode\">" +
      html_escaped(mode) +
      "</td></tr>\n"
      "<tr><th>counted interfaces</th><td id=\"interfaces\">" +
      std::to_string(counted) +
      "</td></tr>\n"
      "</table>\n"
      "<ul>\n"
      "<li><a href=\"metrics\">/metrics</a>: the counters, for Prometheus</li>\n"
      "<li><a href=\"healthz\">/healthz</a>: whether the agent's loop is turning</li>\n"
      "</ul>\n"
      "</body>\n"
      "</html>\n";
  return reply;
}

Reply EndpointPages::health() const {
  if (!options_.heartbeat) return text_reply(MHD_HTTP_OK, "ok\n");
  const auto since = options_.now() - options_.heartbeat->last();
  if (since <= options_.health_timeout) return text_reply(MHD_HTTP_OK, "ok\n");
  return text_reply(MHD_HTTP_SERVICE_UNAVAILABLE,
                    "the agent's loop has not turned for " + seconds_text(since) + " s (limit " +
                        seconds_text(options_.health_timeout) + " s)\n");
}

}  // namespace psnic
