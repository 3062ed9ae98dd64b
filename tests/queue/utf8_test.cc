// Invalid UTF-8 from the network, at every place it turns into JSON or log
// text: the helper, the spool (envelope, state, files from older versions),
// the log, and the threads that must not die of an exception.
#include "queue/utf8.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "queue/queue_id.h"
#include "queue/spool.h"
#include "relay/runtime/committer.h"
#include "relay/runtime/log.h"

using namespace danerelay;
using namespace danerelay::queue;
namespace fs = std::filesystem;

namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ValidTextPassesUnchanged) {
    for (std::string s : {std::string(""), std::string("plain ascii"), std::string("\0nul", 4),
                          std::string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xA7"),
                          std::string("\xF4\x8F\xBF\xBF"), std::string("\xED\x9F\xBF")}) {
        EXPECT_TRUE(isValidUtf8(s)) << s;
        EXPECT_EQ(toValidUtf8(s), s);
    }
}

TEST(Utf8, InvalidSequencesBecomeReplacementCharacters) {
    struct Case {
        std::string in, out;
    };
    for (const auto& c : std::vector<Case>{
             {"451 4.3.0 \xff\xfe", "451 4.3.0 " + kFffd + kFffd},
             {"\x80", kFffd},                                      // lone continuation
             {"a\xC3", "a" + kFffd},                               // cut after the lead byte
             {"\xE2\x82", kFffd},                                  // one maximal subpart
             {"\xF0\x9F\x93", kFffd},                              // cut 4-byte sequence
             {"\xC0\xAF", kFffd + kFffd},                          // overlong '/'
             {"\xE0\x80\xAF", kFffd + kFffd + kFffd},              // overlong, 3 bytes
             {"\xED\xA0\x80", kFffd + kFffd + kFffd},              // surrogate U+D800
             {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
             {"\xF5\x80", kFffd + kFffd},
             {"\xE2\x82x", kFffd + "x"},  // the byte that broke it is kept
         }) {
        EXPECT_FALSE(isValidUtf8(c.in));
        EXPECT_EQ(toValidUtf8(c.in), c.out) << c.in;
        EXPECT_TRUE(isValidUtf8(toValidUtf8(c.in)));
    }
}

TEST(Utf8, EveryByteStringComesOutValidAndBounded) {
    // Every pair and many triples of bytes: the output is valid, at most 3x.
    std::string s(3, '\0');
    for (int a = 0; a < 256; ++a) {
        for (int b = 0; b < 256; b += (a >= 0xC0 ? 1 : 17)) {
            for (int c : {0x00, 0x41, 0x80, 0x8F, 0x90, 0xA0, 0xBF, 0xC0, 0xFF}) {
                s[0] = static_cast<char>(a);
                s[1] = static_cast<char>(b);
                s[2] = static_cast<char>(c);
                auto out = toValidUtf8(s);
                ASSERT_TRUE(isValidUtf8(out));
                ASSERT_LE(out.size(), 3 * s.size());
                // nlohmann agrees: its strict dump accepts the result.
                ASSERT_NO_THROW((void)nlohmann::json(out).dump());
            }
        }
    }
}

TEST(Utf8, PrefixNeverSplitsACharacter) {
    std::string s = "ab\xC3\xA9\xF0\x9F\x93\xA7z";
    EXPECT_EQ(utf8Prefix(s, 2), "ab");
    EXPECT_EQ(utf8Prefix(s, 3), "ab");
    EXPECT_EQ(utf8Prefix(s, 4), "ab\xC3\xA9");
    for (size_t n = 5; n < 8; ++n) EXPECT_EQ(utf8Prefix(s, n), "ab\xC3\xA9");
    EXPECT_EQ(utf8Prefix(s, 8), "ab\xC3\xA9\xF0\x9F\x93\xA7");
    EXPECT_EQ(utf8Prefix(s, 100), s);
    // A reply of 600 'é' cut at 512 bytes in the middle of one.
    std::string r = "451 ";
    while (r.size() < 600) r += "\xC3\xA9";
    auto cut = std::string(r.substr(0, 511));
    EXPECT_FALSE(isValidUtf8(cut));
    EXPECT_TRUE(isValidUtf8(utf8Prefix(r, 511)));
}

TEST(Utf8, DumpJsonNeverThrows) {
    nlohmann::json j = {{"reply", "451 4.3.0 \xff\xfe"}, {"envid", "\xff"}};
    EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what used to kill the daemon
    std::string text;
    ASSERT_NO_THROW(text = dumpJson(j));
    auto back = nlohmann::json::parse(text);
    EXPECT_EQ(back["reply"], "451 4.3.0 " + kFffd + kFffd);
}

class SpoolUtf8Test : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/danerelay-utf8-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        auto s = Spool::open(dir_ + "/spool", Spool::Mode::Writer);
        ASSERT_TRUE(s.ok());
        spool_ = std::move(*s);
    }
    void TearDown() override {
        spool_.reset();
        fs::remove_all(dir_);
    }
    NewMessage hostileMessage() {
        NewMessage m;
        m.id = ids_.next();
        m.envelope.sender = "al\xffice@example.org";
        m.envelope.recipients = {{"b\xc3\xb6\xff@example.com", "rfc822;\xff\xfe", kNotifyFailure}};
        m.envelope.envid = "\xff";  // ENVID=+FF
        m.envelope.smtputf8 = true;
        m.envelope.arrival = 1700000000;
        m.content = "Subject: x\r\n\r\nbody\r\n";
        return m;
    }
    std::string dir_;
    std::unique_ptr<Spool> spool_;
    QueueIdGenerator ids_;
};

TEST_F(SpoolUtf8Test, EnvelopeWithInvalidBytesCommitsAndLoads) {
    auto m = hostileMessage();
    Status st = Error::internal("not run");
    ASSERT_NO_THROW(st = spool_->commitOne(m));
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto loaded = spool_->load(m.id);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(loaded->envelope.envid, kFffd);
    EXPECT_FALSE(loaded->envelope.requireTls);  // written before REQUIRETLS: absent is false
    EXPECT_EQ(loaded->envelope.recipients[0].address, "b\xc3\xb6" + kFffd + "@example.com");
    EXPECT_TRUE(spool_->loadContent(m.id).ok());  // the checksum still holds
    EXPECT_EQ(spool_->recover().quarantined.size(), 0u);
}

TEST_F(SpoolUtf8Test, StateWithAnInvalidReplyIsWrittenAndReadBack) {
    auto m = hostileMessage();
    m.envelope = {};
    m.envelope.recipients = {{"bob@example.com", "", kNotifyNone}};
    ASSERT_TRUE(spool_->commitOne(m).ok());
    RecipientStatus rs;
    rs.state = RcptState::Deferred;
    rs.lastError = "4.3.0 451 4.3.0 \xff\xfe";
    std::string cut = "451 ";
    while (cut.size() < 511) cut += "\xC3\xA9";
    rs.history.push_back({1700000000, "mx.example", "192.0.2.1", "none", "none", cut + "\xC3"});
    Status st = Error::internal("not run");
    ASSERT_NO_THROW(st = spool_->writeStatus(m.id, {rs}));
    ASSERT_TRUE(st.ok()) << st.error().message;
    auto loaded = spool_->load(m.id);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(loaded->status[0].lastError, "4.3.0 451 4.3.0 " + kFffd + kFffd);
    EXPECT_EQ(loaded->status[0].history[0].reply, cut + kFffd);
    EXPECT_TRUE(isValidUtf8(loaded->status[0].history[0].reply));
}

TEST_F(SpoolUtf8Test, FilesWrittenWithRawInvalidBytesStillLoad) {
    // As an older writer could have left them: raw 0xFF inside JSON strings.
    nlohmann::json env = {
        {"sender", "PLACEHOLDER1"},
        {"recipients", {{{"address", "bob@example.com"}, {"orcpt", ""}, {"notify", 0}}}},
        {"envid", "PLACEHOLDER2"},
        {"ret", ""},
        {"smtputf8", false},
        {"8bitmime", false},
        {"arrival", 1700000000},
        {"client", "127.0.0.1"},
        {"helo", "h"},
        {"auth", ""},
        {"tls", ""}};
    std::string envText = env.dump();
    envText.replace(envText.find("PLACEHOLDER1"), 12, "a\xff@x");
    envText.replace(envText.find("PLACEHOLDER2"), 12, "\xfe");
    std::string content = "Subject: x\r\n\r\nbody\r\n";
    std::string id = ids_.next();
    {
        // The file as spool.cc lays it out: header (lengths, FNV-1a of
        // envelope and content), envelope, content.
        uint64_t h = 0xcbf29ce484222325ULL;
        for (auto part : {std::string_view(envText), std::string_view(content)}) {
            for (unsigned char c : part) {
                h ^= c;
                h *= 0x100000001b3ULL;
            }
        }
        char header[128];
        std::snprintf(header, sizeof header, "DRQ1 %zu %zu %016llx\n", envText.size(),
                      content.size(), static_cast<unsigned long long>(h));
        std::ofstream(dir_ + "/spool/msg/" + id, std::ios::binary) << header << envText << content;
        std::ofstream(dir_ + "/spool/state/" + id, std::ios::binary)
            << R"({"version":1,"recipients":[{"state":"deferred","next":0,"attempts":1,"error":"451 )"
            << "\xff\xfe"
            << R"(","history":[]}]})";
    }
    auto loaded = spool_->load(id);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_EQ(loaded->envelope.sender, "a" + kFffd + "@x");
    EXPECT_EQ(loaded->envelope.envid, kFffd);
    EXPECT_EQ(loaded->status[0].lastError, "451 " + kFffd + kFffd);
    EXPECT_TRUE(spool_->loadContent(id).ok());
    EXPECT_EQ(spool_->recover().quarantined.size(), 0u);
}

TEST(LogValue, InvalidUtf8IsEscapedLosslessly) {
    using danerelay::relay::formatLogValue;
    EXPECT_EQ(formatLogValue("451 4.3.0 \xff\xfe"), "\"451 4.3.0 \\xff\\xfe\"");
    EXPECT_EQ(formatLogValue("a\xff"), "\"a\\xff\"");         // no space, still quoted
    EXPECT_EQ(formatLogValue("caf\xC3\xA9"), "caf\xC3\xA9");  // valid UTF-8 stays plain
    EXPECT_EQ(formatLogValue("x\xE2\x82"), "\"x\\xe2\\x82\"");
    EXPECT_TRUE(isValidUtf8(formatLogValue("\xC3\xA9\xC3")));
}

// The threads: an exception in a task is an error result, never terminate.
struct Loop {
    EventBasePtr base{event_base_new()};
    relay::LoopPoster poster{base.get()};
    void runUntil(const bool& flag) {
        for (int i = 0; i < 500 && !flag; ++i) {
            timeval tv{0, 10000};
            event_base_loopexit(base.get(), &tv);
            event_base_dispatch(base.get());
        }
    }
};

TEST(Threads, WorkerTaskThatThrowsStillCompletes) {
    Loop loop;
    relay::WorkerPool pool(loop.poster, 1);
    bool done = false, ok = true;
    pool.run(
        [&ok] {
            ok = false;  // the error result the task starts from
            throw std::runtime_error("json type_error, say");
        },
        [&done] { done = true; });
    loop.runUntil(done);
    EXPECT_TRUE(done);
    EXPECT_FALSE(ok);
    // The pool still works.
    bool second = false;
    pool.run([] {}, [&second] { second = true; });
    loop.runUntil(second);
    EXPECT_TRUE(second);
}

TEST(Threads, PostedClosureThatThrowsDoesNotStopTheLoop) {
    Loop loop;
    bool after = false;
    loop.poster.post([] { throw std::logic_error("boom"); });
    loop.poster.post([&after] { after = true; });
    loop.runUntil(after);
    EXPECT_TRUE(after);
}

TEST_F(SpoolUtf8Test, CommitterTurnsAThrowIntoAnErrorPerMessage) {
    Loop loop;
    spool_->setCommitHook([](CommitStage s) {
        if (s == CommitStage::TmpWritten) throw std::runtime_error("disk on fire");
    });
    relay::Committer committer(loop.poster, *spool_, 8);
    bool done = false;
    Status result = okStatus();
    committer.submit(hostileMessage(), [&](Status s) {
        result = std::move(s);
        done = true;
    });
    loop.runUntil(done);
    ASSERT_TRUE(done);
    EXPECT_FALSE(result.ok());
    spool_->setCommitHook(nullptr);
    // The committer thread is still alive: the next message goes to disk.
    bool done2 = false;
    Status result2 = Error::internal("not run");
    committer.submit(hostileMessage(), [&](Status s) {
        result2 = std::move(s);
        done2 = true;
    });
    loop.runUntil(done2);
    ASSERT_TRUE(done2);
    EXPECT_TRUE(result2.ok()) << result2.error().message;
}

}  // namespace
