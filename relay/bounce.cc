#include "relay/bounce.h"

#include <ctime>

namespace danerelay::relay {

static std::string rfc5322Date(std::time_t t) {
    tm tmv{};
    gmtime_r(&t, &tmv);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tmv);
    return buf;
}

bool wantsFailureDsn(const queue::Recipient& r) {
    if (r.notify == queue::kNotifyNone) return true;  // the default: failures are reported
    return (r.notify & queue::kNotifyFailure) != 0;
}

std::string buildFailureDsn(const std::string& hostname, const queue::StoredMessage& m,
                            const std::string& content, const std::vector<FailedRecipient>& failed,
                            std::time_t now) {
    const auto& env = m.envelope;
    std::string boundary = m.id + "/" + hostname;
    std::string crlf = "\r\n";
    std::string out;
    out += "From: MAILER-DAEMON@" + hostname + " (Mail Delivery System)" + crlf;
    out += "To: <" + env.sender + ">" + crlf;
    out += "Subject: Undelivered Mail Returned to Sender" + crlf;
    out += "Date: " + rfc5322Date(now) + crlf;
    out += "Message-ID: <" + m.id + ".dsn@" + hostname + ">" + crlf;
    out += "Auto-Submitted: auto-replied" + crlf;
    out += "MIME-Version: 1.0" + crlf;
    out += "Content-Type: multipart/report; report-type=delivery-status;" + crlf;
    out += "\tboundary=\"" + boundary + "\"" + crlf + crlf;
    out += "This is a MIME-encapsulated message." + crlf + crlf;

    out += "--" + boundary + crlf;
    out += "Content-Description: Notification" + crlf;
    out += "Content-Type: text/plain; charset=utf-8" + crlf + crlf;
    out += "This is the mail system at host " + hostname + "." + crlf + crlf;
    out += "Your message could not be delivered to one or more recipients." + crlf;
    out += "It is attached below." + crlf + crlf;
    for (const auto& f : failed) {
        out += "<" + env.recipients[f.index].address + ">: " + f.diagnostic + crlf;
    }
    out += crlf;

    out += "--" + boundary + crlf;
    out += "Content-Description: Delivery report" + crlf;
    out += "Content-Type: message/delivery-status" + crlf + crlf;
    out += "Reporting-MTA: dns; " + hostname + crlf;
    out += "X-Danerelay-Queue-ID: " + m.id + crlf;
    if (!env.envid.empty()) out += "Original-Envelope-Id: " + env.envid + crlf;
    out += "Arrival-Date: " + rfc5322Date(static_cast<std::time_t>(env.arrival)) + crlf;
    for (const auto& f : failed) {
        const auto& r = env.recipients[f.index];
        out += crlf;
        out += "Final-Recipient: rfc822; " + r.address + crlf;
        if (!r.orcpt.empty()) out += "Original-Recipient: " + r.orcpt + crlf;
        out += "Action: failed" + crlf;
        out += "Status: " + f.status + crlf;
        if (!f.remoteMta.empty()) out += "Remote-MTA: dns; " + f.remoteMta + crlf;
        out += "Diagnostic-Code: smtp; " + f.diagnostic + crlf;
    }
    out += crlf;

    out += "--" + boundary + crlf;
    if (env.ret == queue::DsnRet::Headers) {
        out += "Content-Description: Undelivered Message Headers" + crlf;
        out += "Content-Type: text/rfc822-headers" + crlf + crlf;
        auto end = content.find("\r\n\r\n");
        out += content.substr(0, end == std::string::npos ? content.size() : end + 2);
    } else {
        out += "Content-Description: Undelivered Message" + crlf;
        out += "Content-Type: message/rfc822" + crlf + crlf;
        out += content;
    }
    if (out.size() < 2 || out.compare(out.size() - 2, 2, crlf) != 0) out += crlf;
    out += crlf + "--" + boundary + "--" + crlf;
    return out;
}

}  // namespace danerelay::relay
