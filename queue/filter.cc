#include "queue/filter.h"

#include <cctype>

namespace danerelay::queue {

std::string lowerCase(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string domainOf(const std::string& address) {
    auto at = address.rfind('@');
    return lowerCase(at == std::string::npos ? "" : address.substr(at + 1));
}

bool Filter::matches(const StoredMessage& m, int64_t now) const {
    if (!sender.empty() && lowerCase(m.envelope.sender) != lowerCase(sender)) return false;
    if (olderThan >= 0 && now - m.envelope.arrival < olderThan) return false;
    for (size_t i = 0; i < m.envelope.recipients.size() && i < m.status.size(); ++i) {
        if (!state.empty() && toString(m.status[i].state) != state) continue;
        if (!domain.empty() && domainOf(m.envelope.recipients[i].address) != lowerCase(domain))
            continue;
        return true;
    }
    return false;
}

nlohmann::json Filter::toJson() const {
    nlohmann::json j = nlohmann::json::object();
    if (!state.empty()) j["state"] = state;
    if (!domain.empty()) j["domain"] = domain;
    if (!sender.empty()) j["sender"] = sender;
    if (olderThan >= 0) j["older_than"] = olderThan;
    return j;
}

Result<Filter> Filter::fromJson(const nlohmann::json& j) {
    if (!j.is_object()) return Error::permanent("filter: must be an object");
    Filter f;
    for (const auto& [key, v] : j.items()) {
        if (key == "older_than") {
            if (!v.is_number_integer() || v.get<int64_t>() < 0)
                return Error::permanent("filter.older_than: must be a non-negative integer");
            f.olderThan = v.get<int64_t>();
            continue;
        }
        if (!v.is_string() || v.get<std::string>().size() > 512)
            return Error::permanent("filter." + key + ": must be a string (at most 512 bytes)");
        if (key == "state") {
            RcptState ignored;
            if (!parseRcptState(v.get<std::string>(), &ignored))
                return Error::permanent("filter.state: unknown state '" + v.get<std::string>() +
                                        "' (pending, deferred, delivered, bounced, held)");
            f.state = v.get<std::string>();
        } else if (key == "domain") {
            f.domain = v.get<std::string>();
        } else if (key == "sender") {
            f.sender = v.get<std::string>();
        } else {
            return Error::permanent("filter: unknown key '" + key + "'");
        }
    }
    return f;
}

}  // namespace danerelay::queue
