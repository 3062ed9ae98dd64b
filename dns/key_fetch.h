// key_fetch.h — getting DS and DNSKEY records for the validator (internal
// to dns/).
//
// fetchChecked() makes one query through the validator's Fetch and refuses
// what cannot be a usable answer: more fetches than limits.maxFetches for one
// validation (Permanent), past the validation's deadline (Temporary), a
// packet that does not parse, one for another question, an rcode other than
// NOERROR or NXDOMAIN (Temporary). The records it returns are unverified:
// key_chain checks them.
//
// blockingFetcher() (declared in validator.h) is the Fetch the daemon uses:
// one ldns resolver per attempt, UDP with EDNS0 kEdnsUdpSize, DO and CD, TCP
// when truncated, our own random ID checked in the reply, SERVFAIL counted
// as a failed attempt. It blocks: worker threads only.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "dns/dnssec_util.h"

namespace danerelay::dns {

// The EDNS0 UDP payload size we ask for (the DNS flag day 2020 value).
constexpr uint16_t kEdnsUdpSize = 1232;

Result<Pkt> fetchChecked(const Validator::Fetch& fetch, const ValidatorLimits& limits,
                         const std::string& name, uint16_t type, ValidationCtx& ctx);

}  // namespace danerelay::dns
