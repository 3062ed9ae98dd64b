#include "common/event.h"

namespace danerelay {

Event::Event(event_base* base, int fd, short what, Callback cb)
    : ev_(event_new(base, fd, what, &Event::trampoline, this)), cb_(std::move(cb)) {}

Event::~Event() {
    if (ev_) event_free(ev_);
}

void Event::trampoline(evutil_socket_t, short what, void* self) {
    static_cast<Event*>(self)->cb_(what);
}

void Event::add(const timeval* timeout) {
    event_add(ev_, timeout);
}

void Event::addSeconds(unsigned seconds) {
    timeval tv{static_cast<time_t>(seconds), 0};
    event_add(ev_, &tv);
}

void Event::addMillis(unsigned millis) {
    timeval tv{static_cast<time_t>(millis / 1000), static_cast<suseconds_t>(millis % 1000) * 1000};
    event_add(ev_, &tv);
}

void Event::del() {
    event_del(ev_);
}

bool Event::pending() const {
    return event_pending(ev_, EV_READ | EV_WRITE | EV_TIMEOUT, nullptr) != 0;
}

}  // namespace danerelay
