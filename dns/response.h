// response.h — the one reading of a DNS response packet (internal to dns/).
//
// Every consumer of a response reads it through readResponse(): the answer
// parser (answer.cc), the DNSSEC validator (validator.cc) and the resolver.
// There is no second walk over the packet, so what the validator proves and
// what delivery acts on cannot disagree (one reader per byte).
//
// What it does: checks the packet is a response to exactly our question
// (class IN), groups the class-IN records of the answer and authority
// sections into RRsets with the RRSIGs that cover them, and resolves the
// question through the answer section: the CNAME RRsets from qname on, in
// order, then the RRset of qtype at the end of that chain (or none: a
// denial). Only those RRsets are ever used for data.
//
// What it refuses: a CNAME beside other data at the same name, a CNAME
// RRset of more than one record, loops, chains over kMaxCnameChain, records
// whose rdata lacks fields. Records that the chain does not explain (other
// classes, other owners, RRSIGs over nothing on the chain) are never read
// for data; they are named in `strays`, and a response that would be
// Secure with strays beside it is Bogus (a validating resolver does not
// add them; an attacker on the path does).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "dns/answer.h"
#include "dns/ldns_ptr.h"  // Pkt, List: ldns handles with their frees

namespace danerelay::dns {

// Lower case, trailing dot: the form names are compared in ("." for root).
std::string fqdnOf(const ldns_rdf* d);
std::string fqdn(std::string name);
std::string typeName(uint16_t t);

// Caps on one response's work (a 64 KiB TCP answer holds ~5,000 records).
constexpr size_t kMaxRecordsPerSection = 512;
constexpr size_t kMaxRrsetsPerSection = 64;

// One RRset (owner, type, class IN) of a section, with its RRSIGs.
struct RrSet {
    std::string owner;  // fqdn form
    uint16_t type = 0;
    List rrs{ldns_rr_list_new()};
    List sigs{ldns_rr_list_new()};
    size_t size() const { return ldns_rr_list_rr_count(rrs.get()); }
};

// Groups one section's class-IN records into RRsets. Records whose rdata
// lacks fields are dropped (nothing downstream may read a missing field);
// what else was left out is appended to *strays, if given.
std::vector<RrSet> rrsetsOf(const ldns_rr_list* section, std::vector<std::string>* strays);

const RrSet* findSet(const std::vector<RrSet>& sets, const std::string& owner, uint16_t type);

struct Response {
    Pkt pkt;
    std::string qname;  // fqdn form
    uint16_t qtype = 0;
    Outcome outcome = Outcome::Error;  // Data, NxDomain, NoData; else why in `error`
    std::string error;
    // The packet parsed and is a response to exactly our question (QR, one
    // question, our name, type and class): what makes a resolver take it
    // as the answer (anything else is spoofed or stray: dropped).
    bool forUs = false;
    bool ad = false;
    std::vector<RrSet> answer;     // the answer section's RRsets
    std::vector<RrSet> authority;  // the authority section's RRsets
    // The resolution: indexes into `answer`.
    std::vector<size_t> cnames;       // the CNAME RRsets from qname, in order
    std::optional<size_t> data;       // the qtype RRset at the chain's end
    std::string canonical;            // the chain's end (== qname without CNAMEs)
    std::vector<std::string> strays;  // answer-section records the chain does not explain
};

// Never fails to return: a malformed packet is a Response with outcome Error
// and the reason in `error`.
std::shared_ptr<Response> readResponse(const uint8_t* wire, size_t len, const std::string& qname,
                                       uint16_t qtype);

// The Answer delivery sees, built from the chain's RRsets and nothing else,
// with the security the caller established for them.
Answer answerFrom(const Response& r, Security security);

// An answer whose records cannot be trusted: the failure and why, no data.
Answer withheld(const Response& r, Security security, std::string why);
Answer withheld(const Answer& a, Security security, std::string why);

// "records that no proof covers beside the answer (a. CH MX, ...)".
std::string straysText(const Response& r);

}  // namespace danerelay::dns
