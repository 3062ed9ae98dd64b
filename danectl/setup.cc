#include "danectl/setup.h"

#include <crypt.h>

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "danectl/output.h"
#include "policy/policy.h"
#include "relay/control/control.h"

namespace danerelay::danectl {

using nlohmann::json;

namespace {

// yescrypt, with libxcrypt's default cost (0).
constexpr const char* kHashPrefix = "$y$";
constexpr unsigned long kHashCost = 0;

}  // namespace

int policyCheck(const std::string& dir, bool asJson) {
    auto p = policy::PolicySet::loadDir(dir);
    if (asJson) {
        json j = {{"version", relay::kControlProtocolVersion}, {"ok", p.ok()}, {"dir", dir}};
        if (p) {
            j["entries"] = (*p)->size();
            j["files"] = (*p)->files();
        } else {
            j["error"] = p.error().message;
        }
        printJson(j);
    }
    if (!p) {
        std::fprintf(stderr, "%s\n", p.error().message.c_str());
        return 1;
    }
    if (!asJson)
        std::printf("%s: ok, %zu entries in %zu files\n", dir.c_str(), (*p)->size(), (*p)->files());
    return 0;
}

int passwd(bool asJson) {
    std::string password;
    if (!std::getline(std::cin, password) || password.empty()) {
        std::fprintf(stderr, "danectl passwd: no password on standard input\n");
        return 2;
    }
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn(kHashPrefix, kHashCost, nullptr, 0, salt, sizeof salt)) {
        std::fprintf(stderr, "danectl passwd: cannot make a salt\n");
        return 1;
    }
    crypt_data data{};
    const char* hash = crypt_r(password.c_str(), salt, &data);
    if (!hash || hash[0] == '*') {
        std::fprintf(stderr, "danectl passwd: crypt failed\n");
        return 1;
    }
    if (asJson) {
        printJson({{"version", relay::kControlProtocolVersion}, {"hash", hash}});
    } else {
        std::printf("%s\n", hash);
    }
    return 0;
}

}  // namespace danerelay::danectl
