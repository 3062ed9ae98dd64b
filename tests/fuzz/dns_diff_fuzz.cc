// dns_diff_fuzz.cc — differential fuzz target for "one reader per byte":
// for any packet, every record of a Secure Answer (the MX, address and TLSA
// records, and each link of the CNAME chain) must belong to an RRset of that
// packet whose RRSIG verifies with one of the lab's DNSKEYs. The check here
// is independent of dns/: it groups the packet's records itself and calls
// ldns's signature check directly. A record that reached a Secure Answer
// without a signature over it (a CNAME beside data, a class-CH record, a
// record on another owner) traps.
//
// The validator runs on the recorded lab chain (tests/dns/lab_answers.h) at
// the recording time, so mutations of the recorded answers (the seed corpus,
// tests/fuzz/corpus/dns_diff/) keep their signatures valid and reach Secure.
// Built with -fsanitize=fuzzer it is a libFuzzer target; otherwise main()
// replays a corpus directory (CTest fuzz.dns_diff_corpus).
#include <cstddef>
#include <cstdint>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "dns/answer.h"
#include "dns/ldns_ptr.h"
#include "dns/response.h"
#include "dns/validator.h"
#include "tests/dns/lab_answers.h"

using namespace danerelay::dns;

namespace {

const auto& lab() {
    return danerelay::dns::testing::labAnswers();
}

// Every DNSKEY the lab's zones have (from the recorded DNSKEY answers).
ldns_rr_list* labKeys() {
    static ldns_rr_list* keys = [] {
        ldns_rr_list* out = ldns_rr_list_new();
        for (const auto& [q, wire] : lab().answers) {
            if (q.second != 48) continue;
            ldns_pkt* raw = nullptr;
            ldns_status st = ldns_wire2pkt(&raw, wire.data(), wire.size());
            Pkt p(raw);
            if (st != LDNS_STATUS_OK) continue;
            const ldns_rr_list* an = ldns_pkt_answer(p.get());
            for (size_t i = 0; an && i < ldns_rr_list_rr_count(an); ++i) {
                const ldns_rr* rr = ldns_rr_list_rr(an, i);
                if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_DNSKEY)
                    ldns_rr_list_push_rr(out, ldns_rr_clone(rr));
            }
        }
        return out;
    }();
    return keys;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string bareName(const ldns_rdf* d) {
    std::string out = lower(takeString(ldns_rdf2str(d)));
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

// (owner, type, rdata as text) of every record in a verified RRset.
using Fact = std::tuple<std::string, uint16_t, std::string>;

std::set<Fact> verifiedFacts(const uint8_t* data, size_t size) {
    std::set<Fact> facts;
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_wire2pkt(&raw, data, size);
    Pkt p(raw);
    if (st != LDNS_STATUS_OK) return facts;
    const ldns_rr_list* an = ldns_pkt_answer(p.get());
    size_t n = an ? ldns_rr_list_rr_count(an) : 0;
    for (size_t i = 0; i < n && i < 64; ++i) {
        const ldns_rr* sig = ldns_rr_list_rr(an, i);
        if (ldns_rr_get_type(sig) != LDNS_RR_TYPE_RRSIG || ldns_rr_rd_count(sig) != 9) continue;
        ldns_rr_type covered = ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(sig));
        // The RRset it claims: same owner, class IN, that type.
        List set = newList();
        for (size_t j = 0; j < n; ++j) {
            const ldns_rr* rr = ldns_rr_list_rr(an, j);
            if (ldns_rr_get_type(rr) == covered && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
                ldns_dname_compare(ldns_rr_owner(rr), ldns_rr_owner(sig)) == 0)
                ldns_rr_list_push_rr(set.get(), ldns_rr_clone(rr));
        }
        if (ldns_rr_list_rr_count(set.get()) > 0 &&
            ldns_verify_rrsig_keylist_time(set.get(), sig, labKeys(),
                                           static_cast<time_t>(lab().now),
                                           nullptr) == LDNS_STATUS_OK) {
            for (size_t j = 0; j < ldns_rr_list_rr_count(set.get()); ++j) {
                const ldns_rr* rr = ldns_rr_list_rr(set.get(), j);
                std::string rdata;
                for (size_t k = 0; k < ldns_rr_rd_count(rr); ++k)
                    rdata += std::string(k ? " " : "") +
                             lower(takeString(ldns_rdf2str(ldns_rr_rdf(rr, k))));
                facts.emplace(bareName(ldns_rr_owner(rr)), static_cast<uint16_t>(covered), rdata);
            }
        }
    }
    return facts;
}

std::string ownQuestion(const uint8_t* data, size_t size) {
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_wire2pkt(&raw, data, size);
    Pkt pkt(raw);
    if (st != LDNS_STATUS_OK) return "secure.test";
    std::string name = "secure.test";
    const ldns_rr_list* q = ldns_pkt_question(pkt.get());
    if (q && ldns_rr_list_rr_count(q) > 0) name = bareName(ldns_rr_owner(ldns_rr_list_rr(q, 0)));
    return name.empty() ? "secure.test" : name;
}

size_t checked = 0;  // secure answers whose records were checked

std::string hex(const std::vector<uint8_t>& v) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (uint8_t b : v) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::shared_ptr<Validator> validator = [] {
        auto v = Validator::create(
            lab().anchor, "lab anchor",
            [](const std::string& name, uint16_t type) -> danerelay::Result<std::vector<uint8_t>> {
                auto it = lab().answers.find({name, type});
                if (it == lab().answers.end()) return danerelay::Error::temporary("not recorded");
                return it->second;
            });
        return v ? *v : nullptr;
    }();
    if (!validator) __builtin_trap();
    std::string qname = ownQuestion(data, size);
    std::set<Fact> facts;
    bool factsKnown = false;
    for (uint16_t type : {kTypeMx, kTypeTlsa, kTypeA, kTypeAaaa}) {
        auto response = readResponse(data, size, qname, type);
        Answer a = validator->answer(*response, lab().now);
        if (a.security != Security::Secure) continue;
        if (a.outcome == Outcome::ServFail || a.outcome == Outcome::Error) __builtin_trap();
        if (a.outcome != Outcome::Data) {
            // A secure denial carries no records at all.
            if (!a.mx.empty() || !a.addresses.empty() || !a.tlsa.empty()) __builtin_trap();
            continue;
        }
        ++checked;
        if (!factsKnown) {
            facts = verifiedFacts(data, size);
            factsKnown = true;
        }
        auto has = [&](const std::string& owner, uint16_t t, const std::string& rdata) {
            return facts.count({owner, t, rdata}) > 0;
        };
        // The chain, link by link.
        std::string current = a.qname;
        for (size_t i = 0; i < a.cnameChain.size(); ++i) {
            std::string next = i + 1 < a.cnameChain.size() ? a.cnameChain[i + 1] : a.canonicalName;
            if (!has(a.cnameChain[i], kTypeCname, next + ".")) __builtin_trap();
        }
        const std::string& owner = a.canonicalName;
        for (const auto& m : a.mx)
            if (!has(owner, kTypeMx, std::to_string(m.preference) + " " + m.host + "."))
                __builtin_trap();
        for (const auto& addr : a.addresses)
            if (!has(owner, type, lower(addr))) __builtin_trap();
        for (const auto& t : a.tlsa)
            if (!has(owner, kTypeTlsa,
                     std::to_string(t.usage) + " " + std::to_string(t.selector) + " " +
                         std::to_string(t.mtype) + " " + hex(t.data)))
                __builtin_trap();
    }
    return 0;
}

#ifndef DANERELAY_LIBFUZZER
#include <cstdio>
// The replay says how many secure answers it checked: zero would mean the
// corpus never reaches the property (a vacuous run), and fails.
#define main corpusMainEntry
#include "tests/fuzz/corpus_main.h"
#undef main
int main(int argc, char** argv) {
    int rc = corpusMainEntry(argc, argv);
    std::printf("%zu secure answers checked record by record\n", checked);
    return rc != 0 || checked == 0 ? 1 : 0;
}
#endif
