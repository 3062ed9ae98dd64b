// dns_fuzz.cc — fuzz target for DNS response parsing: parseResponse() for each
// query type we ask, with and without a trusted AD bit, and questionMatches();
// and the DNSSEC validator, whose key fetches get the same hostile bytes back.
// Built with -fsanitize=fuzzer it is a libFuzzer target; otherwise main()
// (shared with smtp_fuzz, see corpus_main.h) replays a corpus directory.
#include <cstddef>
#include <cstdint>

#include <string>

#include "dns/answer.h"
#include "dns/ldns_ptr.h"
#include "dns/validator.h"
#include "tests/dns/lab_answers.h"

using namespace danerelay::dns;

// The packet's own question name, so that mutated packets get past the
// question check and reach the record parsing.
static std::string ownQuestion(const uint8_t* data, size_t size) {
    ldns_pkt* raw = nullptr;
    ldns_status st = ldns_wire2pkt(&raw, data, size);
    Pkt pkt(raw);
    if (st != LDNS_STATUS_OK) return "example.org";
    std::string name = "example.org";
    const ldns_rr_list* q = ldns_pkt_question(pkt.get());
    if (q && ldns_rr_list_rr_count(q) > 0) {
        CBuffer s(ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(q, 0))));
        if (s) normalizeName(s.get(), &name);
    }
    return name;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string qname = ownQuestion(data, size);
    for (uint16_t type : {kTypeMx, kTypeA, kTypeAaaa, kTypeTlsa, kTypeCname}) {
        for (bool trusted : {false, true}) {
            Answer a = parseResponse(data, size, qname, type, trusted);
            // Invariants: failures are never secure; a bounded result.
            if ((a.outcome == Outcome::Error || a.outcome == Outcome::ServFail) &&
                a.security == Security::Secure) {
                __builtin_trap();
            }
            if (a.mx.size() + a.addresses.size() + a.tlsa.size() > kMaxRecords) __builtin_trap();
            if (a.cnameChain.size() > kMaxCnameChain) __builtin_trap();
            (void)tlsaStatus(a);
        }
    }
    (void)questionMatches(data, size, "example.org", kTypeMx);

    // The validator, with the lab's anchor and its recorded chain of keys
    // (tests/dns/lab_answers.h), on the fuzzed packet as the answer.
    static std::shared_ptr<Validator> validator = [] {
        const auto& lab = danerelay::dns::testing::labAnswers();
        auto v =
            Validator::create(lab.anchor, "lab anchor",
                              [&lab](const std::string& name,
                                     uint16_t type) -> danerelay::Result<std::vector<uint8_t>> {
                                  auto it = lab.answers.find({name, type});
                                  if (it == lab.answers.end())
                                      return danerelay::Error::temporary("not recorded");
                                  return it->second;
                              });
        return v ? *v : nullptr;
    }();
    if (!validator) __builtin_trap();
    for (uint16_t type : {kTypeMx, kTypeTlsa, kTypeA}) {
        Verdict v =
            validator->validate(data, size, qname, type, danerelay::dns::testing::labAnswers().now);
        if (v.security != Security::Secure && v.reason.empty()) __builtin_trap();  // always a why
        // A Bogus verdict names the check that failed; nothing else names one.
        if ((v.security == Security::Bogus) != (v.bogus != BogusReason::None)) __builtin_trap();
    }
    return 0;
}

#ifndef DANERELAY_LIBFUZZER
#include "tests/fuzz/corpus_main.h"
#endif
