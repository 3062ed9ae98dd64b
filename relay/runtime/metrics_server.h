// metrics_server.h — the Prometheus scrape endpoint (metrics.listen), on the
// event loop with libevent's evhttp.
//
// GET /metrics answers 200 with the registry's text exposition
// (Content-Type: text/plain; version=0.0.4); any other path 404, any other
// method 405. The listener is bound by the caller (at start-up, with the SMTP
// listeners, so a taken port is a start error) and handed over. Requests are
// bounded: headers 8 KiB, body 0 (a scrape has none), 10 s per connection.
// The number of connections is not (libevent 2.1's evhttp has no cap): the
// endpoint belongs on loopback or a management network, as the README says.
//
// registerProcessMetrics() adds the standard process_ metrics (start time,
// CPU seconds, resident memory, open and maximum file descriptors, from
// /proc/self) and danerelay_build_info with the versions of danerelay,
// GnuTLS, ldns and libevent.
#pragma once

#include <event2/http.h>

#include <functional>
#include <memory>

#include "common/result.h"
#include "common/unique_fd.h"
#include "relay/runtime/metrics.h"

namespace danerelay::relay {

class MetricsServer {
  public:
    MetricsServer(event_base* base, const metrics::Registry& registry);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Serve on a socket already bound and listening.
    Status serve(UniqueFd listener);
    // Run on the loop before each scrape is rendered (e.g. to ask for a
    // queue census, relay/runtime/metrics_queue.h); it must not block.
    void setBeforeScrape(std::function<void()> f) { beforeScrape_ = std::move(f); }

  private:
    static void onRequest(evhttp_request* req, void* self);
    const metrics::Registry& registry_;
    evhttp* http_;
    std::function<void()> beforeScrape_;
};

void registerProcessMetrics(metrics::Registry& r);

}  // namespace danerelay::relay
