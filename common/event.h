// event.h — RAII around libevent, for every module that runs on the loop
// (dns/, relay/).
//
// EventBasePtr owns an event_base. Event owns a struct event: registered with
// add(), unregistered in its destructor, neither copyable nor movable
// (libevent keeps its address). The callback reaches the owner through a
// capture-less trampoline. Nothing outside common/ calls event_new/event_free.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>

namespace danerelay {

struct EventBaseDeleter {
    void operator()(event_base* b) const { event_base_free(b); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseDeleter>;

class Event {
  public:
    using Callback = std::function<void(short what)>;
    // fd -1 and what 0: a timer.
    Event(event_base* base, int fd, short what, Callback cb);
    ~Event();
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;

    void add(const timeval* timeout = nullptr);
    void addSeconds(unsigned seconds);
    void addMillis(unsigned millis);
    void del();
    bool pending() const;

  private:
    static void trampoline(evutil_socket_t, short what, void* self);
    event* ev_;
    Callback cb_;
};

}  // namespace danerelay
