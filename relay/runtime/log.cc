#include "relay/runtime/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "queue/utf8.h"

namespace danerelay::relay {

namespace {
std::mutex gMutex;
FILE* gOut = nullptr;
std::string gPath;
LogStyle gStyle = LogStyle::Kv;

// Root opens the log before the drop, in a directory the run user may own
// (the package's /var/log/danerelay): a symlink or hard link planted there
// would otherwise have root append to, and giveLogFile() hand over, any
// file on the system (/etc/passwd). So the last component is never
// followed, a FIFO cannot block the start, and only a regular file with
// one link is taken; errno says why not (ELOOP: a symlink, EMLINK: more
// than one link, EINVAL: not a regular file).
FILE* openLogFile(const std::string& path) {
    int fd = ::open(path.c_str(),
                    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
                    0666);
    if (fd < 0) return nullptr;
    struct stat st {};
    int why = 0;
    if (::fstat(fd, &st) != 0) {
        why = errno;
    } else if (!S_ISREG(st.st_mode)) {
        why = EINVAL;
    } else if (st.st_nlink != 1) {
        why = EMLINK;
    } else if (int fl = ::fcntl(fd, F_GETFL); fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
        why = errno;
    }
    FILE* f = why ? nullptr : ::fdopen(fd, "a");
    if (!f) {
        if (!why) why = errno;
        ::close(fd);
        errno = why;
        return nullptr;
    }
    std::setvbuf(f, nullptr, _IOLBF, 0);
    return f;
}

// A valid sequence's code point.
uint32_t codePoint(std::string_view seq) {
    auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(seq[k])); };
    switch (seq.size()) {
        case 1:
            return b(0);
        case 2:
            return (b(0) & 0x1f) << 6 | (b(1) & 0x3f);
        case 3:
            return (b(0) & 0x0f) << 12 | (b(1) & 0x3f) << 6 | (b(2) & 0x3f);
        default:
            return (b(0) & 0x07) << 18 | (b(1) & 0x3f) << 12 | (b(2) & 0x3f) << 6 | (b(3) & 0x3f);
    }
}

// Characters that are valid UTF-8 but must not reach a log reader raw: C0
// and C1 controls (a terminal takes U+009B as CSI, U+009D as OSC, as it does
// ESC [ and ESC ]), DEL, the line and paragraph separators U+2028 and U+2029
// (line breaks to Python's splitlines(), as U+0085 is), and the bidi
// embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069),
// which make a line show other than what it says.
bool mustEscape(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

// v in double quotes, one walk for both formats: quotes and backslashes
// escaped; a character mustEscape() names, in JSON as \uXXXX, in kv as
// its bytes \xHH; bytes that are not UTF-8, each as the kv line's \xHH
// (which JSON spells \\xHH), so the line stays UTF-8 and nothing is lost.
void appendQuoted(std::string& out, std::string_view v, bool json) {
    auto appendFormatted = [&out](const char* format, unsigned c) {
        char buf[8];
        std::snprintf(buf, sizeof buf, format, c);
        out += buf;
    };
    out += '"';
    for (size_t i = 0; i < v.size();) {
        auto c = static_cast<unsigned char>(v[i]);
        auto seq = queue::utf8SequenceAt(v, i);
        std::string_view bytes = v.substr(i, seq.length);
        if (!seq.valid) {
            for (unsigned char b : bytes) appendFormatted(json ? "\\\\x%02x" : "\\x%02x", b);
        } else if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (uint32_t cp = codePoint(bytes); mustEscape(cp)) {
            if (json) {
                appendFormatted("\\u%04x", cp);
            } else {
                for (unsigned char b : bytes) appendFormatted("\\x%02x", b);
            }
        } else {
            out.append(bytes);
        }
        i += seq.length;
    }
    out += '"';
}

void appendJsonString(std::string& out, std::string_view v) {
    appendQuoted(out, v, true);
}

}  // namespace

bool logOpen(const std::string& path, LogStyle style) {
    std::lock_guard lock(gMutex);
    gStyle = style;
    gPath = path;
    if (path.empty()) {
        gOut = stderr;
        return true;
    }
    FILE* f = openLogFile(path);
    if (!f) return false;
    gOut = f;
    return true;
}

int logFileDescriptor() {
    std::lock_guard lock(gMutex);
    if (!gOut || gOut == stderr) return -1;
    return ::fileno(gOut);
}

bool logReopen() {
    std::lock_guard lock(gMutex);
    if (gPath.empty()) return true;
    FILE* f = openLogFile(gPath);
    if (!f) return false;
    if (gOut && gOut != stderr) std::fclose(gOut);
    gOut = f;
    return true;
}

std::string formatLogValue(std::string_view v) {
    bool plain = !v.empty();
    for (size_t i = 0; plain && i < v.size();) {
        auto c = static_cast<unsigned char>(v[i]);
        auto seq = queue::utf8SequenceAt(v, i);
        if (!seq.valid || c <= 0x20 || c == '"' || c == '\\' || c == '=' ||
            mustEscape(codePoint(v.substr(i, seq.length)))) {
            plain = false;
        }
        i += seq.length;
    }
    if (plain) return std::string(v);
    std::string out;
    appendQuoted(out, v, false);
    return out;
}

std::string formatLogLine(LogStyle style, std::string_view timestamp, std::string_view event,
                          std::initializer_list<LogField> fields) {
    std::string line;
    if (style == LogStyle::Json) {
        line = "{\"ts\":\"";
        line += timestamp;
        line += "\",\"event\":";
        appendJsonString(line, event);
        for (const auto& [k, v] : fields) {
            line += ',';
            appendJsonString(line, k);
            line += ':';
            appendJsonString(line, v);
        }
        return line + "}\n";
    }
    line = timestamp;
    line += " event=";
    line += event;
    for (const auto& [k, v] : fields) {
        line += ' ';
        line += k;
        line += '=';
        line += formatLogValue(v);
    }
    return line + '\n';
}

void logEvent(std::string_view event, std::initializer_list<LogField> fields) {
    timeval tv{};
    gettimeofday(&tv, nullptr);
    tm t{};
    gmtime_r(&tv.tv_sec, &t);
    char ts[48];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", t.tm_year + 1900,
                  t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                  static_cast<long>(tv.tv_usec));
    LogStyle style;
    {
        std::lock_guard lock(gMutex);
        style = gStyle;
    }
    std::string line = formatLogLine(style, ts, event, fields);
    std::lock_guard lock(gMutex);
    FILE* out = gOut ? gOut : stderr;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
}

}  // namespace danerelay::relay
