#include "relay/runtime/mail_date.h"

namespace danerelay::relay {

std::string rfc5322Date(std::time_t t) {
    tm tmv{};
    gmtime_r(&t, &tmv);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tmv);
    return buf;
}

}  // namespace danerelay::relay
