#include "relay/inbound/auth.h"

#include <crypt.h>

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace danerelay::relay {

namespace {
// A valid yescrypt hash of a random string: unknown users are checked against
// it so that their replies take as long as a known user's.
constexpr const char* kDummyHash =
    "$y$j9T$ZhdLRHbfCYMfVN9tq0h0M.$DeS7IzRxWGSH5TY5efuEjFVVYhuVhzwZfHT8GBBxmB5";
}  // namespace

Credentials Credentials::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open credentials file");
    Credentials c;
    std::string line;
    int lineNo = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        auto colon = line.find(':');
        std::string where = path + ":" + std::to_string(lineNo) + ": ";
        if (colon == std::string::npos || colon == 0) {
            throw std::runtime_error(where + "expected user:hash");
        }
        std::string user = line.substr(0, colon), hash = line.substr(colon + 1);
        if (hash.size() < 4 || hash[0] != '$') {
            throw std::runtime_error(where + "password for '" + user +
                                     "' is not a crypt(5) hash (make one with mkpasswd)");
        }
        if (!c.users_.emplace(user, hash).second) {
            throw std::runtime_error(where + "user '" + user + "' appears twice");
        }
    }
    return c;
}

bool Credentials::verify(const std::string& user, const std::string& password) const {
    auto it = users_.find(user);
    const std::string& hash = it != users_.end() ? it->second : std::string(kDummyHash);
    crypt_data data{};
    const char* out = crypt_r(password.c_str(), hash.c_str(), &data);
    if (!out || out[0] == '*') return false;
    std::string_view a(out), b(hash);
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0 && it != users_.end();
}

bool decodeSaslPlain(std::string_view d, std::string* user, std::string* password) {
    auto n1 = d.find('\0');
    if (n1 == std::string_view::npos) return false;
    auto n2 = d.find('\0', n1 + 1);
    if (n2 == std::string_view::npos) return false;
    std::string_view authz = d.substr(0, n1), authc = d.substr(n1 + 1, n2 - n1 - 1),
                     pass = d.substr(n2 + 1);
    if (authc.empty() || pass.find('\0') != std::string_view::npos) return false;
    if (!authz.empty() && authz != authc) return false;  // no proxy authorization
    *user = std::string(authc);
    *password = std::string(pass);
    return true;
}

}  // namespace danerelay::relay
