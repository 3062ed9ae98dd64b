// log.h — structured log lines: one line per event, "key=value" fields after
// an ISO 8601 UTC timestamp and the event name. Values with spaces, quotes,
// control characters (C0, DEL and C1, which terminals obey as ESC sequences),
// the line separators U+2028/U+2029 or bidi overrides and isolates are quoted
// and escaped, so a hostile HELO or address can never forge a second log
// line, nor drive the terminal of whoever tails the log, nor show reversed.
// Bytes that are not UTF-8 are written as \xHH inside a quoted value, so
// every line is valid UTF-8 and nothing is lost. Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace danerelay::relay {

// How a line is written: Kv "TIMESTAMP event=NAME key=value ..." or Json
// {"ts":"TIMESTAMP","event":"NAME","key":"value",...}, the same fields in the
// same order. In JSON a value that is not UTF-8 is written as the kv line
// would write it inside its quotes (\xHH for each such byte): lossless too.
enum class LogStyle { Kv, Json };

// Empty path: standard error. Returns false (and keeps stderr) if the file
// cannot be opened. The file is opened for appending, created if missing;
// its last component is never followed if it is a symlink, and only a
// regular file with a single link is taken (root opens it, in a directory
// the run user may own): otherwise false, errno ELOOP, EINVAL or EMLINK.
bool logOpen(const std::string& path, LogStyle style = LogStyle::Kv);

// The open log file's descriptor (for giveLogFile), -1 for standard error.
int logFileDescriptor();

// Opens the log file again by its name (after logrotate moved it), by the
// same rules as logOpen(), and writes there from now on. On failure the old file stays in use,
// errno says why, and false is returned. Standard error: nothing to do, true.
bool logReopen();

using LogField = std::pair<std::string_view, std::string_view>;
void logEvent(std::string_view event, std::initializer_list<LogField> fields);

// Exposed for tests.
std::string formatLogValue(std::string_view v);
std::string formatLogLine(LogStyle style, std::string_view timestamp, std::string_view event,
                          std::initializer_list<LogField> fields);

}  // namespace danerelay::relay
