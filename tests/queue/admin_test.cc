// queue/admin.h: each operator action against recipients in each state.
#include "queue/admin.h"

#include <gtest/gtest.h>

using namespace danerelay::queue;

namespace {

RecipientStatus rcpt(RcptState s, int attempts = 0, int64_t next = 0) {
    RecipientStatus st;
    st.state = s;
    st.attempts = attempts;
    st.nextAttempt = next;
    return st;
}

// One recipient in each state: Pending, Deferred (tried twice), Delivered,
// Bounced, Held (never tried), Held (tried).
std::vector<RecipientStatus> everyState() {
    return {rcpt(RcptState::Pending),      rcpt(RcptState::Deferred, 2, 5000),
            rcpt(RcptState::Delivered, 1), rcpt(RcptState::Bounced, 1),
            rcpt(RcptState::Held, 0, 0),   rcpt(RcptState::Held, 3, 7000)};
}

std::vector<RcptState> states(const AdminChange& c) {
    std::vector<RcptState> out;
    for (const auto& st : c.status) out.push_back(st.state);
    return out;
}

using enum RcptState;

TEST(Admin, NamesRoundTrip) {
    for (auto a : {AdminAction::Hold, AdminAction::Release, AdminAction::Delete, AdminAction::Flush,
                   AdminAction::Bounce, AdminAction::Requeue}) {
        AdminAction back;
        ASSERT_TRUE(parseAdminAction(toString(a), &back));
        EXPECT_EQ(back, a);
    }
    AdminAction x;
    EXPECT_FALSE(parseAdminAction("Hold", &x));
    EXPECT_FALSE(parseAdminAction("", &x));
}

TEST(Admin, HoldTakesWhatIsWaiting) {
    auto c = applyAdmin(AdminAction::Hold, everyState(), 100);
    EXPECT_EQ(states(c), (std::vector{Held, Held, Delivered, Bounced, Held, Held}));
    EXPECT_EQ(c.changed, 2u);
    EXPECT_TRUE(c.write);
    EXPECT_FALSE(c.remove);
    EXPECT_EQ(c.result, "done");
    EXPECT_EQ(c.detail, "2 recipient(s)");
    EXPECT_EQ(c.status[1].nextAttempt, 5000);  // kept for the release
}

TEST(Admin, ReleaseRestoresWhatWasHeld) {
    auto c = applyAdmin(AdminAction::Release, everyState(), 100);
    // Never tried: Pending (goes now); tried: Deferred with its retry time.
    EXPECT_EQ(states(c), (std::vector{Pending, Deferred, Delivered, Bounced, Pending, Deferred}));
    EXPECT_EQ(c.status[5].nextAttempt, 7000);
    EXPECT_EQ(c.changed, 2u);
    EXPECT_TRUE(c.write);
    auto none = applyAdmin(AdminAction::Release, {rcpt(Pending)}, 100);
    EXPECT_EQ(none.result, "unchanged");
    EXPECT_EQ(none.detail, "no recipient on hold");
    EXPECT_FALSE(none.write);
}

TEST(Admin, RequeueRetriesDeferredNowWithFreshBackoff) {
    auto c = applyAdmin(AdminAction::Requeue, everyState(), 100);
    EXPECT_EQ(states(c), (std::vector{Pending, Deferred, Delivered, Bounced, Held, Held}));
    EXPECT_EQ(c.status[1].nextAttempt, 100);
    EXPECT_EQ(c.status[1].attempts, 0);
    EXPECT_EQ(c.status[5].attempts, 3);  // held: untouched
    EXPECT_EQ(c.changed, 1u);
    EXPECT_TRUE(c.write);
    auto none = applyAdmin(AdminAction::Requeue, {rcpt(Held, 1, 9)}, 100);
    EXPECT_EQ(none.result, "unchanged");
    EXPECT_EQ(none.detail, "no deferred recipient");
}

TEST(Admin, FlushChangesNothingOnDisk) {
    auto c = applyAdmin(AdminAction::Flush, everyState(), 100);
    EXPECT_EQ(c.changed, 2u);
    EXPECT_FALSE(c.write);
    EXPECT_EQ(c.result, "done");
    EXPECT_EQ(c.status[1].nextAttempt, 5000);
    auto none = applyAdmin(AdminAction::Flush, {rcpt(Held), rcpt(Delivered)}, 100);
    EXPECT_EQ(none.result, "unchanged");
    EXPECT_EQ(none.detail, "no recipient waiting for delivery");
}

TEST(Admin, DeleteRemovesWhateverTheState) {
    auto c = applyAdmin(AdminAction::Delete, {rcpt(Delivered), rcpt(Held)}, 100);
    EXPECT_TRUE(c.remove);
    EXPECT_FALSE(c.write);
    EXPECT_EQ(c.result, "done");
    EXPECT_EQ(c.detail, "deleted");
}

TEST(Admin, BounceCountsWhatIsNotFinal) {
    auto c = applyAdmin(AdminAction::Bounce, everyState(), 100);
    EXPECT_EQ(c.changed, 4u);  // Pending, Deferred, both Held
    EXPECT_FALSE(c.write);     // the delivery code records each bounce
    auto none = applyAdmin(AdminAction::Bounce, {rcpt(Delivered)}, 100);
    EXPECT_EQ(none.result, "unchanged");
    EXPECT_EQ(none.detail, "no recipient left to bounce");
}

TEST(Admin, DueOfIsTheEarliestWaitingRecipient) {
    EXPECT_EQ(dueOf(everyState(), 100), 100);  // a Pending one: now
    EXPECT_EQ(dueOf({rcpt(Deferred, 1, 5000), rcpt(Deferred, 1, 4000)}, 100), 4000);
    EXPECT_EQ(dueOf({rcpt(Held), rcpt(Delivered), rcpt(Bounced)}, 100), 0);
}

}  // namespace
