// Unit tests for dns::Validator: the chain from the trust anchor (DS →
// DNSKEY, cached by TTL), positive answers, NSEC and NSEC3 denials with their
// signatures checked, wildcards, opt-out, and answers an attacker edited.
//
// The answers are the DNSSEC lab's own (NSD, zones signed with ldns-signzone
// and BIND's dnssec-signzone), recorded by fixtures/record_lab_answers.py
// with the time they were recorded; every test validates at that pinned
// time, so the file does not go stale when its signatures expire.
#include "dns/validator.h"

#include <gtest/gtest.h>

#include "dns/ldns_ptr.h"
#include "tests/dns/lab_answers.h"

#include <functional>
#include <map>

using namespace danerelay;
using namespace danerelay::dns;

namespace {

constexpr uint16_t kA = 1, kMx = 15, kAaaa = 28, kDs = 43, kDnskey = 48, kTlsa = 52;

const danerelay::dns::testing::LabAnswers& lab() {
    return danerelay::dns::testing::labAnswers();
}

// Edits a recorded answer as an on-path attacker would.
std::vector<uint8_t> edit(const std::vector<uint8_t>& wire,
                          const std::function<void(ldns_pkt*)>& f) {
    ldns_pkt* raw = nullptr;
    EXPECT_EQ(ldns_wire2pkt(&raw, wire.data(), wire.size()), LDNS_STATUS_OK);
    Pkt p(raw);
    f(p.get());
    std::vector<uint8_t> v;
    EXPECT_TRUE(toWire(p.get(), &v));
    return v;
}

// Keeps the records of a section for which keep(rr) holds.
void filter(ldns_pkt* p, ldns_pkt_section s, const std::function<bool(const ldns_rr*)>& keep) {
    ldns_rr_list* old = s == LDNS_SECTION_ANSWER ? ldns_pkt_answer(p) : ldns_pkt_authority(p);
    ldns_rr_list* kept = ldns_rr_list_new();
    for (size_t i = 0; i < ldns_rr_list_rr_count(old); ++i) {
        ldns_rr* rr = ldns_rr_list_rr(old, i);
        if (keep(rr)) {
            ldns_rr_list_push_rr(kept, ldns_rr_clone(rr));
        }
    }
    if (s == LDNS_SECTION_ANSWER) {
        ldns_pkt_set_answer(p, kept);
        ldns_pkt_set_ancount(p, static_cast<uint16_t>(ldns_rr_list_rr_count(kept)));
    } else {
        ldns_pkt_set_authority(p, kept);
        ldns_pkt_set_nscount(p, static_cast<uint16_t>(ldns_rr_list_rr_count(kept)));
    }
    ldns_rr_list_deep_free(old);
}

// Rewrites the question, as an attacker answering another question would.
void ask(ldns_pkt* p, const std::string& name, const std::string& type) {
    ldns_rr* q = nullptr;
    ASSERT_EQ(ldns_rr_new_question_frm_str(&q, (name + " IN " + type).c_str(), nullptr, nullptr),
              LDNS_STATUS_OK);
    ldns_rr_list* list = ldns_rr_list_new();
    ldns_rr_list_push_rr(list, q);
    ldns_rr_list_deep_free(ldns_pkt_question(p));
    ldns_pkt_set_question(p, list);
    ldns_pkt_set_qdcount(p, 1);
}

bool isType(const ldns_rr* rr, ldns_rr_type t) {
    return ldns_rr_get_type(rr) == t;
}

class ValidatorTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_FALSE(lab().answers.empty()) << "tests/dns/fixtures/lab-answers.txt not found";
        validator_ = make();
    }

    std::shared_ptr<Validator> make(ValidatorLimits limits = {}, std::string anchor = "") {
        auto v = Validator::create(
            anchor.empty() ? lab().anchor : anchor, "lab anchor",
            [this](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
                ++fetches_;
                fetched_.push_back(name + "/" + std::to_string(type));
                auto it = overrides_.find({name, type});
                if (it != overrides_.end()) return it->second;
                auto a = lab().answers.find({name, type});
                if (a == lab().answers.end())
                    return Error::temporary("no recorded answer for " + name);
                return a->second;
            },
            limits);
        EXPECT_TRUE(v) << (v ? "" : v.error().message);
        return v ? *v : nullptr;
    }

    Verdict check(const std::string& name, uint16_t type, int64_t at = 0) {
        return checkWire(lab().answers.at({name, type}), name, type, at);
    }
    Verdict checkWire(const std::vector<uint8_t>& wire, const std::string& name, uint16_t type,
                      int64_t at = 0) {
        return validator_->validate(wire.data(), wire.size(), name, type, at ? at : lab().now);
    }

    std::shared_ptr<Validator> validator_;
    unsigned fetches_ = 0;
    std::vector<std::string> fetched_;
    std::map<std::pair<std::string, uint16_t>, Result<std::vector<uint8_t>>> overrides_;
};

// ------------------------------------------------------------ positive answers

TEST_F(ValidatorTest, SignedAnswersAreSecureThroughTheChain) {
    for (auto [name, type] :
         std::vector<std::pair<std::string, uint16_t>>{{"secure.test.", kMx},
                                                       {"mx1.secure.test.", kA},
                                                       {"_25._tcp.mx1.secure.test.", kTlsa},
                                                       {"nsec3.test.", kMx},
                                                       {"_25._tcp.mx1.nsec3.test.", kTlsa},
                                                       {"optout.test.", kMx}}) {
        Verdict v = check(name, type);
        EXPECT_EQ(v.security, Security::Secure) << name << ": " << v.reason;
    }
}

TEST_F(ValidatorTest, ChainLinksAreCachedByTtl) {
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    unsigned first = fetches_;
    EXPECT_GE(first, 3u);  // test. DNSKEY, secure.test. DS and DNSKEY
    EXPECT_EQ(check("_25._tcp.mx1.secure.test.", kTlsa).security, Security::Secure);
    EXPECT_EQ(fetches_, first);  // the same zone: nothing fetched again
    // The lab's TTLs are at most an hour: two hours on, the links are stale.
    EXPECT_EQ(check("secure.test.", kMx, lab().now + 7200).security, Security::Secure);
    EXPECT_GT(fetches_, first);
}

TEST_F(ValidatorTest, DnskeyTrustAnchorWorksLikeADs) {
    // root.key lists DNSKEY records; make one from the lab's test. keys.
    const auto& wire = lab().answers.at({"test.", kDnskey});
    ldns_pkt* p = nullptr;
    ASSERT_EQ(ldns_wire2pkt(&p, wire.data(), wire.size()), LDNS_STATUS_OK);
    std::string anchor;
    for (size_t i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(p)); ++i) {
        ldns_rr* rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
        if (isType(rr, LDNS_RR_TYPE_DNSKEY) && (ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)) & 1)) {
            // As root.key writes it: no TTL, a trailing comment.
            char* rd = ldns_rdf2str(ldns_rr_rdf(rr, 3));
            anchor += "; the KSK\ntest. IN DNSKEY 257 3 13 " + std::string(rd) + " ; keytag\n";
            free(rd);
        }
    }
    ldns_pkt_free(p);
    ASSERT_FALSE(anchor.empty());
    validator_ = make({}, anchor);
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
}

TEST_F(ValidatorTest, CnameIntoASignedZoneIsSecureIntoAnUnsignedOneInsecure) {
    Verdict v = check("mail.cname.test.", kA);
    EXPECT_EQ(v.security, Security::Secure) << v.reason;
    v = check("mail2.cname.test.", kA);
    EXPECT_EQ(v.security, Security::Insecure) << v.reason;
}

TEST_F(ValidatorTest, WildcardExpansionNeedsItsProof) {
    for (const char* name : {"any.wild.secure.test.", "any.wild.nsec3.test."}) {
        Verdict v = check(name, kMx);
        EXPECT_EQ(v.security, Security::Secure) << name << ": " << v.reason;
        // Without the NSEC/NSEC3 showing that the name itself does not
        // exist, a wildcard answer could stand in for a real name: bogus.
        auto stripped = edit(lab().answers.at({name, kMx}), [](ldns_pkt* p) {
            filter(p, LDNS_SECTION_AUTHORITY, [](const ldns_rr* rr) {
                return !isType(rr, LDNS_RR_TYPE_NSEC) && !isType(rr, LDNS_RR_TYPE_NSEC3);
            });
        });
        v = checkWire(stripped, name, kMx);
        EXPECT_EQ(v.security, Security::Bogus) << name;
        EXPECT_NE(v.reason.find("wildcard"), std::string::npos) << v.reason;
    }
}

TEST_F(ValidatorTest, AWildcardRrsigCannotHideBehindAnotherRrsig) {
    // The wildcard answer without its proof, and in front of its genuine
    // RRSIG a copy that claims every label (so "not a wildcard"); the copy
    // does not verify, the genuine one does, and it is the genuine one's
    // label count that says whether a proof is needed.
    auto forged = edit(lab().answers.at({"any.wild.secure.test.", kMx}), [](ldns_pkt* p) {
        filter(p, LDNS_SECTION_AUTHORITY, [](const ldns_rr* rr) {
            return !isType(rr, LDNS_RR_TYPE_NSEC) && !isType(rr, LDNS_RR_TYPE_NSEC3) &&
                   !(isType(rr, LDNS_RR_TYPE_RRSIG) &&
                     ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) == LDNS_RR_TYPE_NSEC);
        });
        ldns_rr_list* old = ldns_pkt_answer(p);
        ldns_rr_list* out = ldns_rr_list_new();
        for (size_t i = 0; i < ldns_rr_list_rr_count(old); ++i) {
            ldns_rr* rr = ldns_rr_list_rr(old, i);
            if (isType(rr, LDNS_RR_TYPE_RRSIG)) {
                ldns_rr* fake = ldns_rr_clone(rr);
                ldns_rdf_deep_free(
                    ldns_rr_set_rdf(fake, ldns_native2rdf_int8(LDNS_RDF_TYPE_INT8, 4), 2));
                ldns_rr_list_push_rr(out, fake);
            }
            ldns_rr_list_push_rr(out, ldns_rr_clone(rr));
        }
        ldns_pkt_set_answer(p, out);
        ldns_pkt_set_ancount(p, static_cast<uint16_t>(ldns_rr_list_rr_count(out)));
        ldns_rr_list_deep_free(old);
    });
    Verdict v = checkWire(forged, "any.wild.secure.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    EXPECT_NE(v.reason.find("wildcard"), std::string::npos) << v.reason;
}

// ------------------------------------------------------------ denials

TEST_F(ValidatorTest, NsecAndNsec3DenialsAreSecure) {
    for (auto [name, type] : std::vector<std::pair<std::string, uint16_t>>{
             {"nothere.secure.test.", kMx},        // NSEC NXDOMAIN, wildcard denied
             {"mx1.secure.test.", kAaaa},          // NSEC NODATA
             {"_tcp.mx1.secure.test.", kTlsa},     // NSEC empty non-terminal
             {"any.wild.secure.test.", kTlsa},     // NSEC wildcard NODATA
             {"_25._tcp.mx.notlsa.test.", kTlsa},  // TLSA securely absent
             {"nothere.nsec3.test.", kMx},         // NSEC3 closest encloser + wildcard
             {"mx1.nsec3.test.", kAaaa}}) {        // NSEC3 NODATA
        Verdict v = check(name, type);
        EXPECT_EQ(v.security, Security::Secure) << name << " " << type << ": " << v.reason;
    }
}

TEST_F(ValidatorTest, ForgedDenialOfExistingTlsaIsBogus) {
    // The attacker's NODATA for a TLSA RRset that exists, "proven" by the
    // real, validly signed NSEC/NSEC3 records of a sibling name that does not.
    for (auto [real, decoy] : std::vector<std::pair<std::string, std::string>>{
             {"_25._tcp.mx1.secure.test.", "_25._tcp.mx9.secure.test."},
             {"_25._tcp.mx1.nsec3.test.", "_25._tcp.mx9.nsec3.test."}}) {
        auto forged = edit(lab().answers.at({decoy, kTlsa}), [real = real](ldns_pkt* p) {
            ldns_pkt_set_rcode(p, LDNS_RCODE_NOERROR);
            ask(p, real, "TLSA");
        });
        Verdict v = checkWire(forged, real, kTlsa);
        EXPECT_EQ(v.security, Security::Bogus) << real;
        EXPECT_NE(v.reason.find("denial of " + real), std::string::npos) << v.reason;
        // The untouched NXDOMAIN is a valid proof for the decoy.
        EXPECT_EQ(check(decoy, kTlsa).security, Security::Secure);
    }
}

TEST_F(ValidatorTest, ParentsDelegationNsecDeniesNothingInTheChild) {
    // The NXDOMAIN for secure0.test comes from test.: its NSEC at the
    // delegation secure.test. spans every name below secure.test in
    // canonical order, the wildcard *.secure.test too. Replayed as the
    // answer for a TLSA record that exists in the signed child, it must not
    // pass for "securely absent".
    const auto& wire = lab().answers.at({"secure0.test.", kDs});
    EXPECT_EQ(checkWire(wire, "secure0.test.", kDs).security, Security::Secure);
    auto replayed = edit(wire, [](ldns_pkt* p) { ask(p, "_25._tcp.mx1.secure.test.", "TLSA"); });
    Verdict v = checkWire(replayed, "_25._tcp.mx1.secure.test.", kTlsa);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    EXPECT_NE(v.reason.find("zone cut"), std::string::npos) << v.reason;
    // Unedited, it is not even an answer to that question.
    EXPECT_NE(checkWire(wire, "_25._tcp.mx1.secure.test.", kTlsa).security, Security::Secure);
}

TEST_F(ValidatorTest, DenialWithoutItsWildcardProofIsBogus) {
    // NXDOMAIN needs two NSECs: the name and the wildcard. Keep only the one
    // that covers the name (the first NSEC and its RRSIG).
    auto cut = edit(lab().answers.at({"nothere.secure.test.", kMx}), [](ldns_pkt* p) {
        std::string firstNsec;
        filter(p, LDNS_SECTION_AUTHORITY, [&](const ldns_rr* rr) -> bool {
            char* o = ldns_rdf2str(ldns_rr_owner(rr));
            std::string owner = o;
            free(o);
            bool nsecish = isType(rr, LDNS_RR_TYPE_NSEC) ||
                           (isType(rr, LDNS_RR_TYPE_RRSIG) &&
                            ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) == LDNS_RR_TYPE_NSEC);
            if (!nsecish) return true;
            if (firstNsec.empty() && isType(rr, LDNS_RR_TYPE_NSEC)) firstNsec = owner;
            return owner == firstNsec;
        });
    });
    Verdict v = checkWire(cut, "nothere.secure.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
}

TEST_F(ValidatorTest, Nsec3DenialMissingARecordIsBogus) {
    auto cut = edit(lab().answers.at({"nothere.nsec3.test.", kMx}), [](ldns_pkt* p) {
        bool dropped = false;
        filter(p, LDNS_SECTION_AUTHORITY, [&](const ldns_rr* rr) -> bool {
            if (!dropped && isType(rr, LDNS_RR_TYPE_NSEC3)) return !(dropped = true);
            return true;
        });
    });
    Verdict v = checkWire(cut, "nothere.nsec3.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
}

TEST_F(ValidatorTest, UnsignedDenialInASignedZoneIsBogus) {
    auto unsigned_ = edit(lab().answers.at({"_25._tcp.mx.notlsa.test.", kTlsa}), [](ldns_pkt* p) {
        filter(p, LDNS_SECTION_AUTHORITY,
               [](const ldns_rr* rr) { return !isType(rr, LDNS_RR_TYPE_RRSIG); });
    });
    Verdict v = checkWire(unsigned_, "_25._tcp.mx.notlsa.test.", kTlsa);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
}

// ------------------------------------------------------------ the chain

TEST_F(ValidatorTest, InsecureOnlyWhereADenialOfDsProvesIt) {
    Verdict v = check("insecure.test.", kMx);
    EXPECT_EQ(v.security, Security::Insecure) << v.reason;
    EXPECT_NE(v.reason.find("has no DS"), std::string::npos) << v.reason;
    v = check("mx.child.optout.test.", kA);
    EXPECT_EQ(v.security, Security::Insecure) << v.reason;
    EXPECT_NE(v.reason.find("opt-out"), std::string::npos) << v.reason;
}

TEST_F(ValidatorTest, ForgedDenialOfDsDoesNotDowngrade) {
    // "secure.test has no DS", proven with the NSECs of nosuch.test.
    overrides_.emplace(std::make_pair("secure.test.", kDs),
                       edit(lab().answers.at({"nosuch.test.", kDs}), [](ldns_pkt* p) {
                           ldns_pkt_set_rcode(p, LDNS_RCODE_NOERROR);
                           ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
                           ldns_rdf_deep_free(ldns_rr_owner(q));
                           ldns_rr_set_owner(q, ldns_dname_new_frm_str("secure.test."));
                       }));
    Verdict v = check("secure.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    EXPECT_NE(v.reason.find("DS denial for secure.test."), std::string::npos) << v.reason;
    // Stripping the signatures from the answer does not make it insecure either.
    auto stripped = edit(lab().answers.at({"nsec3.test.", kMx}), [](ldns_pkt* p) {
        filter(p, LDNS_SECTION_ANSWER,
               [](const ldns_rr* rr) { return !isType(rr, LDNS_RR_TYPE_RRSIG); });
    });
    v = checkWire(stripped, "nsec3.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus) << v.reason;
    EXPECT_NE(v.reason.find("no RRSIG"), std::string::npos) << v.reason;
}

TEST_F(ValidatorTest, BadSignatureExpiredAndDsMismatchAreBogusAndSayWhy) {
    Verdict v = check("bogus.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_NE(v.reason.find("Bogus DNSSEC signature"), std::string::npos) << v.reason;
    v = check("expired.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_NE(v.reason.find("expired"), std::string::npos) << v.reason;
    v = check("dsmismatch.test.", kMx);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_NE(v.reason.find("DS mismatch"), std::string::npos) << v.reason;
    v = check("_25._tcp.mx.bogustlsa.test.", kTlsa);
    EXPECT_EQ(v.security, Security::Bogus);
}

TEST_F(ValidatorTest, TheValidationTimeIsInjected) {
    // ldns-signzone signs for four weeks from the recording: five weeks on,
    // the same answer has expired; a year before, it is not yet valid.
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    Verdict later = make()->validate(lab().answers.at({"secure.test.", kMx}).data(),
                                     lab().answers.at({"secure.test.", kMx}).size(), "secure.test.",
                                     kMx, lab().now + 35 * 86400);
    EXPECT_EQ(later.security, Security::Bogus);
    EXPECT_NE(later.reason.find("expired"), std::string::npos) << later.reason;
    Verdict earlier = make()->validate(lab().answers.at({"secure.test.", kMx}).data(),
                                       lab().answers.at({"secure.test.", kMx}).size(),
                                       "secure.test.", kMx, lab().now - 365 * 86400);
    EXPECT_EQ(earlier.security, Security::Bogus);
}

TEST_F(ValidatorTest, KeyFetchFailureIsIndeterminateNotInsecure) {
    overrides_.emplace(std::make_pair("secure.test.", kDnskey), Error::temporary("timed out"));
    Verdict v = check("secure.test.", kMx);
    EXPECT_EQ(v.security, Security::Indeterminate) << v.reason;
    EXPECT_NE(v.reason.find("timed out"), std::string::npos) << v.reason;
}

TEST_F(ValidatorTest, NamesOutsideTheAnchorAreInsecure) {
    auto wire = edit(lab().answers.at({"secure.test.", kMx}), [](ldns_pkt* p) {
        ask(p, "example.org.", "MX");
        filter(p, LDNS_SECTION_AUTHORITY, [](const ldns_rr*) { return false; });
    });
    Verdict v = checkWire(wire, "example.org.", kMx);  // no records for it in there
    EXPECT_EQ(v.security, Security::Insecure) << v.reason;
    EXPECT_NE(v.reason.find("outside the trust anchor"), std::string::npos) << v.reason;
}

TEST_F(ValidatorTest, WorkCapsHold) {
    ValidatorLimits tight;
    tight.maxFetches = 2;  // the chain to secure.test needs three
    validator_ = make(tight);
    Verdict v = check("secure.test.", kMx);
    EXPECT_NE(v.security, Security::Secure);
    EXPECT_NE(v.security, Security::Insecure);
    EXPECT_NE(v.reason.find("key fetches"), std::string::npos) << v.reason;

    ValidatorLimits shallow;
    shallow.maxChainDepth = 1;  // _25._tcp.mx1 is four labels below test.
    validator_ = make(shallow);
    auto wire = lab().answers.at({"_25._tcp.mx.notlsa.test.", kTlsa});
    v = checkWire(edit(wire,
                       [](ldns_pkt* p) {
                           filter(p, LDNS_SECTION_AUTHORITY, [](const ldns_rr* rr) {
                               return !isType(rr, LDNS_RR_TYPE_RRSIG);
                           });
                       }),
                  "_25._tcp.mx.notlsa.test.", kTlsa);
    EXPECT_EQ(v.security, Security::Bogus);
    EXPECT_NE(v.reason.find("labels below the anchor"), std::string::npos) << v.reason;
}

TEST_F(ValidatorTest, KeyCacheCapsAreLimits) {
    // Default: the second answer from secure.test costs no fetch at all.
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    unsigned first = fetches_;
    EXPECT_GT(first, 0u);
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    EXPECT_EQ(fetches_, first);

    // maxCacheEntries 0: the cache starts afresh at every link, so the
    // chain is fetched again.
    ValidatorLimits tiny;
    tiny.maxCacheEntries = 0;
    validator_ = make(tiny);
    fetches_ = 0;
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    EXPECT_GT(fetches_, first);

    // maxRecordTtl 0: no link outlives the validation that fetched it.
    ValidatorLimits noTtl;
    noTtl.maxRecordTtl = 0;
    validator_ = make(noTtl);
    fetches_ = 0;
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    EXPECT_EQ(check("secure.test.", kMx).security, Security::Secure);
    EXPECT_EQ(fetches_, 2 * first);
}

TEST_F(ValidatorTest, LabBogusZonesSayWhichCheckFailed) {
    EXPECT_EQ(check("bogus.test.", kMx).bogus, BogusReason::NoValidRrsig);
    EXPECT_EQ(check("expired.test.", kMx).bogus, BogusReason::SignatureExpired);
    EXPECT_EQ(check("dsmismatch.test.", kMx).bogus, BogusReason::DsMismatch);
    EXPECT_EQ(check("secure.test.", kMx).bogus, BogusReason::None);
    overrides_.emplace(std::make_pair("secure.test.", kDnskey), Error::temporary("timed out"));
    validator_ = make();
    Verdict v = check("secure.test.", kMx);
    EXPECT_EQ(v.security, Security::Indeterminate);
    EXPECT_EQ(v.bogus, BogusReason::None);  // not Bogus: the keys could not be fetched
}

TEST_F(ValidatorTest, AnchorErrorsNameTheLine) {
    auto fetch = [](const std::string&, uint16_t) -> Result<std::vector<uint8_t>> {
        return Error::temporary("unused");
    };
    auto v = Validator::create("; comment\n\ntest. IN DS 1 13 2 zz\n", "k.key", fetch);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("k.key:3"), std::string::npos) << v.error().message;
    v = Validator::create("test. IN A 127.0.0.1\n", "k.key", fetch);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("DS or DNSKEY"), std::string::npos);
    v = Validator::create("; nothing\n", "k.key", fetch);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("not a trust anchor"), std::string::npos);
    v = Validator::fromFile("/nonexistent/root.key", fetch);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("/nonexistent/root.key"), std::string::npos);
}

TEST_F(ValidatorTest, GarbageIsBogusNotACrash) {
    std::vector<uint8_t> junk{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1};
    EXPECT_EQ(checkWire(junk, "secure.test.", kMx).security, Security::Bogus);
    // Every truncation of a real answer: never secure, never a crash.
    const auto& wire = lab().answers.at({"nothere.nsec3.test.", kMx});
    for (size_t n = 0; n < wire.size(); n += 7) {
        std::vector<uint8_t> part(wire.begin(), wire.begin() + static_cast<long>(n));
        EXPECT_NE(checkWire(part, "nothere.nsec3.test.", kMx).security, Security::Secure) << n;
    }
}

}  // namespace
