#include "relay/outbound/connection_cache.h"

#include "relay/outbound/smtp_client.h"

#include <algorithm>

namespace danerelay::relay {

std::shared_ptr<SmtpClient> ConnectionCache::take(const std::string& key) {
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->first == key) {
            auto c = std::move(it->second);
            idle_.erase(it);
            ++reused_;
            return c;
        }
    }
    return nullptr;
}

bool ConnectionCache::put(const std::string& key, std::shared_ptr<SmtpClient> c) {
    if (idle_.size() >= maxIdle_) return false;
    idle_.emplace_back(key, std::move(c));
    return true;
}

std::shared_ptr<SmtpClient> ConnectionCache::remove(const SmtpClient* c) {
    auto it = std::find_if(idle_.begin(), idle_.end(),
                           [c](const auto& e) { return e.second.get() == c; });
    if (it == idle_.end()) return nullptr;
    auto found = std::move(it->second);
    idle_.erase(it);
    return found;
}

}  // namespace danerelay::relay
