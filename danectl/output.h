// output.h — how every danectl verb writes: UTC times, durations, JSON, and
// its error lines.
//
// --json output goes to stdout, indented by two, one document per run, its
// strings valid UTF-8 (queue::dumpJson); messages go to stderr as
// "danectl: …". Nothing here decides an exit code.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace danerelay::danectl {

// 1970-01-01T00:00:00Z style, UTC.
std::string isoTime(int64_t t);
// "2d 03h 04m" from a day on, else "3h 04m 05s".
std::string duration(int64_t seconds);
// j, indented by two, then a newline, on stdout.
void printJson(const nlohmann::json& j);
// "danectl: message" on stderr.
void printError(const std::string& message);

}  // namespace danerelay::danectl
