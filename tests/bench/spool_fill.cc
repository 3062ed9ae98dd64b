// spool_fill — a benchmark tool (not a test): fills a spool with N queued
// messages through queue::Spool's own group commit (the same files the
// daemon writes), so that start-up with a large queue can be measured
// (tests/bench/startup_bench.py) and tested (tests/e2e/test_startup.py)
// without submitting every message over SMTP first.
//
//   build/tests/spool_fill SPOOL_DIR COUNT [SIZE] [RECIPIENT]
//
// SIZE: content bytes per message (default 2048). RECIPIENT: the one
// recipient of every message (default sink@secure.test); a "%d" in it is
// replaced by the message's number, for as many destinations as messages.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "queue/queue_id.h"
#include "queue/spool.h"

using namespace danerelay;

namespace {

constexpr size_t kBatch = 256;

std::string recipientFor(const std::string& pattern, size_t n) {
    auto at = pattern.find("%d");
    if (at == std::string::npos) return pattern;
    return pattern.substr(0, at) + std::to_string(n) + pattern.substr(at + 2);
}

queue::NewMessage message(queue::QueueIdGenerator& ids, size_t n, size_t size,
                          const std::string& rcpt) {
    queue::NewMessage m;
    m.id = ids.next();
    m.envelope.sender = "bench@inside.test";
    m.envelope.recipients = {{recipientFor(rcpt, n), "", queue::kNotifyNone}};
    m.envelope.arrival = static_cast<int64_t>(std::time(nullptr));
    m.envelope.clientAddress = "127.0.0.1";
    m.envelope.heloName = "bench.inside.test";
    m.content = "From: bench@inside.test\r\nTo: " + m.envelope.recipients[0].address +
                "\r\nSubject: spool_fill " + std::to_string(n) + "\r\nMessage-ID: <fill." + m.id +
                "@inside.test>\r\n\r\n";
    std::string line(70, 'x');
    while (m.content.size() + line.size() + 2 <= size) m.content += line + "\r\n";
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: spool_fill SPOOL_DIR COUNT [SIZE] [RECIPIENT]\n");
        return 2;
    }
    std::string dir = argv[1];
    size_t count = std::strtoul(argv[2], nullptr, 10);
    size_t size = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 2048;
    std::string rcpt = argc > 4 ? argv[4] : "sink@secure.test";
    auto spool = queue::Spool::open(dir, queue::Spool::Mode::Writer);
    if (!spool) {
        std::fprintf(stderr, "spool_fill: %s: %s\n", dir.c_str(), spool.error().message.c_str());
        return 1;
    }
    queue::QueueIdGenerator ids;
    auto listed = (*spool)->listIds();
    if (!listed.empty()) ids.observe(listed.back());
    for (size_t done = 0; done < count;) {
        std::vector<queue::NewMessage> batch;
        for (size_t i = 0; i < kBatch && done + i < count; ++i)
            batch.push_back(message(ids, done + i, size, rcpt));
        std::vector<const queue::NewMessage*> ptrs;
        for (const auto& m : batch) ptrs.push_back(&m);
        for (const auto& st : (*spool)->commit(ptrs)) {
            if (!st) {
                std::fprintf(stderr, "spool_fill: %s\n", st.error().message.c_str());
                return 1;
            }
        }
        done += batch.size();
    }
    std::printf("spool_fill: %zu messages of %zu bytes in %s\n", count, size, dir.c_str());
    return 0;
}
