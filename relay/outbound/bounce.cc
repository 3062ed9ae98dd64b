#include "relay/outbound/bounce.h"

#include <ctime>

#include "queue/utf8.h"
#include "relay/runtime/mail_date.h"

namespace danerelay::relay {

std::string dsnText(std::string_view s, size_t maxBytes) {
    std::string flat(s);
    for (char& c : flat) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) c = ' ';  // CR, LF, NUL, ESC, TAB, ...
    }
    auto valid = queue::toValidUtf8(flat);
    return std::string(queue::utf8Prefix(valid, maxBytes));
}

std::string dsnLine(std::string_view head, std::string_view value) {
    std::string text = dsnText(value, kMaxDsnValue);
    std::string out(head);
    size_t lineLen = out.size();
    size_t pos = 0;
    while (pos < text.size()) {
        size_t room = lineLen < kDsnFoldAt ? kDsnFoldAt - lineLen : 0;
        std::string_view rest = std::string_view(text).substr(pos);
        if (rest.size() <= room) {
            out += rest;
            break;
        }
        // Fold before the last space that keeps this line short; with none,
        // before the first space that keeps it under the hard limit; with
        // none of those either, cut (between characters) at that limit.
        size_t brk = room > 0 ? rest.rfind(' ', room) : std::string_view::npos;
        if (brk == 0 || brk == std::string_view::npos) {
            size_t hardRoom = kDsnHardLine - lineLen;
            brk = rest.find(' ', 1);
            if (brk == std::string_view::npos || brk > hardRoom) {
                brk = queue::utf8Prefix(rest, hardRoom).size();
                if (brk == 0) brk = std::min(rest.size(), hardRoom);
                out += rest.substr(0, brk);
                out += "\r\n ";
                lineLen = 1;
                pos += brk;
                continue;
            }
        }
        out += rest.substr(0, brk);
        out += "\r\n";
        lineLen = 0;  // the space at brk starts the continuation line
        pos += brk;
    }
    return out + "\r\n";
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
    out += dsnLine("To: <", env.sender + ">");
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
        out += dsnLine("<", env.recipients[f.index].address + ">: " + f.diagnostic);
    }
    out += crlf;

    out += "--" + boundary + crlf;
    out += "Content-Description: Delivery report" + crlf;
    out += "Content-Type: message/delivery-status" + crlf + crlf;
    out += "Reporting-MTA: dns; " + hostname + crlf;
    out += "X-Danerelay-Queue-ID: " + m.id + crlf;
    if (!env.envid.empty()) out += dsnLine("Original-Envelope-Id: ", env.envid);
    out += "Arrival-Date: " + rfc5322Date(static_cast<std::time_t>(env.arrival)) + crlf;
    for (const auto& f : failed) {
        const auto& r = env.recipients[f.index];
        out += crlf;
        out += dsnLine("Final-Recipient: rfc822; ", r.address);
        if (!r.orcpt.empty()) out += dsnLine("Original-Recipient: ", r.orcpt);
        out += "Action: failed" + crlf;
        out += dsnLine("Status: ", f.status);
        if (!f.remoteMta.empty()) out += dsnLine("Remote-MTA: dns; ", f.remoteMta);
        out += dsnLine("Diagnostic-Code: smtp; ", f.diagnostic);
    }
    out += crlf;

    out += "--" + boundary + crlf;
    // RFC 8689 5: the content of a REQUIRETLS message never travels in a
    // DSN that is not itself REQUIRETLS: headers only.
    if (env.ret == queue::DsnRet::Headers || env.requireTls) {
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
