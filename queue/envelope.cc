#include "queue/envelope.h"

#include <nlohmann/json.hpp>

namespace danerelay::queue {

using nlohmann::json;

const char* toString(RcptState s) {
    switch (s) {
        case RcptState::Pending:
            return "pending";
        case RcptState::Deferred:
            return "deferred";
        case RcptState::Delivered:
            return "delivered";
        case RcptState::Bounced:
            return "bounced";
        case RcptState::Held:
            return "held";
    }
    return "unknown";
}

bool parseRcptState(const std::string& s, RcptState* out) {
    for (auto st : {RcptState::Pending, RcptState::Deferred, RcptState::Delivered,
                    RcptState::Bounced, RcptState::Held}) {
        if (s == toString(st)) {
            *out = st;
            return true;
        }
    }
    return false;
}

static const char* retName(DsnRet r) {
    switch (r) {
        case DsnRet::Full:
            return "FULL";
        case DsnRet::Headers:
            return "HDRS";
        case DsnRet::Unspecified:
            break;
    }
    return "";
}

json envelopeToJson(const Envelope& env) {
    json rcpts = json::array();
    for (const auto& r : env.recipients) {
        rcpts.push_back({{"address", r.address}, {"orcpt", r.orcpt}, {"notify", r.notify}});
    }
    return {{"sender", env.sender},
            {"recipients", rcpts},
            {"envid", env.envid},
            {"ret", retName(env.ret)},
            {"smtputf8", env.smtputf8},
            {"8bitmime", env.eightBitMime},
            {"requiretls", env.requireTls},
            {"tls_required_no", env.tlsRequiredNo},
            {"arrival", env.arrival},
            {"client", env.clientAddress},
            {"helo", env.heloName},
            {"auth", env.authUser},
            {"tls", env.tls}};
}

namespace {

// Typed field access that reports which field is wrong instead of throwing.
template <typename T>
bool field(const json& j, const char* name, T* out, std::string* err) {
    auto it = j.find(name);
    if (it == j.end()) {
        *err = std::string("missing field '") + name + "'";
        return false;
    }
    if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) {
            *err = std::string("field '") + name + "' is not a string";
            return false;
        }
    } else if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) {
            *err = std::string("field '") + name + "' is not a boolean";
            return false;
        }
    } else {
        if (!it->is_number_integer()) {
            *err = std::string("field '") + name + "' is not an integer";
            return false;
        }
    }
    *out = it->get<T>();
    return true;
}

}  // namespace

Result<Envelope> envelopeFromJson(const json& j) {
    if (!j.is_object()) return Error::internal("envelope is not a JSON object");
    Envelope env;
    std::string err, ret;
    if (!field(j, "sender", &env.sender, &err) || !field(j, "envid", &env.envid, &err) ||
        !field(j, "ret", &ret, &err) || !field(j, "smtputf8", &env.smtputf8, &err) ||
        !field(j, "8bitmime", &env.eightBitMime, &err) ||
        !field(j, "arrival", &env.arrival, &err) || !field(j, "client", &env.clientAddress, &err) ||
        !field(j, "helo", &env.heloName, &err) || !field(j, "auth", &env.authUser, &err) ||
        !field(j, "tls", &env.tls, &err)) {
        return Error::internal("envelope: " + err);
    }
    // Written since REQUIRETLS (absent in older spools: false).
    if (j.contains("requiretls") && !field(j, "requiretls", &env.requireTls, &err))
        return Error::internal("envelope: " + err);
    if (j.contains("tls_required_no") && !field(j, "tls_required_no", &env.tlsRequiredNo, &err))
        return Error::internal("envelope: " + err);
    if (ret == "FULL") {
        env.ret = DsnRet::Full;
    } else if (ret == "HDRS") {
        env.ret = DsnRet::Headers;
    } else if (!ret.empty()) {
        return Error::internal("envelope: bad 'ret' value");
    }
    auto rc = j.find("recipients");
    if (rc == j.end() || !rc->is_array() || rc->empty()) {
        return Error::internal("envelope: 'recipients' is not a non-empty array");
    }
    for (const auto& rj : *rc) {
        Recipient r;
        if (!rj.is_object() || !field(rj, "address", &r.address, &err) ||
            !field(rj, "orcpt", &r.orcpt, &err) || !field(rj, "notify", &r.notify, &err)) {
            return Error::internal("envelope recipient: " + (err.empty() ? "not an object" : err));
        }
        env.recipients.push_back(std::move(r));
    }
    return env;
}

json statusToJson(const std::vector<RecipientStatus>& status) {
    json arr = json::array();
    for (const auto& s : status) {
        json hist = json::array();
        for (const auto& a : s.history) {
            hist.push_back({{"at", a.at},
                            {"mx", a.mx},
                            {"ip", a.ip},
                            {"tls", a.tls},
                            {"dane", a.dane},
                            {"reply", a.reply}});
        }
        arr.push_back({{"state", toString(s.state)},
                       {"next", s.nextAttempt},
                       {"attempts", s.attempts},
                       {"error", s.lastError},
                       {"history", hist}});
    }
    return {{"version", 1}, {"recipients", arr}};
}

Result<std::vector<RecipientStatus>> statusFromJson(const json& j) {
    if (!j.is_object()) return Error::internal("status is not a JSON object");
    auto rc = j.find("recipients");
    if (rc == j.end() || !rc->is_array()) return Error::internal("status: no recipients array");
    std::vector<RecipientStatus> out;
    std::string err, state;
    for (const auto& sj : *rc) {
        RecipientStatus s;
        if (!sj.is_object() || !field(sj, "state", &state, &err) ||
            !field(sj, "next", &s.nextAttempt, &err) || !field(sj, "attempts", &s.attempts, &err) ||
            !field(sj, "error", &s.lastError, &err)) {
            return Error::internal("status: " + (err.empty() ? "entry not an object" : err));
        }
        if (!parseRcptState(state, &s.state)) return Error::internal("status: bad state");
        // Absent in state files written before attempts were recorded.
        if (auto h = sj.find("history"); h != sj.end()) {
            if (!h->is_array() || h->size() > RecipientStatus::kMaxHistory)
                return Error::internal("status: bad history");
            for (const auto& aj : *h) {
                AttemptRecord a;
                if (!aj.is_object() || !field(aj, "at", &a.at, &err) ||
                    !field(aj, "mx", &a.mx, &err) || !field(aj, "ip", &a.ip, &err) ||
                    !field(aj, "tls", &a.tls, &err) || !field(aj, "dane", &a.dane, &err) ||
                    !field(aj, "reply", &a.reply, &err)) {
                    return Error::internal("status: history: " +
                                           (err.empty() ? "entry not an object" : err));
                }
                s.history.push_back(std::move(a));
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace danerelay::queue
