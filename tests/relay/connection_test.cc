#include "relay/runtime/connection.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

#include "common/unique_fd.h"

using namespace danerelay;
using namespace danerelay::relay;

namespace {

struct Pair {
    UniqueFd a, b;
    Pair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
    }
};

TEST(ConnectionTest, ReadOnceSaysDataWouldBlockAndEof) {
    Pair p;
    char buf[16];
    EXPECT_EQ(readOnce(p.a.get(), nullptr, buf, sizeof buf).outcome, IoOutcome::WouldBlock);
    ASSERT_EQ(::send(p.b.get(), "hello", 5, 0), 5);
    auto r = readOnce(p.a.get(), nullptr, buf, sizeof buf);
    EXPECT_EQ(r.outcome, IoOutcome::Progress);
    EXPECT_EQ(std::string(buf, r.bytes), "hello");
    // at most `size` bytes per call
    ASSERT_EQ(::send(p.b.get(), "0123456789", 10, 0), 10);
    r = readOnce(p.a.get(), nullptr, buf, 4);
    EXPECT_EQ(std::string(buf, r.bytes), "0123");
    p.b.reset();
    r = readOnce(p.a.get(), nullptr, buf, sizeof buf);
    EXPECT_EQ(std::string(buf, r.bytes), "456789");
    EXPECT_EQ(readOnce(p.a.get(), nullptr, buf, sizeof buf).outcome, IoOutcome::Eof);
}

TEST(ConnectionTest, ReadOnceReportsASocketErrorWithItsText) {
    char buf[4];
    auto r = readOnce(-1, nullptr, buf, sizeof buf);
    EXPECT_EQ(r.outcome, IoOutcome::SocketError);
    EXPECT_EQ(r.error, "Bad file descriptor");
}

TEST(ConnectionTest, FlushPlainSendsWhatFitsAndKeepsTheRest) {
    Pair p;
    int small = 4096;
    ::setsockopt(p.a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    std::string out(1 << 20, 'x');  // far more than the socket buffers take
    auto w = flushPlain(p.a.get(), out);
    EXPECT_EQ(w.outcome, IoOutcome::WouldBlock);
    EXPECT_FALSE(out.empty());
    size_t sent = (1u << 20) - out.size();
    EXPECT_GT(sent, 0u);
    // The peer reads everything; the rest then goes.
    std::string got;
    char buf[65536];
    for (int i = 0; i < 10000 && got.size() < (1u << 20); ++i) {
        ssize_t n = ::recv(p.b.get(), buf, sizeof buf, 0);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        if (!out.empty()) (void)flushPlain(p.a.get(), out);
    }
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(got, std::string(1 << 20, 'x'));
    EXPECT_EQ(flushPlain(p.a.get(), out).outcome, IoOutcome::Progress);  // nothing left
}

TEST(ConnectionTest, FlushPlainToAClosedPeerIsASocketErrorNotSigpipe) {
    Pair p;
    p.b.reset();
    std::string out = "QUIT\r\n";
    auto w = flushPlain(p.a.get(), out);  // MSG_NOSIGNAL: the test process survives
    EXPECT_EQ(w.outcome, IoOutcome::SocketError);
    EXPECT_EQ(w.error, "Broken pipe");
}

}  // namespace
