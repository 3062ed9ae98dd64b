// Scheduler's pure helpers: what an attempt record keeps of a reply.
#include <gtest/gtest.h>

#include "queue/utf8.h"
#include "relay/scheduler.h"

namespace danerelay::relay {
namespace {

// A remote reply longer than the record keeps, with the cut inside a
// character: the record keeps whole characters only, so it is valid UTF-8
// as it stands (not made so later by a U+FFFD where the cut fell).
TEST(AttemptReply, IsCutBetweenCharactersNeverInsideOne) {
    std::string reply = "451 4.3.0 x";  // 11 bytes, then 2-byte characters: one at 511..512
    for (int i = 0; i < 300; ++i) reply += "\xC3\xA9";
    ASSERT_TRUE(queue::isValidUtf8(reply));
    auto kept = Scheduler::attemptReply(reply);
    EXPECT_EQ(kept.size(), 511u);  // 512 would end inside an e-acute
    EXPECT_TRUE(queue::isValidUtf8(kept));
    EXPECT_EQ(reply.compare(0, kept.size(), kept), 0);
    // A 4-byte character straddling the limit goes whole.
    std::string four(510, 'a');
    four += "\xF0\x9F\x93\xA7";  // U+1F4E7, bytes 510..513
    EXPECT_EQ(Scheduler::attemptReply(four), std::string(510, 'a'));
}

TEST(AttemptReply, ShortRepliesAndExactFitsAreKeptWhole) {
    EXPECT_EQ(Scheduler::attemptReply("250 2.0.0 ok"), "250 2.0.0 ok");
    std::string exact(510, 'a');
    exact += "\xC3\xA9";  // ends exactly at 512
    EXPECT_EQ(Scheduler::attemptReply(exact), exact);
    EXPECT_EQ(Scheduler::attemptReply(""), "");
}

}  // namespace
}  // namespace danerelay::relay
