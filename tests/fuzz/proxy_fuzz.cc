// proxy_fuzz.cc — fuzz target for the PROXY protocol header (v1 and v2), the
// first bytes a proxy_protocol listener reads from the network. Checks more
// than "no crash": a header is never longer than its input or than
// kProxyMaxHeader; the bytes after it do not change it; one byte less is
// NeedMore (never a different verdict); NeedMore never holds more than the
// cap; and the socket reader, fed in pieces sized by the input itself, takes
// exactly the header, leaving every later byte for the client.
//
// Built with -fsanitize=fuzzer it is a libFuzzer target; otherwise main()
// runs every file of a corpus directory once (CTest fuzz.proxy_corpus).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/inbound/proxy_protocol.h"

using namespace danerelay::relay;

namespace {

void check(ProxyProtocol v, std::string_view in) {
    using Step = ProxyParse::Step;
    ProxyParse r = parseProxyHeader(v, in);
    if (r.step == Step::Invalid && r.error.empty()) __builtin_trap();
    if (r.step == Step::NeedMore && in.size() >= kProxyMaxHeader) __builtin_trap();
    size_t len = r.header.length;
    if (r.step == Step::Done) {
        if (len == 0 || len > in.size() || len > kProxyMaxHeader) __builtin_trap();
        ProxyParse exact = parseProxyHeader(v, in.substr(0, len));
        if (exact.step != Step::Done || exact.header.length != len) __builtin_trap();
        if (exact.header.hasAddress != r.header.hasAddress) __builtin_trap();
        if (parseProxyHeader(v, in.substr(0, len - 1)).step != Step::NeedMore) __builtin_trap();
    }
    // The reader over a "socket" that fills in pieces of 1..16 bytes.
    ProxyHeaderReader reader(v);
    size_t arrived = 0, taken = 0, i = 0;
    while (reader.result().step == Step::NeedMore && arrived < in.size()) {
        size_t piece = 1 + static_cast<unsigned char>(in[i++ % in.size()]) % 16;
        arrived = std::min(in.size(), arrived + piece);
        size_t take = reader.offer(in.substr(taken, arrived - taken));
        if (take > arrived - taken) __builtin_trap();
        taken += take;
    }
    if (reader.result().step != r.step) __builtin_trap();
    if (r.step == Step::Done && taken != len) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    check(ProxyProtocol::V1, in);
    check(ProxyProtocol::V2, in);
    return 0;
}

#ifndef DANERELAY_LIBFUZZER
#include "tests/fuzz/corpus_main.h"
#endif
