// admin.h — what an operator's action (danectl queue hold|release|...) does
// to the stored state of one message's recipients, as a pure function: no
// disk, no clock, no log. The scheduler (relay/outbound/scheduler.h) loads
// the state, calls applyAdmin(), writes what it returns and reports it.
//
//   hold     Pending, Deferred      → Held
//   release  Held                   → Deferred if tried before (keeping its
//                                     retry time, as postsuper -H), else
//                                     Pending (goes now)
//   requeue  Deferred               → retry now, backoff from the start
//                                     (nextAttempt = now, attempts = 0)
//   flush    Pending, Deferred      → unchanged on disk; the scheduler
//                                     retries them now
//   delete   every recipient        → the message is removed
//   bounce   Pending, Deferred, Held → bounced with a DSN (done by the
//                                     delivery code, which records each)
//
// Delivered and Bounced recipients are final: no action changes them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "queue/envelope.h"

namespace danerelay::queue {

enum class AdminAction { Hold, Release, Delete, Flush, Bounce, Requeue };
const char* toString(AdminAction a);
// "hold", "release", ... as toString() writes them; false for anything else.
bool parseAdminAction(const std::string& s, AdminAction* out);

// What the operator is told about one message.
struct AdminResult {
    std::string id;
    // "done", "unchanged" (nothing to do: e.g. release of a message not on
    // hold), "not-found" (no such message, or delivered meanwhile), "error".
    std::string result;
    std::string detail;
};

struct AdminChange {
    std::vector<RecipientStatus> status;  // the new state
    size_t changed = 0;                   // recipients the action applies to
    bool write = false;                   // status must be written (durably)
    bool remove = false;                  // the message must be removed (delete)
    std::string result;                   // "done" or "unchanged"
    std::string detail;                   // "2 recipient(s)", "deleted", "no recipient on hold"
};
// When a message is next due from its recipients' states: now for a
// Pending one, its retry time for a Deferred one, the earliest of them;
// 0 when none is waiting (all final or held).
int64_t dueOf(const std::vector<RecipientStatus>& status, int64_t now);

// The action applied to `status` at `now` (the table above).
AdminChange applyAdmin(AdminAction a, std::vector<RecipientStatus> status, int64_t now);

}  // namespace danerelay::queue
