// auth.h — SMTP AUTH (RFC 4954) for submitting clients: the credentials file
// and the PLAIN / LOGIN decoding.
//
// The credentials file has one "user:hash" per line ('#' comments, blank
// lines allowed), the hash in crypt(5) form, e.g. yescrypt "$y$..." as made by
// mkpasswd(1). Plaintext passwords are refused at load, with file:line.
// verify() is deliberately slow (that is the point of yescrypt): call it from
// a worker thread, never on the event loop.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace danerelay::relay {

class Credentials {
  public:
    // Throws ConfigError-like std::runtime_error naming file:line.
    static Credentials load(const std::string& path);
    // Constant-time compare of crypt() output. Unknown users cost the same.
    bool verify(const std::string& user, const std::string& password) const;
    size_t size() const { return users_.size(); }

  private:
    std::map<std::string, std::string, std::less<>> users_;
};

// RFC 4616: "authzid NUL authcid NUL passwd". authzid must be empty or equal authcid.
bool decodeSaslPlain(std::string_view decoded, std::string* user, std::string* password);

}  // namespace danerelay::relay
