#include "relay/outbound/trouble.h"

#include <algorithm>
#include <string_view>

#include "relay/outbound/smtp_reply.h"
#include "relay/runtime/config.h"

namespace danerelay::relay {

using queue::RcptState;

TlsMode requiredMode(TlsMode planned, const policy::Entry& pe) {
    bool needsTls =
        pe.implicitTls || !pe.authUser.empty() || !pe.tlsPins.empty() || pe.minTlsVersion > 0;
    if (needsTls && (planned == TlsMode::Opportunistic || planned == TlsMode::None)) {
        return TlsMode::Mandatory;
    }
    return planned;
}

RcptState stateOfPlan(const DeliveryPlan& p) {
    return p.action == DeliveryPlan::Action::Bounce ? RcptState::Bounced : RcptState::Deferred;
}

std::string skippedHostStatus(const HostPlan& h) {
    return h.status.rfind("4.", 0) == 0 ? h.status : "4.7.5";
}

// The reply is a server's ("550 5.1.1 gone"), one quoted in our error
// ("MAIL FROM: 550 5.1.1 gone"), or our own ("5.6.7 the server does not
// ..."). The enhanced code is read by splitEnhancedStatus() (relay/
// smtp_reply.h), the one parser of reply codes: only at the start of the
// text, and only of the reply code's class.
std::string statusOf(int code, const std::string& reply, const std::string& fallback) {
    auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
    auto afterCode = [&](std::string_view s, std::string_view* text) {
        if (s.size() < 4 || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || s[3] != ' ') {
            return false;
        }
        *text = s.substr(4);
        return true;
    };
    std::string_view text;
    std::string found;
    if (afterCode(reply, &text)) {
        found = splitEnhancedStatus(code, text).code;
    } else if (found = splitEnhancedStatus(code, reply).code; found.empty()) {
        auto colon = reply.find(": ");  // "where: NNN text"
        if (colon != std::string::npos &&
            afterCode(std::string_view(reply).substr(colon + 2), &text)) {
            found = splitEnhancedStatus(code, text).code;
        }
    }
    if (!found.empty()) return found;
    if (code >= 500) return "5.0.0";
    if (code >= 400) return "4.0.0";
    return fallback;
}

std::string softened(std::string status) {
    if (!status.empty() && status[0] != '4') status[0] = '4';
    return status;
}

bool tlsRequirementMet(TlsMode required, const ClientResult& r) {
    switch (required) {
        case TlsMode::None:
        case TlsMode::Opportunistic:
            return true;
        case TlsMode::Mandatory:
        case TlsMode::Dane:
        case TlsMode::Verify:
            return !r.tls.empty() && r.peerVerified;
    }
    return false;
}

bool authenticationFailed(const ClientResult& r) {
    using F = ClientResult::Failure;
    switch (r.failure) {
        case F::StarttlsNotSupported:
        case F::DaneFailed:
        case F::CertificateNotTrusted:
            return true;
        case F::PinMismatch:
        case F::TlsVersionTooLow:
            // Pins and the minimum version are checked after DANE or PKIX
            // where the mode has them; without either they count as a TLS
            // failure of the connection (4.4.1), as they always have.
            return r.peerCheck != ClientResult::PeerCheck::None;
        default:
            return false;
    }
}

namespace {

std::string notBounced(TlsMode required) {
    return std::string(" (not bounced: the server did not meet the required TLS, ") +
           toString(required) + ")";
}

// The session ended before the transaction's replies were in.
AttemptJudgement judgeFailed(TlsMode required, const ClientResult& r, size_t recipients) {
    AttemptJudgement j;
    const bool inTransaction = r.permanent() && r.transactionStarted();
    if (inTransaction && tlsRequirementMet(required, r)) {
        for (size_t k = 0; k < recipients; ++k) {
            j.rcpts.push_back({RcptState::Bounced, statusOf(550, r.error, "5.0.0"), r.error});
        }
        return j;
    }
    j.nextHost = true;
    j.reason = r.error;
    if (inTransaction) j.reason += notBounced(required);
    if (r.failure == ClientResult::Failure::RequireTls) {
        j.status = "4.7.30";  // RFC 8689 5.7.30, waiting: another host or a later try may meet it
    } else if (authenticationFailed(r)) {
        j.status = "4.7.5";  // the TLS requirement failed
    } else if (r.permanent()) {
        j.status = softened(statusOf(550, r.error, "5.0.0"));
    } else {
        j.status = "4.4.1";
    }
    return j;
}

AttemptJudgement::Rcpt judgeRcpt(TlsMode required, const ClientResult& r,
                                 const ClientResult::Rcpt& rr) {
    AttemptJudgement::Rcpt out;
    out.text = rr.reply;
    if (rr.code / 100 == 2) {
        out.state = RcptState::Delivered;
        out.status = statusOf(rr.code, rr.reply, "2.0.0");
    } else if (rr.code / 100 == 5 && tlsRequirementMet(required, r)) {
        out.state = RcptState::Bounced;
        out.status = statusOf(rr.code, rr.reply, "5.0.0");
    } else {
        out.state = RcptState::Deferred;
        out.status = softened(statusOf(rr.code, rr.reply, "4.0.0"));
        if (rr.code / 100 == 5) out.text += notBounced(required);
        if (rr.code == 0) out.text = "no reply to RCPT";
    }
    return out;
}

}  // namespace

AttemptJudgement judgeAttempt(TlsMode required, const ClientResult& r, size_t recipients) {
    if (!r.sessionOk()) return judgeFailed(required, r, recipients);
    AttemptJudgement j;
    const ClientResult::Rcpt none;
    for (size_t k = 0; k < recipients; ++k) {
        j.rcpts.push_back(judgeRcpt(required, r, k < r.rcpts.size() ? r.rcpts[k] : none));
    }
    return j;
}

int64_t backoff(const DeliveryConfig& d, int attempts) {
    int64_t b = d.retryInitial;
    for (int i = 1; i < attempts && b < d.retryMax; ++i) b *= 2;
    return std::min<int64_t>(b, d.retryMax);
}

Settled settle(const RcptOutcome& o, int attempts, int64_t arrival, int64_t now,
               const DeliveryConfig& d) {
    Settled s;
    s.state = o.state;
    s.lastError = o.status + " " + o.text;
    if (o.state == RcptState::Deferred) {
        if (now - arrival >= static_cast<int64_t>(d.maxQueueLifetime)) {
            s.state = RcptState::Bounced;
            // RFC 8689 5: a REQUIRETLS message no host could take bounces
            // as such (5.7.30), not as a plain timeout.
            bool requireTls = o.status == "4.7.30";
            std::string status = requireTls ? "5.7.30" : "5.4.7";
            s.dsnStatus = status;
            s.lastError = status +
                          (requireTls ? " REQUIRETLS support required: delivery time expired; "
                                        "last error: "
                                      : " delivery time expired; last error: ") +
                          o.status + " " + o.text;
            s.dsnText = s.lastError;
        } else {
            s.nextAttempt = now + backoff(d, attempts);
        }
    } else if (o.state == RcptState::Bounced) {
        s.dsnStatus = o.status.empty() ? "5.0.0" : o.status;
        s.dsnText = o.status + " " + o.text;
    }
    return s;
}

const char* toString(ClientResult::Stage s) {
    using S = ClientResult::Stage;
    switch (s) {
        case S::Connect:
            return "connect";
        case S::Greeting:
            return "greeting";
        case S::Ehlo:
            return "ehlo";
        case S::StartTls:
            return "starttls";
        case S::Handshake:
            return "handshake";
        case S::Auth:
            return "auth";
        case S::Mail:
            return "mail";
        case S::Rcpt:
            return "rcpt";
        case S::Data:
            return "data";
        case S::Body:
            return "body";
        case S::Done:
            return "done";
    }
    return "?";
}

const char* toString(ClientResult::Failure f) {
    using F = ClientResult::Failure;
    switch (f) {
        case F::None:
            return "none";
        case F::Network:
            return "network";
        case F::Timeout:
            return "timeout";
        case F::Reply:
            return "reply";
        case F::BadReply:
            return "bad-reply";
        case F::StarttlsNotSupported:
            return "starttls-not-supported";
        case F::Tls:
            return "tls";
        case F::DaneFailed:
            return "dane-failed";
        case F::CertificateNotTrusted:
            return "certificate-not-trusted";
        case F::PinMismatch:
            return "pin-mismatch";
        case F::TlsVersionTooLow:
            return "tls-version-too-low";
        case F::Refused:
            return "refused";
        case F::RequireTls:
            return "requiretls";
    }
    return "?";
}

const char* tlsReportResult(TlsMode required, const ClientResult& r) {
    using F = ClientResult::Failure;
    switch (r.failure) {
        case F::StarttlsNotSupported:
            return "starttls-not-supported";
        case F::DaneFailed:
            return tls::toString(r.daneFailure);
        case F::CertificateNotTrusted:
            return "certificate-not-trusted";
        case F::Tls:
            return required == TlsMode::None ? nullptr : "validation-failure";
        case F::PinMismatch:
        case F::TlsVersionTooLow:
            return toString(r.failure);
        default:
            break;
    }
    if (required == TlsMode::None || r.tls.empty()) return nullptr;
    return tlsRequirementMet(required, r) ? "success" : nullptr;
}

}  // namespace danerelay::relay
