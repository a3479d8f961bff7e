// What the endpoint answers, apart from how it is served: a request's path and method routed to
// /metrics (gzipped when the client accepts it), the landing page or /healthz, and the reply
// built. The libmicrohttpd daemon (server.cpp) hands every request here and sends back the reply.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/server.h"

namespace psnic {

// A response before it is handed to the HTTP library.
struct Reply {
  unsigned status = 200;
  const char* content_type = "text/plain; charset=utf-8";
  std::string body;
  // Besides Content-Type, and Content-Length, which the library adds.
  std::vector<std::pair<const char*, std::string>> headers;
};

// Whether an Accept-Encoding value (RFC 9110 12.5.3) accepts gzip: "gzip" or "x-gzip" listed,
// without q=0.
bool accepts_gzip(std::string_view header);

// The endpoint's pages, as MetricsServer documents them. Called from the server's one thread;
// the collectables are thread-safe anyway.
class EndpointPages {
 public:
  EndpointPages(std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                EndpointOptions options);

  // The reply to `method` on `path`; `accept_encoding` is the request's Accept-Encoding header,
  // null when it has none. A failed scrape is a 500 reply, not an exception.
  Reply answer(std::string_view path, std::string_view method, const char* accept_encoding) const;

 private:
  Reply metrics(bool gzip_accepted) const;
  Reply landing() const;
  Reply health() const;

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  EndpointOptions options_;
};

}  // namespace psnic
