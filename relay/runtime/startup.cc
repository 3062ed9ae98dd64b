#include "relay/runtime/startup.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "relay/runtime/net_address.h"

namespace danerelay::relay {

namespace {
// Connections the kernel completes and holds for accept() on each SMTP
// listener (capped by net.core.somaxconn): 511, as busy servers use (nginx,
// Redis), so a burst of clients waits in the queue instead of having its
// SYNs dropped while the loop is busy.
constexpr int kListenBacklog = 511;
}  // namespace

namespace {

std::string errnoText(int e) {
    return std::strerror(e);
}

// "a/b" -> "a", "b" -> ".", "/b" -> "/", "a/b/" -> "a".
std::string parentOf(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    auto slash = p.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return p.substr(0, slash);
}

bool writableDir(const std::string& dir) {
    return ::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) == 0;
}

// The nearest ancestor of path that exists (path itself excluded), with its
// stat; "." or "/" at worst. Bounded by the path's length.
std::string nearestExisting(const std::string& path, struct stat* st) {
    std::string a = path;
    for (size_t i = 0; i <= path.size(); ++i) {
        a = parentOf(a);
        if (::stat(a.c_str(), st) == 0 || a == "." || a == "/") return a;
    }
    return a;
}

// Why no file or socket can be created at path (its directory must exist:
// nothing makes it); empty if one can.
std::string whyNotCreatable(const std::string& path) {
    std::string dir = parentOf(path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        int e = errno;
        if (e != ENOENT && e != ENOTDIR) return dir + ": " + errnoText(e);
        std::string a = nearestExisting(dir, &st);
        if (!S_ISDIR(st.st_mode)) return a + " is a file, not a directory (in " + path + ")";
        return "directory " + dir + " does not exist";
    }
    if (!S_ISDIR(st.st_mode)) return dir + " is a file, not a directory (in " + path + ")";
    if (!writableDir(dir)) return "cannot create " + path + " in " + dir + ": " + errnoText(errno);
    return {};
}

class Problems {
  public:
    Problems(const Config& cfg, std::vector<std::string>* out) : file_(cfg.file), out_(out) {}
    void add(const std::string& key, const std::string& what) {
        out_->push_back(file_ + ": " + key + ": " + what);
    }

  private:
    std::string file_;
    std::vector<std::string>* out_;
};

// Binds and listens; on failure, errno's value in *err and the reason.
Result<UniqueFd> bindWithErrno(const ListenerConfig& l, int* err) {
    *err = 0;
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!toSockaddr(l.host, l.port, &ss, &len)) {
        return Error::permanent(l.text + ": not an IP address");
    }
    UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        *err = errno;
        return Error::permanent(l.text + ": socket: " + errnoText(*err));
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) {
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        *err = errno;
        switch (*err) {
            case EADDRINUSE:
                return Error::permanent(l.text +
                                        ": address in use (another process or another listener "
                                        "of this configuration listens there)");
            case EADDRNOTAVAIL:
                return Error::permanent(l.text + ": not an address of this host (" +
                                        errnoText(*err) + ")");
            case EACCES:
                return Error::permanent(l.text + ": the port needs root or CAP_NET_BIND_SERVICE (" +
                                        errnoText(*err) + ")");
            default:
                return Error::permanent(l.text + ": bind: " + errnoText(*err));
        }
    }
    if (::listen(fd.get(), kListenBacklog) != 0) {
        *err = errno;
        return Error::permanent(l.text + ": listen: " + errnoText(*err));
    }
    return fd;
}

// True if another process holds the spool's lock (a daemon runs on it).
// Opens the lock read-only (never blocking, were it a FIFO) and only if it
// exists: creates nothing.
bool spoolLockedByOther(const std::string& spoolDir) {
    UniqueFd fd(::open((spoolDir + "/lock").c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd.valid()) return false;
    return ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

void checkListeners(const Config& cfg, Problems& p, Problems& notes, bool forStart,
                    StartCheck* out) {
    std::vector<std::pair<std::string, std::string>> inUse;  // key, why
    for (size_t i = 0; i < cfg.listeners.size(); ++i) {
        int err = 0;
        auto fd = bindWithErrno(cfg.listeners[i], &err);
        std::string key = "listeners[" + std::to_string(i) + "].address";
        if (fd) {
            out->listeners.push_back(std::move(*fd));
            continue;
        }
        if (err == EADDRINUSE) {
            inUse.emplace_back(key, fd.error().message);
        } else {
            p.add(key, fd.error().message);
        }
    }
    if (cfg.metricsListen) {
        int err = 0;
        auto fd = bindWithErrno(*cfg.metricsListen, &err);
        if (fd) {
            out->metrics = std::move(*fd);
        } else if (err == EADDRINUSE) {
            inUse.emplace_back("metrics.listen", fd.error().message);
        } else {
            p.add("metrics.listen", fd.error().message);
        }
    }
    if (inUse.empty()) return;
    bool running = spoolLockedByOther(cfg.spoolDir);
    for (const auto& [key, why] : inUse) {
        if (running && !forStart) {
            notes.add(key, why +
                               "; not checked: a danerelayd runs on this spool (its lock is "
                               "held) and is presumably the one listening");
        } else {
            p.add(key, why);
        }
    }
    if (running && forStart) {
        p.add("spool_dir",
              cfg.spoolDir + ": locked by a running danerelayd, which may be the one listening");
    }
}

void checkLogFile(const Config& cfg, Problems& p) {
    if (cfg.logFile.empty()) return;  // standard error
    struct stat st {};
    // lstat: the log is opened without following a symlink and only as a
    // regular file with one link (relay/runtime/log.h), so say so here.
    if (::lstat(cfg.logFile.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            p.add("log_file", cfg.logFile + ": is a directory, not a file");
        } else if (S_ISLNK(st.st_mode)) {
            p.add("log_file", cfg.logFile +
                                  ": is a symbolic link, which the daemon does not follow (it "
                                  "opens the log as root, where its user may own the "
                                  "directory); name the file itself");
        } else if (!S_ISREG(st.st_mode)) {
            p.add("log_file", cfg.logFile + ": is not a regular file");
        } else if (st.st_nlink != 1) {
            p.add("log_file", cfg.logFile + ": has " + std::to_string(st.st_nlink) +
                                  " hard links; the daemon takes only a file with one");
        } else if (::faccessat(AT_FDCWD, cfg.logFile.c_str(), W_OK, AT_EACCESS) != 0) {
            p.add("log_file", cfg.logFile + ": cannot write: " + errnoText(errno));
        }
        return;
    }
    if (errno != ENOENT && errno != ENOTDIR) {
        p.add("log_file", cfg.logFile + ": " + errnoText(errno));
        return;
    }
    if (auto why = whyNotCreatable(cfg.logFile); !why.empty()) p.add("log_file", why);
}

void checkControlSocket(const Config& cfg, Problems& p) {
    const std::string& path = cfg.controlSocket;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            p.add("control_socket",
                  path + ": exists and is not a socket (a start would not replace it)");
        } else if (!writableDir(parentOf(path))) {
            p.add("control_socket", "cannot replace " + path + ": " + errnoText(errno));
        }
        return;
    }
    if (errno != ENOENT && errno != ENOTDIR) {
        p.add("control_socket", path + ": " + errnoText(errno));
        return;
    }
    // The default lives in the spool directory, which a start creates:
    // the spool's own check covers it then.
    struct stat sp {};
    if (parentOf(path) == cfg.spoolDir && ::stat(cfg.spoolDir.c_str(), &sp) != 0 &&
        errno == ENOENT) {
        return;
    }
    if (auto why = whyNotCreatable(path); !why.empty()) p.add("control_socket", why);
}

// A spool_dir that does not exist yet: can it be created (mkdir -p)?
void checkSpoolCreatable(const std::string& dir, Problems& p) {
    struct stat st {};
    std::string a = nearestExisting(dir, &st);
    if (!S_ISDIR(st.st_mode)) {
        p.add("spool_dir", dir + ": cannot be created: " + a + " is a file, not a directory");
    } else if (!writableDir(a)) {
        p.add("spool_dir", dir + ": cannot be created in " + a + ": " + errnoText(errno));
    }
}

bool spoolMissing(const std::string& dir) {
    struct stat st {};
    return ::stat(dir.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
}

void checkSpool(const Config& cfg, Problems& p) {
    const std::string& dir = cfg.spoolDir;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        int e = errno;
        if (e != ENOENT && e != ENOTDIR) {
            p.add("spool_dir", dir + ": " + errnoText(e));
            return;
        }
        // A start creates it with its parents (mkdir -p).
        checkSpoolCreatable(dir, p);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        p.add("spool_dir", dir + ": is a file, not a directory");
        return;
    }
    if (!writableDir(dir)) {
        p.add("spool_dir", dir + ": cannot write: " + errnoText(errno));
        return;
    }
    for (const char* sub : {"tmp", "msg", "state", "quarantine"}) {
        std::string s = dir + "/" + sub;
        if (::lstat(s.c_str(), &st) != 0) {
            if (errno != ENOENT) p.add("spool_dir", s + ": " + errnoText(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            p.add("spool_dir", s + ": is not a directory (a damaged spool?)");
        } else if (!writableDir(s)) {
            p.add("spool_dir", s + ": cannot write: " + errnoText(errno));
        }
    }
    std::string lock = dir + "/lock";
    if (::lstat(lock.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            p.add("spool_dir", lock + ": is not a regular file (a damaged spool?)");
        } else if (::faccessat(AT_FDCWD, lock.c_str(), R_OK | W_OK, AT_EACCESS) != 0) {
            p.add("spool_dir", lock + ": cannot open for writing: " + errnoText(errno));
        }
    }
}

}  // namespace

Result<UniqueFd> bindListener(const ListenerConfig& l) {
    int err = 0;
    return bindWithErrno(l, &err);
}

StartCheck checkStart(const Config& cfg, bool forStart) {
    StartCheck out = checkAsStarted(cfg, forStart, false);
    checkAsRunUser(cfg, false, &out);
    return out;
}

StartCheck checkAsStarted(const Config& cfg, bool forStart, bool spoolByRoot) {
    StartCheck out;
    Problems p(cfg, &out.problems);
    Problems notes(cfg, &out.notes);
    checkListeners(cfg, p, notes, forStart, &out);
    checkLogFile(cfg, p);
    if (spoolByRoot && spoolMissing(cfg.spoolDir)) checkSpoolCreatable(cfg.spoolDir, p);
    return out;
}

void checkAsRunUser(const Config& cfg, bool spoolByRoot, StartCheck* out) {
    Problems p(cfg, &out->problems);
    // Read at start before any drop; a reload reads it as the run user.
    if (!cfg.policyDir.empty() && ::access(cfg.policyDir.c_str(), R_OK | X_OK) != 0) {
        Problems(cfg, &out->notes)
            .add("policy_dir", cfg.policyDir + ": " + errnoText(errno) +
                                   " for the daemon's user: a reload (SIGHUP) will fail and "
                                   "keep the policy read at start");
    }
    checkControlSocket(cfg, p);
    // A spool_dir root creates (a check, which did not) was checked before.
    if (!(spoolByRoot && spoolMissing(cfg.spoolDir))) checkSpool(cfg, p);
}

uint64_t raiseFileLimit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    rlim_t target = rl.rlim_max;
    if (target == RLIM_INFINITY) {
        // The kernel caps descriptors at fs.nr_open whatever the limit says.
        uint64_t nrOpen = 0;
        std::ifstream("/proc/sys/fs/nr_open") >> nrOpen;
        target = nrOpen > 0 ? static_cast<rlim_t>(nrOpen) : rl.rlim_cur;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
        rlimit raised = rl;
        raised.rlim_cur = target;
        ::setrlimit(RLIMIT_NOFILE, &raised);  // on failure the old limit stays, and is reported
    }
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}

}  // namespace danerelay::relay
