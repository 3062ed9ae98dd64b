// lab_answers.h — the DNSSEC lab's recorded answers (fixtures/lab-answers.txt,
// written by fixtures/record_lab_answers.py): the trust anchor, the time of
// recording (validate at it), and the wire answer to each (name, type) asked.
// Shared by the validator's unit tests and the DNS fuzz target.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace danerelay::dns::testing {

struct LabAnswers {
    int64_t now = 0;
    std::string anchor;
    std::map<std::pair<std::string, uint16_t>, std::vector<uint8_t>> answers;
};

inline uint16_t labTypeCode(const std::string& t) {
    static const std::map<std::string, uint16_t> k{
        {"A", 1}, {"NS", 2}, {"MX", 15}, {"AAAA", 28}, {"DS", 43}, {"DNSKEY", 48}, {"TLSA", 52}};
    auto it = k.find(t);
    return it == k.end() ? 0 : it->second;
}

// From $DANERELAY_SOURCE (or the source directory built in).
inline const LabAnswers& labAnswers() {
    static const LabAnswers l = [] {
        LabAnswers out;
        const char* src = std::getenv("DANERELAY_SOURCE");
        std::ifstream f(std::string(src ? src : DANERELAY_SOURCE_DIR) +
                        "/tests/dns/fixtures/lab-answers.txt");
        std::string line;
        while (std::getline(f, line)) {
            std::istringstream in(line);
            std::string word;
            in >> word;
            if (word == "now") {
                in >> out.now;
            } else if (word == "anchor") {
                in >> std::ws;
                std::getline(in, out.anchor);
            } else if (word == "answer") {
                std::string name, type, hex;
                in >> name >> type >> hex;
                std::vector<uint8_t> wire;
                for (size_t i = 0; i + 1 < hex.size(); i += 2)
                    wire.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
                out.answers[{name, labTypeCode(type)}] = std::move(wire);
            }
        }
        return out;
    }();
    return l;
}

}  // namespace danerelay::dns::testing
