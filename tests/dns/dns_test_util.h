// dns_test_util.h — build DNS response packets from zone-file text with ldns,
// for the parser and resolver tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dns/ldns_ptr.h"

namespace danerelay::dns::testing {

struct Reply {
    std::string qname = "example.org.";
    uint16_t qtype = 15;
    uint16_t id = 0;
    ldns_pkt_rcode rcode = LDNS_RCODE_NOERROR;
    bool ad = false;
    bool tc = false;
    std::vector<std::string> answer;  // RRs in presentation format
    std::vector<std::string> authority;
};

inline std::vector<uint8_t> build(const Reply& r) {
    Pkt owned(ldns_pkt_new());
    ldns_pkt* p = owned.get();
    ldns_pkt_set_id(p, r.id);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rd(p, true);
    ldns_pkt_set_ra(p, true);
    ldns_pkt_set_ad(p, r.ad);
    ldns_pkt_set_tc(p, r.tc);
    ldns_pkt_set_rcode(p, static_cast<uint8_t>(r.rcode));
    ldns_rr* q = ldns_rr_new();
    ldns_rr_set_owner(q, ldns_dname_new_frm_str(r.qname.c_str()));
    ldns_rr_set_type(q, static_cast<ldns_rr_type>(r.qtype));
    ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
    ldns_rr_set_question(q, true);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
    auto push = [&](const std::vector<std::string>& rrs, ldns_pkt_section sec) {
        for (const auto& text : rrs) {
            ldns_rr* rr = nullptr;
            if (ldns_rr_new_frm_str(&rr, text.c_str(), 300, nullptr, nullptr) == LDNS_STATUS_OK) {
                ldns_pkt_push_rr(p, sec, rr);
            }
        }
    };
    push(r.answer, LDNS_SECTION_ANSWER);
    push(r.authority, LDNS_SECTION_AUTHORITY);
    std::vector<uint8_t> out;
    toWire(p, &out);
    return out;
}

}  // namespace danerelay::dns::testing
