// fake_dns.h — a scripted DNS server on 127.0.0.1 (UDP) for the outbound
// unit tests (destination_test, mta_sts_test): the real dns::Resolver asks
// it, trusted (its AD bit is believed): AD set means Secure, unset
// Insecure; a SERVFAIL whose data comes back with CD is Bogus, a SERVFAIL
// either way (or silence) Indeterminate.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dns/answer.h"
#include "dns/resolver.h"
#include "tests/dns/dns_test_util.h"

namespace danerelay::relay::testing {

using dns::testing::build;
using dns::testing::Reply;

// How the server answers one (name, type).
struct Zone {
    enum class Kind { Secure, Insecure, Bogus, Indeterminate, Silent };
    Kind kind = Kind::Secure;
    ldns_pkt_rcode rcode = LDNS_RCODE_NOERROR;
    std::vector<std::string> answer;  // RRs, presentation format
};

inline constexpr const char* kSoa = "example. 300 IN SOA ns.example. host.example. 1 2 3 4 300";

// UDP only: every answer here is small.
class FakeDns {
  public:
    // Keys: "name. TYPE" ("mx.example.org. A"); anything else: secure NXDOMAIN.
    explicit FakeDns(std::map<std::string, Zone> zones) : zones_(std::move(zones)) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        socklen_t len = sizeof sa;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~FakeDns() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }
    // A Resolver's options for this server: trusted, one attempt.
    dns::ResolverOptions resolverOptions(unsigned timeoutMs) const {
        dns::ResolverOptions o;
        dns::ServerAddress s;
        s.host = "127.0.0.1";
        s.port = port_;
        s.trusted = true;
        o.servers = {s};
        o.timeoutMs = timeoutMs;
        o.attempts = 1;
        return o;
    }
    // Every (name, type) asked, "name. TYPE".
    std::set<std::string> asked() const {
        std::lock_guard lock(mu_);
        return asked_;
    }

  private:
    static const char* typeName(uint16_t t) {
        switch (t) {
            case dns::kTypeA:
                return "A";
            case dns::kTypeAaaa:
                return "AAAA";
            case dns::kTypeMx:
                return "MX";
            case dns::kTypeTlsa:
                return "TLSA";
            case dns::kTypeTxt:
                return "TXT";
        }
        return "?";
    }

    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            uint8_t buf[4096];
            sockaddr_storage from{};
            socklen_t flen = sizeof from;
            ssize_t n =
                ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
            ldns_pkt* pkt = nullptr;
            if (n <= 0 || ldns_wire2pkt(&pkt, buf, static_cast<size_t>(n)) != LDNS_STATUS_OK) {
                continue;
            }
            const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
            char* owner = ldns_rdf2str(ldns_rr_owner(q));
            Reply r;
            r.id = ldns_pkt_id(pkt);
            r.qname = owner;
            r.qtype = static_cast<uint16_t>(ldns_rr_get_type(q));
            bool cd = ldns_pkt_cd(pkt);
            free(owner);
            ldns_pkt_free(pkt);
            for (auto& c : r.qname)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string key = r.qname + " " + typeName(r.qtype);
            {
                std::lock_guard lock(mu_);
                asked_.insert(key);
            }
            Zone z;
            if (auto it = zones_.find(key); it != zones_.end()) {
                z = it->second;
            } else {
                z.rcode = LDNS_RCODE_NXDOMAIN;
            }
            if (z.kind == Zone::Kind::Silent) continue;
            r.ad = z.kind == Zone::Kind::Secure;
            r.rcode = z.rcode;
            r.answer = z.answer;
            if (z.answer.empty()) r.authority = {kSoa};
            if (z.kind == Zone::Kind::Indeterminate ||
                (z.kind == Zone::Kind::Bogus && !cd)) {  // the resolver's SERVFAIL
                r.rcode = LDNS_RCODE_SERVFAIL;
                r.answer.clear();
                r.authority.clear();
                r.ad = false;
            }
            auto out = build(r);
            ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
        }
    }

    std::map<std::string, Zone> zones_;
    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::set<std::string> asked_;
    std::thread thread_;
};

inline Zone secure(std::vector<std::string> rrs) {
    return {Zone::Kind::Secure, LDNS_RCODE_NOERROR, std::move(rrs)};
}
inline Zone insecure(std::vector<std::string> rrs) {
    return {Zone::Kind::Insecure, LDNS_RCODE_NOERROR, std::move(rrs)};
}
inline Zone bogus(std::vector<std::string> rrs) {
    return {Zone::Kind::Bogus, LDNS_RCODE_NOERROR, std::move(rrs)};
}
inline Zone indeterminate() {
    return {Zone::Kind::Indeterminate, LDNS_RCODE_NOERROR, {}};
}
inline Zone secureNoData() {
    return {Zone::Kind::Secure, LDNS_RCODE_NOERROR, {}};
}
inline Zone secureNxDomain() {
    return {Zone::Kind::Secure, LDNS_RCODE_NXDOMAIN, {}};
}

// A name that never answers (the resolver times out: Indeterminate).
inline Zone silent() {
    return {Zone::Kind::Silent, LDNS_RCODE_NOERROR, {}};
}

}  // namespace danerelay::relay::testing
