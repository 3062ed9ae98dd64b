#include "dns/key_fetch.h"

#include <sys/random.h>

#include <algorithm>
#include <atomic>

namespace danerelay::dns {

Result<Pkt> fetchChecked(const Validator::Fetch& fetch, const ValidatorLimits& limits,
                         const std::string& name, uint16_t type, ValidationCtx& ctx) {
    if (++ctx.fetches > limits.maxFetches)
        return Error::permanent("more than " + std::to_string(limits.maxFetches) +
                                " key fetches for one answer");
    if (std::chrono::steady_clock::now() > ctx.deadline)
        return Error::temporary("out of time (" + std::to_string(limits.maxValidationMs) +
                                " ms) fetching keys for one answer");
    auto wire = fetch(name, type);
    if (!wire) return wire.error();
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_wire2pkt(&raw, wire->data(), wire->size());
    Pkt p(raw);
    if (st != LDNS_STATUS_OK || !p)
        return Error::temporary("malformed response to " + name + " " + typeName(type));
    const ldns_rr_list* q = ldns_pkt_question(p.get());
    if (!q || ldns_rr_list_rr_count(q) != 1 ||
        nameOf(ldns_rr_owner(ldns_rr_list_rr(q, 0))) != name ||
        typeOf(ldns_rr_list_rr(q, 0)) != type)
        return Error::temporary("response to " + name + " " + typeName(type) +
                                " is for another question");
    auto rc = ldns_pkt_get_rcode(p.get());
    if (rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN)
        return Error::temporary(name + " " + typeName(type) + ": rcode " +
                                std::to_string(static_cast<int>(rc)));
    return p;
}

namespace {

// An ldns resolver for one server: recursive, DO and CD, TCP fallback, one
// try with the given timeout.
Result<ResolverPtr> resolverFor(const std::string& host, uint16_t port, unsigned timeoutMs) {
    ResolverPtr res(ldns_resolver_new());
    if (!res) return Error::temporary("out of memory");
    Rdf address(ldns_rdf_new_frm_str(
        host.find(':') != std::string::npos ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, host.c_str()));
    if (!address) return Error::permanent("bad resolver address " + host);
    ldns_resolver_push_nameserver(res.get(), address.get());
    ldns_resolver_set_port(res.get(), port);
    ldns_resolver_set_recursive(res.get(), true);
    ldns_resolver_set_dnssec(res.get(), true);
    ldns_resolver_set_dnssec_cd(res.get(), true);
    ldns_resolver_set_edns_udp_size(res.get(), kEdnsUdpSize);
    ldns_resolver_set_fallback(res.get(), true);
    ldns_resolver_set_retry(res.get(), 1);
    ldns_resolver_set_timeout(res.get(), {static_cast<time_t>(timeoutMs / 1000),
                                          static_cast<suseconds_t>((timeoutMs % 1000) * 1000)});
    return res;
}

// One query to one server: UDP, TCP when truncated, our own random ID
// checked in the reply (a blind spoofer must guess it as well as the port;
// what it could inject would fail the signature checks anyway, but costs a
// defer).
Result<std::vector<uint8_t>> fetchOnce(const std::string& host, uint16_t port,
                                       const ldns_rdf* qname, const std::string& name,
                                       uint16_t type, unsigned timeoutMs) {
    auto res = resolverFor(host, port, timeoutMs);
    if (!res) return res.error();
    uint16_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id) return Error::temporary("no randomness");
    Pkt query(ldns_pkt_query_new(ldns_rdf_clone(qname), static_cast<ldns_rr_type>(type),
                                 LDNS_RR_CLASS_IN, LDNS_RD | LDNS_CD));
    if (!query) return Error::temporary("out of memory");
    ldns_pkt_set_id(query.get(), id);
    ldns_pkt_set_edns_udp_size(query.get(), kEdnsUdpSize);
    ldns_pkt_set_edns_do(query.get(), true);
    std::string what = name + " " + typeName(type) + " from " + host + ":" + std::to_string(port);
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_resolver_send_pkt(&raw, res->get(), query.get());
    Pkt p(raw);
    if (st != LDNS_STATUS_OK || !p) return Error::temporary(what + ": " + statusText(st));
    if (ldns_pkt_id(p.get()) != ldns_pkt_id(query.get()) || !ldns_pkt_qr(p.get()))
        return Error::temporary(what + ": a reply with another ID");
    // A SERVFAIL is one resolver's bad moment (an upstream timeout under
    // load), not an answer: the next attempt may get one.
    if (ldns_pkt_get_rcode(p.get()) == LDNS_RCODE_SERVFAIL)
        return Error::temporary(what + ": SERVFAIL");
    std::vector<uint8_t> out;
    if (!toWire(p.get(), &out)) return Error::temporary("cannot encode the response");
    return out;
}

}  // namespace

Validator::Fetch blockingFetcher(std::vector<std::pair<std::string, uint16_t>> servers,
                                 unsigned timeoutMs, unsigned attempts) {
    // The server that answered last goes first: a dead resolver costs one
    // timeout, not one per key fetch.
    auto good = std::make_shared<std::atomic<size_t>>(0);
    return [servers, timeoutMs, attempts, good](const std::string& name,
                                                uint16_t type) -> Result<std::vector<uint8_t>> {
        Rdf qname = dname(name);
        if (!qname) return Error::permanent("bad name " + name);
        if (servers.empty()) return Error::permanent("no resolvers configured");
        // Like the Resolver: `attempts` queries in all, the servers in turn.
        Result<std::vector<uint8_t>> last = Error::temporary("no attempt made");
        size_t first = good->load();
        for (unsigned i = 0; i < std::max(1u, attempts); ++i) {
            size_t k = (first + i) % servers.size();
            last =
                fetchOnce(servers[k].first, servers[k].second, qname.get(), name, type, timeoutMs);
            if (last) {
                good->store(k);
                return last;
            }
        }
        return last;
    };
}

}  // namespace danerelay::dns
