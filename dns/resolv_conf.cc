#include "dns/resolv_conf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace danerelay::dns {

namespace {
constexpr size_t kMaxFileSize = 64 * 1024;

std::string trimmed(const std::string& s) {
    auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}
}  // namespace

ResolvConf parseResolvConf(const std::string& text, const std::string& path) {
    ResolvConf rc;
    std::istringstream in(text);
    std::string raw;
    for (size_t lineNo = 1; std::getline(in, raw); ++lineNo) {
        std::string line = trimmed(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        auto sp = line.find_first_of(" \t");
        if (line.substr(0, sp) != "nameserver") continue;
        std::string where = path + ":" + std::to_string(lineNo) + ": ";
        std::string addr = sp == std::string::npos ? "" : trimmed(line.substr(sp));
        addr = addr.substr(0, addr.find_first_of(" \t#;"));
        if (addr.empty()) {
            rc.notes.push_back(where + "nameserver without an address, skipped");
            continue;
        }
        if (addr.find('%') != std::string::npos) {
            rc.notes.push_back(where + "nameserver " + addr +
                               ": an address with a zone index cannot be used, skipped");
            continue;
        }
        // resolv.conf has no port syntax: a bare address, port 53. In
        // brackets, anything else (host:port, a name, brackets of its own)
        // fails to parse rather than being guessed at.
        auto sa = parseServerAddress("[" + addr + "]");
        if (!sa) {
            rc.notes.push_back(where + "nameserver " + addr + ": not an IP address, skipped");
            continue;
        }
        if (rc.servers.size() >= ResolvConf::kMaxServers) {
            rc.notes.push_back(where + "nameserver " + addr + ": only the first " +
                               std::to_string(ResolvConf::kMaxServers) +
                               " are used, as by the C library");
            continue;
        }
        sa->trusted = false;
        rc.servers.push_back(*sa);
    }
    return rc;
}

Result<ResolvConf> readResolvConf(const std::string& path) {
    // O_NONBLOCK: a FIFO named here must not hang the start.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return Error::permanent(path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return Error::permanent(
            path + (S_ISDIR(st.st_mode) ? ": is a directory" : ": is not a regular file"));
    }
    std::string text;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            return Error::permanent(path + ": " + std::strerror(e));
        }
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > kMaxFileSize) {
            ::close(fd);
            return Error::permanent(path + ": larger than 64 KiB, not a resolv.conf");
        }
    }
    ::close(fd);
    return parseResolvConf(text, path);
}

}  // namespace danerelay::dns
