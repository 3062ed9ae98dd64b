#include "relay/runtime/metrics_server.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <ldns/ldns.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include "common/version.h"

namespace danerelay::relay {

namespace {
constexpr size_t kMaxHeaderBytes = 8192;
constexpr int kTimeoutSeconds = 10;
}  // namespace

MetricsServer::MetricsServer(event_base* base, const metrics::Registry& registry)
    : registry_(registry), http_(evhttp_new(base)) {
    evhttp_set_max_headers_size(http_, kMaxHeaderBytes);
    evhttp_set_max_body_size(http_, 0);
    evhttp_set_timeout(http_, kTimeoutSeconds);
    evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http_, &MetricsServer::onRequest, this);
}

MetricsServer::~MetricsServer() {
    if (http_) evhttp_free(http_);
}

Status MetricsServer::serve(UniqueFd listener) {
    if (!evhttp_accept_socket_with_handle(http_, listener.get())) {
        return Error::internal("metrics.listen: cannot serve on the socket");
    }
    listener.release();  // evhttp owns it now (closed by evhttp_free)
    return okStatus();
}

void MetricsServer::onRequest(evhttp_request* req, void* self) {
    auto* s = static_cast<MetricsServer*>(self);
    const char* path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path || std::strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is here");
        return;
    }
    if (s->beforeScrape_) s->beforeScrape_();
    std::string text = s->registry_.render();
    evbuffer* body = evbuffer_new();
    evbuffer_add(body, text.data(), text.size());
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

namespace {
double openFds() {
    double n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
        --n;  // the directory stream's own descriptor
    }
    return n;
}

double maxFds() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return -1;
    return static_cast<double>(rl.rlim_cur);
}

double residentBytes() {
    std::ifstream in("/proc/self/statm");
    long pages = 0, resident = 0;
    in >> pages >> resident;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double cpuSeconds() {
    std::ifstream in("/proc/self/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may hold spaces) in parentheses.
    auto close = all.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(all.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stod(field);
        if (i == 15) stime = std::stod(field);
    }
    return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}
}  // namespace

void registerProcessMetrics(metrics::Registry& r) {
    double started = static_cast<double>(std::time(nullptr));
    r.gaugeFn("process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.",
              [started] { return started; });
    r.counterFn("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                cpuSeconds);
    r.gaugeFn("process_resident_memory_bytes", "Resident memory size in bytes.", residentBytes);
    r.gaugeFn("process_open_fds", "Number of open file descriptors.", openFds);
    r.gaugeFn("process_max_fds", "Maximum number of open file descriptors.", maxFds);
    r.gauge("danerelay_build_info", "Versions of danerelay and the libraries it runs on (value 1).",
            {"version", "gnutls", "ldns", "libevent"})
        .with({kVersion, gnutls_check_version(nullptr), ldns_version(), event_get_version()})
        .set(1);
}

}  // namespace danerelay::relay
