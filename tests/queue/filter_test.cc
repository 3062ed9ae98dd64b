#include "queue/filter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "queue/envelope.h"

using namespace danerelay::queue;
using nlohmann::json;

namespace {

StoredMessage message() {
    StoredMessage m;
    m.id = "0660DC2C3B11E6";
    m.envelope.sender = "Boss@Inside.Example";
    m.envelope.arrival = 1000;
    m.envelope.recipients = {{"a@Example.org", "", 0}, {"b@other.example", "", 0}};
    m.status.resize(2);
    m.status[0].state = RcptState::Deferred;
    m.status[1].state = RcptState::Delivered;
    return m;
}

TEST(Filter, StateAndDomainMustMatchTheSameRecipient) {
    auto m = message();
    Filter f;
    f.state = "deferred";
    f.domain = "example.org";
    EXPECT_TRUE(f.matches(m, 2000));
    f.domain = "other.example";  // b is at other.example but delivered, not deferred
    EXPECT_FALSE(f.matches(m, 2000));
}

TEST(Filter, SenderIsCaseInsensitiveAndAgeCounts) {
    auto m = message();
    Filter f;
    f.sender = "boss@inside.example";
    EXPECT_TRUE(f.matches(m, 2000));
    f.olderThan = 500;
    EXPECT_TRUE(f.matches(m, 1500));
    EXPECT_FALSE(f.matches(m, 1499));
}

TEST(Filter, JsonRoundTripAndStrictParsing) {
    Filter f;
    f.state = "held";
    f.domain = "example.org";
    f.olderThan = 60;
    auto back = Filter::fromJson(f.toJson());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->state, "held");
    EXPECT_EQ(back->olderThan, 60);
    EXPECT_TRUE(Filter::fromJson(json::object())->empty());
    EXPECT_FALSE(Filter::fromJson(json{{"state", "sleeping"}}).ok());
    EXPECT_FALSE(Filter::fromJson(json{{"colour", "red"}}).ok());
    EXPECT_FALSE(Filter::fromJson(json{{"older_than", -1}}).ok());
    EXPECT_FALSE(Filter::fromJson(json{{"domain", 5}}).ok());
    EXPECT_FALSE(Filter::fromJson(json::array()).ok());
}

TEST(RecipientStatusJson, HistoryRoundTripsAndOldFilesWithoutItStillLoad) {
    std::vector<RecipientStatus> st(1);
    st[0].state = RcptState::Deferred;
    st[0].attempts = 1;
    st[0].history.push_back(
        {42, "mx1.example.org", "192.0.2.1", "TLS1.3", "matched 3 1 1", "250 ok"});
    auto back = statusFromJson(statusToJson(st));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, st);
    auto old = json::parse(R"({"version":1,"recipients":[
        {"state":"deferred","next":5,"attempts":1,"error":"4.4.1 x"}]})");
    auto loaded = statusFromJson(old);
    ASSERT_TRUE(loaded.ok());
    EXPECT_TRUE((*loaded)[0].history.empty());
    old["recipients"][0]["history"] = json::array({json{{"at", "soon"}}});
    EXPECT_FALSE(statusFromJson(old).ok());  // damaged history: an error, not a crash
}

}  // namespace
