#include "danectl/queue.h"

#include <cstdio>
#include <map>
#include <optional>

#include "common/clock.h"
#include "danectl/output.h"
#include "queue/admin.h"
#include "queue/spool.h"
#include "queue/utf8.h"
#include "relay/control/control.h"

namespace danerelay::danectl {

using nlohmann::json;
using queue::Filter;

namespace {

// summary groups waiting recipients by the start of their last result: what
// varies per message (queue IDs, times) comes later in it.
constexpr size_t kReasonPrefix = 80;

// Every readable message (filtered), and the unreadable ones as damaged.
// error null: a spool that cannot be opened is said on stderr; else in *error.
bool loadAll(const std::string& spoolDir, const Filter& f, std::vector<queue::StoredMessage>* out,
             json* damaged, std::string* error = nullptr) {
    auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader);
    if (!spool) {
        if (error) *error = spool.error().message;
        if (!error) std::fprintf(stderr, "danectl: %s\n", spool.error().message.c_str());
        return false;
    }
    int64_t now = SystemClock::instance().wallSeconds();
    for (const auto& id : (*spool)->listIds()) {
        auto m = (*spool)->load(id);
        if (!m) {
            // Gone between listing and reading: delivered meanwhile, not damage.
            if (m.error().kind == ErrorKind::Permanent) continue;
            damaged->push_back({{"id", id}, {"error", m.error().message}});
            continue;
        }
        if (f.matches(*m, now)) out->push_back(std::move(*m));
    }
    return true;
}

json historyJson(const queue::RecipientStatus& st) {
    json h = json::array();
    for (const auto& a : st.history) {
        h.push_back({{"at", isoTime(a.at)},
                     {"mx", a.mx},
                     {"ip", a.ip},
                     {"tls", a.tls},
                     {"dane", a.dane},
                     {"reply", a.reply}});
    }
    return h;
}

json recipientsJson(const queue::StoredMessage& m) {
    json rcpts = json::array();
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
        const auto& st = m.status[i];
        rcpts.push_back(
            {{"address", m.envelope.recipients[i].address},
             {"state", queue::toString(st.state)},
             {"attempts", st.attempts},
             {"next_attempt", st.nextAttempt ? json(isoTime(st.nextAttempt)) : json(nullptr)},
             {"last_error", st.lastError},
             {"history", historyJson(st)}});
    }
    return rcpts;
}

}  // namespace

bool isQueueAction(const std::string& verb) {
    queue::AdminAction a;
    return queue::parseAdminAction(verb, &a);  // the one list of action names
}

int queueList(const std::string& spoolDir, bool asJson, const Filter& filter) {
    json messages = json::array(), damaged = json::array();
    std::vector<queue::StoredMessage> list;
    if (!loadAll(spoolDir, filter, &list, &damaged)) return 1;
    uint64_t totalSize = 0;
    for (const auto& m : list) totalSize += m.contentSize;
    if (asJson) {
        for (const auto& m : list) {
            json rcpts = json::array();
            for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
                const auto& st = m.status[i];
                rcpts.push_back({{"address", m.envelope.recipients[i].address},
                                 {"state", queue::toString(st.state)},
                                 {"attempts", st.attempts},
                                 {"next_attempt",
                                  st.nextAttempt ? json(isoTime(st.nextAttempt)) : json(nullptr)},
                                 {"last_error", st.lastError}});
            }
            messages.push_back({{"id", m.id},
                                {"arrival", isoTime(m.envelope.arrival)},
                                {"size", m.contentSize},
                                {"sender", m.envelope.sender},
                                {"client", m.envelope.clientAddress},
                                {"tls", m.envelope.tls},
                                {"recipients", rcpts}});
        }
        json out = {{"version", relay::kControlProtocolVersion},
                    {"messages", messages},
                    {"damaged", damaged}};
        printJson(out);
        return damaged.empty() ? 0 : 1;
    }
    if (list.empty() && damaged.empty()) {
        std::printf("Mail queue is empty\n");
        return 0;
    }
    std::printf("%-14s %10s %-20s  %s\n", "-Queue ID-", "--Size--", "----Arrival Time----",
                "-Sender/Recipient-------");
    for (const auto& m : list) {
        std::printf("%-14s %10llu %-20s  %s\n", m.id.c_str(),
                    static_cast<unsigned long long>(m.contentSize),
                    isoTime(m.envelope.arrival).c_str(),
                    m.envelope.sender.empty() ? "<>" : m.envelope.sender.c_str());
        for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            const auto& st = m.status[i];
            std::printf("%47s  %-9s %s", "", queue::toString(st.state),
                        m.envelope.recipients[i].address.c_str());
            if (!st.lastError.empty()) std::printf("  (%s)", st.lastError.c_str());
            std::printf("\n");
        }
    }
    for (const auto& d : damaged) {
        std::printf("%-14s DAMAGED: %s\n", d["id"].get<std::string>().c_str(),
                    d["error"].get<std::string>().c_str());
    }
    std::printf(
        "-- %llu bytes in %zu message%s%s.\n", static_cast<unsigned long long>(totalSize),
        list.size(), list.size() == 1 ? "" : "s",
        damaged.empty() ? "" : (", " + std::to_string(damaged.size()) + " damaged").c_str());
    return damaged.empty() ? 0 : 1;
}

int queueShow(const std::string& spoolDir, const std::string& id, bool asJson, bool body) {
    auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader);
    if (!spool) {
        std::fprintf(stderr, "danectl: %s\n", spool.error().message.c_str());
        return 1;
    }
    auto m = (*spool)->load(id);
    if (!m) {
        std::fprintf(stderr, "danectl: %s\n", m.error().message.c_str());
        return 1;
    }
    auto content = (*spool)->loadContent(id);
    if (!content) {
        std::fprintf(stderr, "danectl: %s\n", content.error().message.c_str());
        return 1;
    }
    auto split = content->find("\r\n\r\n");
    std::string headers =
        content->substr(0, split == std::string::npos ? content->size() : split + 2);
    const auto& e = m->envelope;
    if (asJson) {
        json j = {{"version", relay::kControlProtocolVersion},
                  {"id", m->id},
                  {"arrival", isoTime(e.arrival)},
                  {"size", m->contentSize},
                  {"sender", e.sender},
                  {"client", e.clientAddress},
                  {"helo", e.heloName},
                  {"auth", e.authUser},
                  {"tls", e.tls},
                  {"envid", e.envid},
                  {"requiretls", e.requireTls},
                  {"tls_required_no", e.tlsRequiredNo},
                  {"recipients", recipientsJson(*m)},
                  {"headers", headers}};
        if (body) j["content"] = *content;
        printJson(j);
        return 0;
    }
    std::printf("Queue ID: %s\nArrival:  %s\nSize:     %llu\nSender:   <%s>\n", m->id.c_str(),
                isoTime(e.arrival).c_str(), static_cast<unsigned long long>(m->contentSize),
                e.sender.c_str());
    std::printf("Client:   %s (HELO %s)%s%s\nTLS:      %s\n", e.clientAddress.c_str(),
                e.heloName.c_str(), e.authUser.empty() ? "" : ", authenticated as ",
                e.authUser.c_str(), e.tls.empty() ? "none" : e.tls.c_str());
    if (e.requireTls)
        std::printf(
            "REQUIRETLS: yes (RFC 8689: relayed only over authenticated TLS to hosts "
            "that offer REQUIRETLS)\n");
    if (e.tlsRequiredNo && !e.requireTls)
        std::printf(
            "TLS-Required: No (RFC 8689: the sender asks for delivery despite TLS policy; "
            "honoured only with delivery.allow_tls_required_no)\n");
    for (size_t i = 0; i < e.recipients.size(); ++i) {
        const auto& st = m->status[i];
        std::printf("Recipient <%s>: %s, %d attempt%s", e.recipients[i].address.c_str(),
                    queue::toString(st.state), st.attempts, st.attempts == 1 ? "" : "s");
        if (st.nextAttempt) std::printf(", next %s", isoTime(st.nextAttempt).c_str());
        std::printf("\n");
        if (!st.lastError.empty()) std::printf("    last result: %s\n", st.lastError.c_str());
        for (const auto& a : st.history) {
            std::printf("    %s  %s [%s]  tls %s  dane %s\n        %s\n", isoTime(a.at).c_str(),
                        a.mx.c_str(), a.ip.c_str(), a.tls.c_str(), a.dane.c_str(), a.reply.c_str());
        }
    }
    std::printf("\n%s", (body ? *content : headers).c_str());
    return 0;
}

std::optional<json> queueSummaryJson(const std::string& spoolDir, std::string* error) {
    std::vector<queue::StoredMessage> list;
    json damaged = json::array();
    if (!loadAll(spoolDir, Filter{}, &list, &damaged, error)) return std::nullopt;
    size_t quarantined = 0;
    if (auto spool = queue::Spool::open(spoolDir, queue::Spool::Mode::Reader); spool)
        quarantined = (*spool)->quarantinedCount();
    std::map<std::string, int> byState, byDomain, byError;
    const queue::StoredMessage* oldest = nullptr;
    for (const auto& m : list) {
        if (!oldest || m.envelope.arrival < oldest->envelope.arrival) oldest = &m;
        for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            const auto& st = m.status[i];
            ++byState[queue::toString(st.state)];
            if (st.state == queue::RcptState::Delivered || st.state == queue::RcptState::Bounced)
                continue;
            std::string domain = queue::domainOf(m.envelope.recipients[i].address);
            ++byDomain[domain];
            // The reason, without what varies per message (queue IDs, times).
            std::string reason(
                queue::utf8Prefix(st.lastError, kReasonPrefix));  // never half a character
            if (!reason.empty()) ++byError[domain + ": " + reason];
        }
    }
    return json{
        {"version", relay::kControlProtocolVersion},
        {"messages", list.size()},
        {"recipients_by_state", byState},
        {"pending_by_domain", byDomain},
        {"pending_by_reason", byError},
        {"oldest", oldest ? json{{"id", oldest->id}, {"arrival", isoTime(oldest->envelope.arrival)}}
                          : json(nullptr)},
        {"damaged", damaged.size()},
        {"quarantined", quarantined}};
}

int queueSummary(const std::string& spoolDir, bool asJson) {
    auto j = queueSummaryJson(spoolDir, nullptr);
    if (!j) return 1;
    if (asJson) {
        printJson(*j);
        return 0;
    }
    size_t n = (*j)["messages"].get<size_t>();
    std::printf("%zu message%s in the queue", n, n == 1 ? "" : "s");
    if ((*j)["oldest"].is_object())
        std::printf(", oldest %s (%s)", (*j)["oldest"]["id"].get<std::string>().c_str(),
                    (*j)["oldest"]["arrival"].get<std::string>().c_str());
    std::printf("\nrecipients by state:\n");
    for (const auto& [k, v] : (*j)["recipients_by_state"].items())
        std::printf("  %-10s %d\n", k.c_str(), v.get<int>());
    std::printf("waiting, by destination:\n");
    for (const auto& [k, v] : (*j)["pending_by_domain"].items())
        std::printf("  %-30s %d\n", k.c_str(), v.get<int>());
    std::printf("waiting, by last result:\n");
    for (const auto& [k, v] : (*j)["pending_by_reason"].items())
        std::printf("  %5d  %s\n", v.get<int>(), k.c_str());
    if (size_t d = (*j)["damaged"].get<size_t>(); d > 0)
        std::printf("%zu damaged file(s): see danectl queue list\n", d);
    if (size_t q = (*j)["quarantined"].get<size_t>(); q > 0)
        std::printf("%zu message(s) QUARANTINED as damaged: see %s/quarantine/ (*.why)\n", q,
                    spoolDir.c_str());
    return 0;
}

// queue hold|release|delete|flush|bounce|requeue: by IDs, a filter, or --all.
int queueAction(const Daemon& daemon, const QueueCommand& command, bool asJson) {
    const std::string& action = command.verb;
    json req = controlRequestFor("queue");
    req["action"] = action;
    if (!command.ids.empty()) {
        req["ids"] = command.ids;
    } else if (command.all) {
        req["all"] = true;
    } else {
        req["filter"] = command.filter.toJson();
    }
    auto r = ask(daemon, req, asJson);
    if (!r) return 1;
    const json& c = (*r)["counts"];
    bool partly = c["not-found"].get<int64_t>() > 0 || c["error"].get<int64_t>() > 0 ||
                  (*r)["matched"].get<int64_t>() == 0;
    if (asJson) {
        printJson(*r);
    } else {
        for (const auto& x : (*r)["results"]) {
            std::printf("%s: %s (%s)\n", x["id"].get<std::string>().c_str(),
                        x["result"].get<std::string>().c_str(),
                        x["detail"].get<std::string>().c_str());
        }
        std::printf("%s: %lld matched, %lld done, %lld unchanged, %lld not found, %lld failed\n",
                    action.c_str(), (*r)["matched"].get<long long>(), c["done"].get<long long>(),
                    c["unchanged"].get<long long>(), c["not-found"].get<long long>(),
                    c["error"].get<long long>());
    }
    int64_t notFound = c["not-found"].get<int64_t>();
    if ((*r)["matched"].get<int64_t>() == 0) {
        std::fprintf(stderr, "danectl: no message matched\n");
    } else if (notFound == (*r)["matched"].get<int64_t>()) {
        // Nothing was there to act on: "partly done" would say otherwise.
        std::string which;
        for (const auto& x : (*r)["results"]) which += " " + x["id"].get<std::string>();
        std::fprintf(stderr, "danectl: %s: not found:%s\n", action.c_str(), which.c_str());
    } else if (partly)
        std::fprintf(stderr, "danectl: %s: partly done (see above)\n", action.c_str());
    return partly ? 1 : 0;
}

}  // namespace danerelay::danectl
