// test_zone.h — a tiny DNSSEC signer for unit tests: one zone whose DNSKEY
// is the trust anchor, records signed with ldns at a pinned time, NSEC3
// hashes, and response packets assembled exactly as an on-path attacker
// would assemble them from genuinely signed parts. Lets a test build any
// proof (or forgery) without a lab.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <ldns/ldns.h>

#include "dns/ldns_ptr.h"
#include "dns/response.h"
#include "dns/validator.h"

namespace danerelay::dns::testing {

class TestZone {
  public:
    static constexpr int64_t kNow = 1800000000;  // validate at this time

    // The zone's one key (KSK and ZSK at once) of `algorithm`, `bits` long
    // where the algorithm has a choice.
    explicit TestZone(std::string apex = "t.",
                      ldns_signing_algorithm algorithm = LDNS_SIGN_ECDSAP256SHA256,
                      uint16_t bits = 256)
        : apex_(std::move(apex)), algorithm_(algorithm), bits_(bits) {
        key_ = newKey();
        dnskey_ = ldns_key2rr(key_);
        ldns_rr_set_ttl(dnskey_, 3600);
        ldns_key_set_keytag(key_, ldns_calc_keytag(dnskey_));
        keys_ = ldns_key_list_new();
        ldns_key_list_push_key(keys_, key_);
    }
    ~TestZone() {
        ldns_key_list_free(keys_);  // frees key_ too
        ldns_rr_free(dnskey_);
    }
    TestZone(const TestZone&) = delete;
    TestZone& operator=(const TestZone&) = delete;

    const std::string& apex() const { return apex_; }
    std::string anchor() const { return text(dnskey_); }

    // The records (zone-file lines, one RRset) and their RRSIG. With
    // expandTo, the RRset is signed as the wildcard it is written as and
    // then placed at expandTo, as a server expands a wildcard.
    std::vector<std::string> sign(const std::vector<std::string>& lines,
                                  const std::string& expandTo = "") const {
        List set = newList();
        for (const auto& l : lines) ldns_rr_list_push_rr(set.get(), parse(l));
        List sigs(ldns_sign_public(set.get(), keys_));
        std::vector<std::string> out;
        for (size_t i = 0; i < ldns_rr_list_rr_count(set.get()); ++i)
            out.push_back(moved(ldns_rr_list_rr(set.get(), i), expandTo));
        for (size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs.get()); ++i)
            out.push_back(moved(ldns_rr_list_rr(sigs.get(), i), expandTo));
        return out;
    }

    // As sign(), with the RRSIG valid from `inception` to `expiration`
    // (the zone's other signatures keep theirs).
    std::vector<std::string> signValid(const std::vector<std::string>& lines, int64_t inception,
                                       int64_t expiration) const {
        ldns_key_set_inception(key_, static_cast<uint32_t>(inception));
        ldns_key_set_expiration(key_, static_cast<uint32_t>(expiration));
        auto out = sign(lines);
        ldns_key_set_inception(key_, static_cast<uint32_t>(kNow - 3600));
        ldns_key_set_expiration(key_, static_cast<uint32_t>(kNow + 86400));
        return out;
    }

    // The records signed by another key of the same algorithm that claims
    // this zone's key tag: an RRSIG with the right signer, algorithm and key
    // tag that this zone's DNSKEY did not make. Empty if no key was made.
    std::vector<std::string> signWithImpostor(const std::vector<std::string>& lines) const {
        ldns_key* impostor = newKey();
        if (!impostor) return {};
        ldns_key_set_keytag(impostor, ldns_calc_keytag(dnskey_));
        KeyList keys(ldns_key_list_new());
        ldns_key_list_push_key(keys.get(), impostor);  // freed with the list
        List set = newList();
        for (const auto& l : lines) ldns_rr_list_push_rr(set.get(), parse(l));
        List sigs(ldns_sign_public(set.get(), keys.get()));
        std::vector<std::string> out;
        for (size_t i = 0; i < ldns_rr_list_rr_count(set.get()); ++i)
            out.push_back(text(ldns_rr_list_rr(set.get(), i)));
        for (size_t i = 0; sigs && i < ldns_rr_list_rr_count(sigs.get()); ++i)
            out.push_back(text(ldns_rr_list_rr(sigs.get(), i)));
        return out;
    }
    uint16_t keyTag() const { return ldns_calc_keytag(dnskey_); }

    // The NSEC3 hash label of name (algorithm 1, no iterations, no salt).
    static std::string hash(const std::string& name) {
        Rdf n(ldns_dname_new_frm_str(name.c_str()));
        Rdf h(ldns_nsec3_hash_name(n.get(), 1, 0, 0, nullptr));
        std::string out = takeString(ldns_rdf2str(h.get()));
        if (!out.empty() && out.back() == '.') out.pop_back();
        std::transform(out.begin(), out.end(), out.begin(), ::tolower);
        return out;
    }

    // The zone's NSEC3 chain over names (each with its types; "" = an empty
    // non-terminal), every record signed: zone-file lines.
    std::vector<std::string> nsec3Chain(
        std::vector<std::pair<std::string, std::string>> names) const {
        std::vector<std::pair<std::string, std::string>> hashed;
        for (auto& [n, types] : names) hashed.emplace_back(hash(n), types);
        std::sort(hashed.begin(), hashed.end());
        std::vector<std::string> out;
        for (size_t i = 0; i < hashed.size(); ++i) {
            const auto& next = hashed[(i + 1) % hashed.size()].first;
            std::string types = hashed[i].second;
            auto rrs = sign({hashed[i].first + "." + apex_ + " 300 IN NSEC3 1 0 0 - " + next +
                             (types.empty() ? "" : " " + types)});
            out.insert(out.end(), rrs.begin(), rrs.end());
        }
        return out;
    }

    // A response packet: QR, RD, RA, DO; the given sections.
    static std::vector<uint8_t> packet(const std::string& qname, const std::string& qtype,
                                       ldns_pkt_rcode rcode, const std::vector<std::string>& answer,
                                       const std::vector<std::string>& authority = {},
                                       bool ad = false) {
        ldns_pkt* p = nullptr;
        ldns_pkt_query_new_frm_str(&p, qname.c_str(), ldns_get_rr_type_by_name(qtype.c_str()),
                                   LDNS_RR_CLASS_IN, LDNS_RD);
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_ra(p, true);
        ldns_pkt_set_ad(p, ad);
        ldns_pkt_set_rcode(p, static_cast<uint8_t>(rcode));
        ldns_pkt_set_edns_do(p, true);
        ldns_pkt_set_edns_udp_size(p, 1232);
        for (const auto& l : answer) ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, parse(l));
        for (const auto& l : authority) ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, parse(l));
        Pkt owned(p);
        std::vector<uint8_t> out;
        toWire(p, &out);
        return out;
    }

    // The answer to the validator's DNSKEY fetch for the apex.
    std::vector<uint8_t> dnskeyAnswer() const {
        return packet(apex_, "DNSKEY", LDNS_RCODE_NOERROR, sign({anchor()}));
    }

    static ldns_rr* parse(const std::string& line) {
        ldns_rr* rr = nullptr;
        if (ldns_rr_new_frm_str(&rr, line.c_str(), 300, nullptr, nullptr) != LDNS_STATUS_OK)
            abort();
        return rr;
    }

  private:
    ldns_key* newKey() const {
        ldns_key* k = ldns_key_new_frm_algorithm(algorithm_, bits_);
        if (!k) return nullptr;
        ldns_key_set_pubkey_owner(k, ldns_dname_new_frm_str(apex_.c_str()));
        ldns_key_set_flags(k, 257);
        ldns_key_set_inception(k, static_cast<uint32_t>(kNow - 3600));
        ldns_key_set_expiration(k, static_cast<uint32_t>(kNow + 86400));
        return k;
    }
    static std::string text(const ldns_rr* rr) {
        std::string out = takeString(ldns_rr2str(rr));
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
        return out;
    }
    static std::string moved(ldns_rr* rr, const std::string& owner) {
        if (!owner.empty()) {
            ldns_rdf* old = ldns_rr_owner(rr);
            ldns_rr_set_owner(rr, ldns_dname_new_frm_str(owner.c_str()));
            ldns_rdf_deep_free(old);
        }
        return text(rr);
    }

    std::string apex_;
    ldns_signing_algorithm algorithm_;
    uint16_t bits_;
    ldns_key* key_ = nullptr;
    ldns_key_list* keys_ = nullptr;
    ldns_rr* dnskey_ = nullptr;
};

// A fixture for tests of forged answers: a TestZone "t." and a Validator
// anchored at its DNSKEY, which it fetches from the zone and nothing else.
class SignedZoneTest : public ::testing::Test {
  protected:
    static inline const std::string kGoodTlsa =
        "3 1 1 1111111111111111111111111111111111111111111111111111111111111111";
    static inline const std::string kEvilTlsa =
        "3 1 1 0000000000000000000000000000000000000000000000000000000000000000";

    void SetUp() override {
        auto v = Validator::create(
            zone_.anchor(), "test anchor",
            [this](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
                if (name == "t." && type == 48) return zone_.dnskeyAnswer();
                return Error::temporary("no answer for " + name);
            });
        ASSERT_TRUE(v) << v.error().message;
        validator_ = *v;
    }
    // The verdict on a packet, as the resolver's validation worker gets it.
    Verdict check(const std::vector<uint8_t>& wire, const std::string& name, uint16_t type,
                  int64_t now = TestZone::kNow) {
        return validator_->validate(wire.data(), wire.size(), name, type, now);
    }
    // The Answer delivery would act on.
    Answer answer(const std::vector<uint8_t>& wire, const std::string& name, uint16_t type,
                  int64_t now = TestZone::kNow) {
        auto r = readResponse(wire.data(), wire.size(), name, type);
        return validator_->answer(*r, now);
    }
    static std::vector<std::string> plus(std::vector<std::string> a,
                                         const std::vector<std::string>& b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
    }

    TestZone zone_;
    std::shared_ptr<Validator> validator_;
};

}  // namespace danerelay::dns::testing
