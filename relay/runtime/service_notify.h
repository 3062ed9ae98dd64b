// service_notify.h — telling systemd how the daemon is doing (sd_notify(3)),
// for a unit of Type=notify (etc/systemd/danerelayd.service).
//
//   ready(status)    READY=1 once the listeners are bound and the spool is
//                    recovered: systemd starts dependants only then
//   reloading()      RELOADING=1 when a policy reload starts; reloaded()
//                    READY=1 when it is done (whether it took or not)
//   stopping()       STOPPING=1 when a stop begins
//   status(text)     STATUS=text, what `systemctl status` shows (queue size,
//                    DNSSEC state)
//   the watchdog     when the unit sets WatchdogSec=, WATCHDOG=1 every half
//                    of it from a timer on the event loop: a loop that is
//                    stuck stops pinging and systemd restarts the daemon.
//
// Without $NOTIFY_SOCKET (started by hand, in tests, by another supervisor)
// every call does nothing. Everything runs on the loop thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/event.h"

namespace danerelay::relay {

class ServiceNotifier {
  public:
    explicit ServiceNotifier(event_base* base);
    ServiceNotifier(const ServiceNotifier&) = delete;
    ServiceNotifier& operator=(const ServiceNotifier&) = delete;

    // True when a service manager listens ($NOTIFY_SOCKET set).
    bool enabled() const { return enabled_; }
    // The watchdog interval systemd asked for (0: none).
    std::chrono::microseconds watchdogInterval() const { return watchdog_; }

    void ready(const std::string& status);
    void reloading();
    void reloaded();
    void stopping();
    void status(const std::string& text);

  private:
    void send(const std::string& state);
    void ping();
    bool enabled_ = false;
    bool warned_ = false;
    std::chrono::microseconds watchdog_{0};
    Event timer_;
};

}  // namespace danerelay::relay
