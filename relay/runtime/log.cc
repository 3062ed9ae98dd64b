#include "relay/runtime/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
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

// v in double quotes, one walk for both formats: quotes and backslashes
// escaped; control characters by controlFormat; bytes that are not UTF-8,
// each by badByteFormat (the kv line's \\xHH, which JSON spells \\\\xHH),
// so the line stays UTF-8 and nothing is lost.
void appendQuoted(std::string& out, std::string_view v, const char* badByteFormat,
                  const char* controlFormat) {
    auto appendFormatted = [&out](const char* format, unsigned char c) {
        char buf[8];
        std::snprintf(buf, sizeof buf, format, c);
        out += buf;
    };
    out += '"';
    for (size_t i = 0; i < v.size();) {
        auto c = static_cast<unsigned char>(v[i]);
        auto seq = queue::utf8SequenceAt(v, i);
        if (!seq.valid) {
            for (size_t k = 0; k < seq.length; ++k) {
                appendFormatted(badByteFormat, static_cast<unsigned char>(v[i + k]));
            }
        } else if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            appendFormatted(controlFormat, c);
        } else {
            out.append(v.substr(i, seq.length));
        }
        i += seq.length;
    }
    out += '"';
}

void appendJsonString(std::string& out, std::string_view v) {
    appendQuoted(out, v, "\\\\x%02x", "\\u%04x");
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
    bool plain = !v.empty() && queue::isValidUtf8(v);
    for (unsigned char c : v) {
        if (c <= 0x20 || c == '"' || c == '\\' || c == 0x7f || c == '=') plain = false;
    }
    if (plain) return std::string(v);
    std::string out;
    appendQuoted(out, v, "\\x%02x", "\\x%02x");
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
