// danectl's shared output helpers and a spool-reading verb, as the operator
// sees them: UTC times, uptimes, and queue list's text and JSON on a real
// spool (the layout e2e.test_danectl and scripts read).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "danectl/client.h"
#include "danectl/output.h"
#include "danectl/queue.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/control/control.h"

namespace danerelay::danectl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(DanectlOutput, TimesAreUtcIso8601) {
    EXPECT_EQ(isoTime(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(isoTime(1'700'000'000), "2023-11-14T22:13:20Z");
}

TEST(DanectlOutput, DurationsShowDaysFromADayOn) {
    EXPECT_EQ(duration(0), "0h 00m 00s");
    EXPECT_EQ(duration(3 * 3600 + 4 * 60 + 5), "3h 04m 05s");
    EXPECT_EQ(duration(86399), "23h 59m 59s");
    EXPECT_EQ(duration(86400), "1d 00h 00m");
    EXPECT_EQ(duration(2 * 86400 + 3 * 3600 + 4 * 60 + 5), "2d 03h 04m");
}

TEST(DanectlClient, RequestsCarryTheProtocolVersion) {
    EXPECT_EQ(controlRequestFor("status"),
              (json{{"version", relay::kControlProtocolVersion}, {"verb", "status"}}));
}

TEST(DanectlClient, AnUnreachableDaemonIsAFailureWithAVersionedJsonError) {
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    auto r = ask({"/nonexistent-dir/control.sock", 1}, controlRequestFor("status"), true);
    std::string out = testing::internal::GetCapturedStdout();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_FALSE(r.has_value());
    auto doc = json::parse(out);
    EXPECT_EQ(doc["version"], relay::kControlProtocolVersion);
    EXPECT_EQ(doc["ok"], false);
    EXPECT_EQ(err, "danectl: " + doc["error"].get<std::string>() + "\n");
}

TEST(DanectlQueue, ListPrintsTheQueueAsBeforeInTextAndJson) {
    char tmpl[] = "/tmp/danerelay-danectl-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string id = queue::QueueIdGenerator().next();
    {
        auto spool = queue::Spool::open(dir + "/spool", queue::Spool::Mode::Writer);
        ASSERT_TRUE(spool.ok());
        queue::NewMessage m;
        m.id = id;
        m.envelope.sender = "alice@example.org";
        m.envelope.recipients = {{"bob@example.com", "", queue::kNotifyNone}};
        m.envelope.arrival = 1'700'000'000;
        m.content = "Subject: hi\r\n\r\nbody\r\n";
        ASSERT_TRUE((*spool)->commitOne(m).ok());
    }
    testing::internal::CaptureStdout();
    int rc = queueList(dir + "/spool", false, queue::Filter{});
    std::string text = testing::internal::GetCapturedStdout();
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(text,
              "-Queue ID-       --Size-- ----Arrival Time----  -Sender/Recipient-------\n" + id +
                  "         21 2023-11-14T22:13:20Z  alice@example.org\n"
                  "                                                 pending   bob@example.com\n"
                  "-- 21 bytes in 1 message.\n");
    testing::internal::CaptureStdout();
    rc = queueList(dir + "/spool", true, queue::Filter{});
    auto doc = json::parse(testing::internal::GetCapturedStdout());
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(doc["version"], relay::kControlProtocolVersion);
    ASSERT_EQ(doc["messages"].size(), 1u);
    EXPECT_EQ(doc["messages"][0]["arrival"], "2023-11-14T22:13:20Z");
    EXPECT_EQ(doc["damaged"], json::array());
    fs::remove_all(dir);
}

}  // namespace
}  // namespace danerelay::danectl
