// validator_bench — a benchmark (not a test): how many answers per second
// one thread of dns::Validator checks, on the DNSSEC lab's recorded answers
// (tests/dns/fixtures/lab-answers.txt), with the chain of keys cached (the
// steady state) and with a cold cache (every key fetched and checked again,
// from memory: no network in the number). Warm, twice: with the signatures
// already verified remembered (the same answer again: what a name costs
// whose RRsets another name's answer already proved, as every name of a
// wildcard does) and with every signature computed (maxVerifiedSignatures
// 0: what a new RRset costs). Prints one line per case.
//
//   build/tests/validator_bench [SECONDS_PER_CASE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dns/validator.h"
#include "tests/dns/lab_answers.h"

using namespace danerelay;
using namespace danerelay::dns;
using Clock = std::chrono::steady_clock;

namespace {

std::shared_ptr<Validator> make(bool remember) {
    const auto& lab = testing::labAnswers();
    ValidatorLimits limits;
    if (!remember) limits.maxVerifiedSignatures = 0;
    auto v = Validator::create(
        lab.anchor, "lab anchor",
        [&lab](const std::string& name, uint16_t type) -> Result<std::vector<uint8_t>> {
            auto it = lab.answers.find({name, type});
            if (it == lab.answers.end()) return Error::temporary("not recorded");
            return it->second;
        },
        limits);
    if (!v) {
        std::fprintf(stderr, "validator_bench: %s\n", v.error().message.c_str());
        std::exit(1);
    }
    return *v;
}

enum class Mode { Remembered, Computed, Cold };

void run(const char* what, const std::string& name, uint16_t type, Mode mode, double seconds) {
    bool cold = mode == Mode::Cold;
    const auto& lab = testing::labAnswers();
    const auto& wire = lab.answers.at({name, type});
    auto v = make(mode == Mode::Remembered);
    unsigned long n = 0;
    Security last = Security::Indeterminate;
    auto t0 = Clock::now();
    auto until = t0 + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
        if (cold) v = make(false);
        last = v->validate(wire.data(), wire.size(), name, type, lab.now).security;
        ++n;
    }
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const char* how = mode == Mode::Remembered ? "warm, signatures remembered"
                      : mode == Mode::Computed ? "warm, signatures computed"
                                               : "cold";
    std::printf("%-44s %-28s %9.0f answers/s  (%s)\n", what, how, static_cast<double>(n) / s,
                toString(last));
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    if (testing::labAnswers().answers.empty()) {
        std::fprintf(stderr, "validator_bench: tests/dns/fixtures/lab-answers.txt not found\n");
        return 1;
    }
    for (Mode mode : {Mode::Remembered, Mode::Computed, Mode::Cold}) {
        run("secure MX (secure.test, ECDSA P-256)", "secure.test.", 15, mode, seconds);
        run("secure TLSA (_25._tcp.mx1.secure.test)", "_25._tcp.mx1.secure.test.", 52, mode,
            seconds);
        run("NSEC NXDOMAIN (nothere.secure.test)", "nothere.secure.test.", 15, mode, seconds);
        run("NSEC3 NXDOMAIN (nothere.nsec3.test)", "nothere.nsec3.test.", 15, mode, seconds);
        run("insecure delegation (insecure.test MX)", "insecure.test.", 15, mode, seconds);
    }
    return 0;
}
