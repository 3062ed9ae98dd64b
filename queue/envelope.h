// envelope.h — what the spool knows about a message besides its content.
//
// The Envelope is written once, with the message, and never changes. The
// per-recipient delivery state (RecipientStatus) changes as deliveries are
// tried and is kept in a file of its own, replaced atomically. Both have a
// JSON form; parsing it treats the bytes as untrusted (a spool file damaged
// on disk must come back as an error, never as a crash or a half-envelope).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace danerelay::queue {

// DSN NOTIFY (RFC 3461). None means the client gave no NOTIFY parameter.
enum NotifyFlags : unsigned {
    kNotifyNone = 0,
    kNotifyNever = 1,
    kNotifySuccess = 2,
    kNotifyFailure = 4,
    kNotifyDelay = 8,
};

enum class DsnRet { Unspecified, Full, Headers };

struct Recipient {
    std::string address;  // the forward-path, without angle brackets
    std::string orcpt;    // ORCPT as given ("rfc822;user@example.org"), decoded from xtext
    unsigned notify = kNotifyNone;
    bool operator==(const Recipient&) const = default;
};

struct Envelope {
    std::string sender;  // reverse-path without brackets; empty is the null sender
    std::vector<Recipient> recipients;
    std::string envid;  // DSN ENVID, decoded from xtext
    DsnRet ret = DsnRet::Unspecified;
    bool smtputf8 = false;
    bool eightBitMime = false;
    // RFC 8689 REQUIRETLS: relayed only over authenticated TLS (DANE or
    // MTA-STS) to hosts that offer REQUIRETLS, or not at all.
    bool requireTls = false;
    // RFC 8689 5: the header carried "TLS-Required: No" (read once, at
    // accept, by relay/inbound's header scan); delivery honours it only
    // where delivery.allow_tls_required_no says so, and never beside
    // requireTls. Absent in older spools: false.
    bool tlsRequiredNo = false;
    int64_t arrival = 0;  // Unix seconds
    std::string clientAddress;
    std::string heloName;
    std::string authUser;  // empty unless the client authenticated
    std::string tls;       // "TLS1.3/AES-256-GCM", empty for plaintext
    bool operator==(const Envelope&) const = default;
};

enum class RcptState { Pending, Deferred, Delivered, Bounced, Held };

const char* toString(RcptState s);
bool parseRcptState(const std::string& s, RcptState* out);

// One try at one MX host for one recipient, as danectl queue show lists it.
struct AttemptRecord {
    int64_t at = 0;  // Unix seconds
    std::string mx, ip;
    std::string tls;    // protocol and cipher, "none" without TLS
    std::string dane;   // DANE result ("matched 3 1 1 ...", "none", a failure)
    std::string reply;  // the server's reply or our reason, at most 512 bytes
    bool operator==(const AttemptRecord&) const = default;
};

struct RecipientStatus {
    RcptState state = RcptState::Pending;
    int64_t nextAttempt = 0;  // Unix seconds; 0 = as soon as possible
    int attempts = 0;
    std::string lastError;
    std::vector<AttemptRecord> history;  // the most recent kMaxHistory, oldest first
    static constexpr size_t kMaxHistory = 10;
    bool operator==(const RecipientStatus&) const = default;
};

nlohmann::json envelopeToJson(const Envelope& env);
Result<Envelope> envelopeFromJson(const nlohmann::json& j);

nlohmann::json statusToJson(const std::vector<RecipientStatus>& status);
Result<std::vector<RecipientStatus>> statusFromJson(const nlohmann::json& j);

}  // namespace danerelay::queue
