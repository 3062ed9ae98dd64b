#include "danectl/output.h"

#include <cstdio>
#include <ctime>

#include "queue/utf8.h"

namespace danerelay::danectl {

namespace {

constexpr int64_t kMinute = 60;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

}  // namespace

std::string isoTime(int64_t t) {
    time_t tt = static_cast<time_t>(t);
    tm tmv{};
    gmtime_r(&tt, &tmv);
    char buf[32];  // "YYYY-MM-DDTHH:MM:SSZ" and room for a year past 9999
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    return buf;
}

std::string duration(int64_t s) {
    char buf[64];  // three numbers of at most 19 digits, and their units
    if (s >= kDay) {
        std::snprintf(buf, sizeof buf, "%lldd %02lldh %02lldm", (long long)(s / kDay),
                      (long long)(s % kDay / kHour), (long long)(s % kHour / kMinute));
    } else {
        std::snprintf(buf, sizeof buf, "%lldh %02lldm %02llds", (long long)(s / kHour),
                      (long long)(s % kHour / kMinute), (long long)(s % kMinute));
    }
    return buf;
}

void printJson(const nlohmann::json& j) {
    std::string text = queue::dumpJson(j, 2) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
}

void printError(const std::string& message) {
    std::fprintf(stderr, "danectl: %s\n", message.c_str());
}

}  // namespace danerelay::danectl
