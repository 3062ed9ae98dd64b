#include "queue/admin.h"

#include <algorithm>

namespace danerelay::queue {

const char* toString(AdminAction a) {
    switch (a) {
        case AdminAction::Hold:
            return "hold";
        case AdminAction::Release:
            return "release";
        case AdminAction::Delete:
            return "delete";
        case AdminAction::Flush:
            return "flush";
        case AdminAction::Bounce:
            return "bounce";
        case AdminAction::Requeue:
            return "requeue";
    }
    return "?";
}

bool parseAdminAction(const std::string& s, AdminAction* out) {
    for (auto a : {AdminAction::Hold, AdminAction::Release, AdminAction::Delete, AdminAction::Flush,
                   AdminAction::Bounce, AdminAction::Requeue}) {
        if (s == toString(a)) {
            *out = a;
            return true;
        }
    }
    return false;
}

namespace {

bool waiting(const RecipientStatus& st) {
    return st.state == RcptState::Pending || st.state == RcptState::Deferred;
}

// Applies a to one recipient; true if it applies.
bool applyOne(AdminAction a, RecipientStatus& st, int64_t now) {
    switch (a) {
        case AdminAction::Hold:
            if (!waiting(st)) return false;
            st.state = RcptState::Held;
            return true;
        case AdminAction::Release:
            if (st.state != RcptState::Held) return false;
            st.state = st.attempts > 0 ? RcptState::Deferred : RcptState::Pending;
            return true;
        case AdminAction::Requeue:
            if (st.state != RcptState::Deferred) return false;
            st.nextAttempt = now;
            st.attempts = 0;
            return true;
        case AdminAction::Flush:
            return waiting(st);
        case AdminAction::Bounce:
            return waiting(st) || st.state == RcptState::Held;
        case AdminAction::Delete:
            return true;
    }
    return false;
}

const char* unchangedDetail(AdminAction a) {
    switch (a) {
        case AdminAction::Release:
            return "no recipient on hold";
        case AdminAction::Requeue:
            return "no deferred recipient";
        case AdminAction::Bounce:
            return "no recipient left to bounce";
        default:
            return "no recipient waiting for delivery";
    }
}

}  // namespace

int64_t dueOf(const std::vector<RecipientStatus>& status, int64_t now) {
    int64_t due = 0;
    for (const auto& st : status) {
        int64_t d = st.state == RcptState::Pending    ? now
                    : st.state == RcptState::Deferred ? st.nextAttempt
                                                      : 0;
        if (d != 0) due = due == 0 ? d : std::min(due, d);
    }
    return due;
}

AdminChange applyAdmin(AdminAction a, std::vector<RecipientStatus> status, int64_t now) {
    AdminChange c;
    c.status = std::move(status);
    for (auto& st : c.status) {
        if (applyOne(a, st, now)) ++c.changed;
    }
    c.remove = a == AdminAction::Delete;
    c.write = c.changed > 0 &&
              (a == AdminAction::Hold || a == AdminAction::Release || a == AdminAction::Requeue);
    if (c.changed == 0 && !c.remove) {
        c.result = "unchanged";
        c.detail = unchangedDetail(a);
        return c;
    }
    c.result = "done";
    c.detail = c.remove ? "deleted" : std::to_string(c.changed) + " recipient(s)";
    return c;
}

}  // namespace danerelay::queue
