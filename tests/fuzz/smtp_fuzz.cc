// smtp_fuzz.cc — fuzz target for everything the inbound server parses from
// the network: command lines, MAIL/RCPT paths and their parameters (parsed
// and checked, as the session applies them), xtext, SASL
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
#include "relay/inbound/smtp_parser.h"
#include "relay/runtime/base64.h"

using namespace danerelay::relay;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    Command c = parseCommand(in);
    PathArg p;
    Reply err;
    // MAIL and RCPT as the session takes them: the path, then its
    // parameters. A refusal always has a 5xx reply; without EHLO no
    // parameter is ever accepted.
    if (parsePathArg(c.arg, "FROM:", true, true, &p, &err)) {
        auto mail = parseMailParams(p, true, 10240000);
        if (!mail && (mail.refusal().code < 500 || mail.refusal().text.empty())) __builtin_trap();
        if (mail && mail->envid.size() > kMaxEnvid) __builtin_trap();
        if (!p.params.empty() && parseMailParams(p, false, 10240000).ok()) __builtin_trap();
    }
    // "RCPT TO:..." as a command line (8-bit allowed, as after SMTPUTF8),
    // and "TO:..." as a bare argument (8-bit refused).
    for (std::string_view arg : {std::string_view(c.arg), in}) {
        if (!parsePathArg(arg, "TO:", false, arg.data() != in.data(), &p, &err)) continue;
        auto rcpt = parseRcptParams(p.params, true);
        if (!rcpt && (rcpt.refusal().code < 500 || rcpt.refusal().text.empty())) __builtin_trap();
        if (rcpt && rcpt->orcpt.size() > kMaxOrcpt) __builtin_trap();
        if (!p.params.empty() && parseRcptParams(p.params, false).ok()) __builtin_trap();
    }
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
