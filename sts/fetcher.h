// fetcher.h — fetching MTA-STS policies over HTTPS (RFC 8461 3.3) with
// libcurl's multi-socket interface on the libevent loop.
//
// One Fetcher per loop. fetch() starts a GET of
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt and returns at once; the
// callback runs later on the loop (posted through the Dispatcher, never
// from inside fetch() or inside a libcurl callback) with the body, or an
// error naming the URL and saying what was refused. libcurl only ever
// learns about sockets and timeouts through CURLMOPT_SOCKETFUNCTION and
// CURLMOPT_TIMERFUNCTION; the loop does the waiting. Name resolution is
// libcurl's (threaded) unless the caller pins addresses (FetchRequest::
// addresses, e.g. from dns/), which then are the only ones tried. Every
// fetch has a connection of its own, and a pin is not kept for later
// fetches (libcurl's shared DNS cache would keep it for ever).
//
// What it refuses (each one an error of kind Temporary, so a caller defers
// and keeps any cached policy): anything but https (CURLOPT_PROTOCOLS_STR),
// redirects (not followed: a 3xx is an error, as is any status but 200),
// a certificate that does not chain to the trust store (the system's, or
// FetchOptions::caFile) or is not valid for mta-sts.DOMAIN (SNI is sent),
// TLS below 1.2, a Content-Type other than text/plain (parameters such as
// charset allowed), a body over FetchOptions::maxBytes (aborted while
// reading, whatever Content-Length said), and going over the connect or
// total timeout. No cookies, no proxy from the environment (CURLOPT_PROXY
// ""), no .netrc, no HSTS or Alt-Svc cache, no content decoding (the body
// is read as sent), HTTP/1.1 only.
//
// The body is handed back unparsed: sts/cache.h's makeEntry() parses it.
// Callbacks run from the Dispatcher's queue, outside any Fetcher or libcurl
// frame, so a callback may start another fetch, cancel one, or destroy the
// Fetcher. Destroying it cancels every transfer without calling their
// callbacks, as does cancel(id): also one that has finished and whose
// callback is posted but has not run yet.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "common/dispatcher.h"
#include "common/event.h"
#include "common/result.h"
#include "sts/policy_text.h"

namespace danerelay::sts {

struct FetchOptions {
    // PEM CA bundle, used instead of the system's trust store; empty: the
    // system's (libcurl's default CA path, /etc/ssl/certs on Debian).
    std::string caFile;
    uint16_t port = 443;
    std::chrono::milliseconds connectTimeout{10'000};
    std::chrono::milliseconds totalTimeout{60'000};  // RFC 8461 3.3 suggests a minute
    size_t maxBytes = kMaxPolicyBytes;               // RFC 8461 3.3 suggests 64 KiB
};

struct FetchRequest {
    std::string domain;                  // the policy domain; the host is mta-sts.DOMAIN
    std::vector<std::string> addresses;  // IP literals to connect to; empty: resolve
};

// "https://mta-sts.DOMAIN[:PORT]/.well-known/mta-sts.txt"
std::string policyUrl(const std::string& domain, uint16_t port = 443);

// Is this Content-Type value text/plain (RFC 8461 3.3)? Case-insensitive,
// parameters allowed.
bool isTextPlain(std::string_view contentType);

class Fetcher {
  public:
    using Callback = std::function<void(Result<std::string> body)>;

    Fetcher(Dispatcher& dispatcher, FetchOptions options);
    ~Fetcher();
    Fetcher(const Fetcher&) = delete;
    Fetcher& operator=(const Fetcher&) = delete;

    // Starts a fetch; 0 if it could not even start (the callback is still
    // called, with the error). The id is for cancel().
    uint64_t fetch(const FetchRequest& request, Callback cb);
    // The callback of a cancelled fetch is never called.
    void cancel(uint64_t id);
    size_t inFlight() const { return transfers_.size(); }

  private:
    struct Transfer;
    struct CurlMultiDeleter {
        void operator()(CURLM* m) const { curl_multi_cleanup(m); }
    };

    static int onSocket(CURL* easy, curl_socket_t fd, int what, void* self, void* socketp);
    static int onTimer(CURLM* multi, long timeoutMs, void* self);
    void socketAction(int fd, int flags);
    void finishDone();
    void complete(Transfer& t, int curlCode);
    void fail(Callback cb, std::string error);
    void callBack(uint64_t id, Callback cb, Result<std::string> r);

    Dispatcher& dispatcher_;
    FetchOptions options_;
    std::unique_ptr<CURLM, CurlMultiDeleter> multi_;
    Event timer_;
    std::map<int, std::unique_ptr<Event>> sockets_;
    std::map<uint64_t, std::unique_ptr<Transfer>> transfers_;
    uint64_t nextId_ = 1;
    // Finished transfers whose callbacks are posted but have not run:
    // cancel() and the destructor take them out, and then they never run.
    std::shared_ptr<std::set<uint64_t>> posted_ = std::make_shared<std::set<uint64_t>>();
};

}  // namespace danerelay::sts
