// ldns_ptr.h — the one owner of every ldns allocation in dns/ (and its tests).
//
// Each ldns handle lives in a std::unique_ptr whose deleter is the matching
// ldns free; nothing in dns/ calls ldns_*_free or free() by hand. Which
// deleter is which matters:
//
//   Pkt, Rr, Rdf   ldns_pkt_free, ldns_rr_free, ldns_rdf_deep_free
//   List           ldns_rr_list_deep_free: the list and the records in it
//   RefList        ldns_rr_list_free: the list only; its records belong to
//                  someone else (a view on another list's records)
//   ResolverPtr    ldns_resolver_deep_free (its name servers too)
//   KeyList        ldns_key_list_free (tests: the signing keys)
//   Buffer         ldns_buffer_free
//   PKey           EVP_PKEY_free: a DNSKEY's public key as OpenSSL's
//   CBuffer        free(): text and wire buffers ldns hands back malloc'd
//                  (ldns_rdf2str, ldns_rr_type2str, ldns_pkt2wire)
//
// Plus the two conversions every caller needs: the text ldns returns, and a
// packet's wire form, each freed before they return.
#pragma once

#include <algorithm>
#include <compare>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// After the standard headers: ldns's macros (bool, false) confuse libstdc++,
// so every standard header dns/ uses is included above, before ldns.
#include <ldns/ldns.h>
#include <openssl/evp.h>

namespace danerelay::dns {

struct LdnsFree {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
    void operator()(ldns_rr* r) const { ldns_rr_free(r); }
    void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
    void operator()(ldns_rr_list* l) const { ldns_rr_list_deep_free(l); }
    void operator()(ldns_resolver* r) const { ldns_resolver_deep_free(r); }
    void operator()(ldns_key_list* k) const { ldns_key_list_free(k); }
    void operator()(ldns_buffer* b) const { ldns_buffer_free(b); }
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct LdnsListOnlyFree {
    void operator()(ldns_rr_list* l) const { ldns_rr_list_free(l); }
};
struct CFree {
    void operator()(void* p) const { std::free(p); }
};

using Pkt = std::unique_ptr<ldns_pkt, LdnsFree>;
using Rr = std::unique_ptr<ldns_rr, LdnsFree>;
using Rdf = std::unique_ptr<ldns_rdf, LdnsFree>;
using List = std::unique_ptr<ldns_rr_list, LdnsFree>;
using RefList = std::unique_ptr<ldns_rr_list, LdnsListOnlyFree>;
using ResolverPtr = std::unique_ptr<ldns_resolver, LdnsFree>;
using KeyList = std::unique_ptr<ldns_key_list, LdnsFree>;
using CBuffer = std::unique_ptr<char, CFree>;
using Buffer = std::unique_ptr<ldns_buffer, LdnsFree>;
using PKey = std::unique_ptr<EVP_PKEY, LdnsFree>;

inline List newList() {
    return List(ldns_rr_list_new());
}
inline RefList newRefList() {
    return RefList(ldns_rr_list_new());
}

// The text ldns malloc'd (ldns_rdf2str and friends), or `fallback` for null.
inline std::string takeString(char* s, const std::string& fallback = "") {
    CBuffer owned(s);
    return owned ? std::string(owned.get()) : fallback;
}

// A packet in wire form; false if ldns cannot encode it.
inline bool toWire(const ldns_pkt* p, std::vector<uint8_t>* out) {
    uint8_t* wire = nullptr;
    size_t size = 0;
    ldns_status st = ldns_pkt2wire(&wire, p, &size);
    std::unique_ptr<uint8_t, CFree> owned(wire);
    if (st != LDNS_STATUS_OK || !wire) return false;
    out->assign(wire, wire + size);
    return true;
}

}  // namespace danerelay::dns
