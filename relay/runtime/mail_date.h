// mail_date.h — the date as mail headers write it (RFC 5322 3.3), in UTC:
// "Wed, 02 Dec 2026 14:55:00 +0000". For the Received: header inbound and
// the DSN's Arrival-Date outbound.
#pragma once

#include <ctime>
#include <string>

namespace danerelay::relay {

std::string rfc5322Date(std::time_t t);

}  // namespace danerelay::relay
