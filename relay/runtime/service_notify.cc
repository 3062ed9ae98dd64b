#include "relay/runtime/service_notify.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "relay/runtime/log.h"

namespace danerelay::relay {

namespace {
// A STATUS= value ends at a newline (the next would be read as a variable).
std::string oneLine(std::string s) {
    for (char& c : s) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    return s;
}

std::string errnoText(int e) {
    return std::strerror(e);
}
}  // namespace

ServiceNotifier::ServiceNotifier(event_base* base)
    : timer_(base, -1, 0, [this](short) { ping(); }) {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    enabled_ = socket != nullptr && *socket != '\0';
    uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is us.
    if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_ = std::chrono::microseconds(usec);
        ping();
    }
}

void ServiceNotifier::send(const std::string& state) {
    if (!enabled_) return;
    int rc = sd_notify(0, state.c_str());
    if (rc < 0 && !warned_) {
        // Not fatal: the daemon works without its supervisor hearing it; said
        // once, not at every watchdog ping.
        warned_ = true;
        logEvent("warning", {{"where", "sd_notify"},
                             {"reason", "cannot reach $NOTIFY_SOCKET: " + errnoText(-rc)}});
    }
}

void ServiceNotifier::ping() {
    send("WATCHDOG=1");
    auto half = std::chrono::duration_cast<std::chrono::milliseconds>(watchdog_ / 2);
    timer_.addMillis(static_cast<unsigned>(std::max<int64_t>(half.count(), 1)));
}

void ServiceNotifier::ready(const std::string& status) {
    send("READY=1\nSTATUS=" + oneLine(status));
}

void ServiceNotifier::reloading() {
    send("RELOADING=1\nSTATUS=reloading the policy");
}

void ServiceNotifier::reloaded() {
    send("READY=1");
}

void ServiceNotifier::stopping() {
    send("STOPPING=1\nSTATUS=stopping");
}

void ServiceNotifier::status(const std::string& text) {
    send("STATUS=" + oneLine(text));
}

}  // namespace danerelay::relay
