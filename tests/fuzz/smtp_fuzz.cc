// smtp_fuzz.cc — fuzz target for everything the inbound server parses from
// the network: command lines, MAIL/RCPT paths and parameters, xtext, SASL
// PLAIN, base64, and the DATA reader (fed in pieces, as the socket would).
//
// Built with -fsanitize=fuzzer it is a libFuzzer target; otherwise main()
// below runs every file of a corpus directory once, so CI replays the corpus
// under ASan/UBSan without libFuzzer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/inbound/auth.h"
#include "relay/runtime/base64.h"
#include "relay/inbound/smtp_parser.h"

using namespace danerelay::relay;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    Command c = parseCommand(in);
    PathArg p;
    Reply err;
    (void)parsePathArg(c.arg, "FROM:", true, true, &p, &err);
    (void)parsePathArg(in, "TO:", false, false, &p, &err);
    std::string out;
    (void)decodeXtext(in, &out);
    (void)isValidHeloArg(in);
    if (auto d = base64Decode(in)) {
        std::string u, pw;
        (void)decodeSaslPlain(*d, &u, &pw);
    }
    // DATA, in chunks whose sizes come from the input itself.
    DataReader reader(4096);
    size_t pos = 0;
    while (pos < in.size() && !reader.done()) {
        size_t chunk = 1 + static_cast<unsigned char>(in[pos]) % 64;
        size_t used = reader.feed(in.substr(pos, chunk));
        if (used == 0) break;
        pos += used;
    }
    if (reader.problem() != DataReader::Problem::None && !reader.content().empty())
        __builtin_trap();
    return 0;
}

#ifndef DANERELAY_LIBFUZZER
#include "tests/fuzz/corpus_main.h"
#endif
