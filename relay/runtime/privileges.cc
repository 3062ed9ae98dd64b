#include "relay/runtime/privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "relay/runtime/config.h"

namespace danerelay::relay {

namespace {

std::string errnoText(int e) {
    return std::strerror(e);
}

// getpwnam_r with a buffer that grows: NSS entries have no fixed size.
std::optional<passwd> lookupUser(const std::string& name, std::vector<char>* buf, int* err) {
    passwd pw{};
    passwd* found = nullptr;
    for (buf->resize(1024);; buf->resize(buf->size() * 2)) {
        *err = ::getpwnam_r(name.c_str(), &pw, buf->data(), buf->size(), &found);
        if (*err != ERANGE || buf->size() > (1u << 20)) break;
    }
    if (!found) return std::nullopt;
    return pw;
}

std::optional<group> lookupGroup(const std::string& name, std::vector<char>* buf, int* err) {
    group gr{};
    group* found = nullptr;
    for (buf->resize(1024);; buf->resize(buf->size() * 2)) {
        *err = ::getgrnam_r(name.c_str(), &gr, buf->data(), buf->size(), &found);
        if (*err != ERANGE || buf->size() > (1u << 20)) break;
    }
    if (!found) return std::nullopt;
    return gr;
}

std::string parentOf(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

Status mkdirParents(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) return okStatus();
    if (errno != ENOENT) return Error::permanent(dir + ": " + errnoText(errno));
    if (auto s = mkdirParents(parentOf(dir)); !s) return s;
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return Error::permanent("mkdir " + dir + ": " + errnoText(errno));
    }
    return okStatus();
}

}  // namespace

Result<std::optional<RunAs>> resolveRunAs(const Config& cfg, uid_t self) {
    if (cfg.user.empty()) {
        if (self == 0) {
            return Error::permanent(
                cfg.file +
                ": user: not set, and danerelayd was started as root; set \"user\" "
                "to the account it should run as (the package creates \"danerelay\"), "
                "or start it as that account");
        }
        return std::optional<RunAs>();
    }
    std::vector<char> buf;
    int err = 0;
    auto pw = lookupUser(cfg.user, &buf, &err);
    if (!pw) {
        return Error::permanent(cfg.file + ": user: " + cfg.user + ": " +
                                (err ? errnoText(err) : std::string("no such user")) +
                                " (create it: adduser --system --group " + cfg.user + ")");
    }
    if (pw->pw_uid == 0) {
        return Error::permanent(cfg.file + ": user: " + cfg.user +
                                " is root (uid 0); name an unprivileged account");
    }
    RunAs r{cfg.user, pw->pw_uid, pw->pw_gid};
    if (self == 0) return std::optional<RunAs>(r);
    if (self != r.uid) {
        return Error::permanent(cfg.file + ": user: " + cfg.user + " (uid " +
                                std::to_string(r.uid) + "), but danerelayd runs as uid " +
                                std::to_string(self) +
                                " and cannot switch; start it as root "
                                "or as " +
                                cfg.user);
    }
    return std::optional<RunAs>();  // already that account
}

Result<std::optional<gid_t>> resolveControlGroup(const Config& cfg) {
    if (cfg.controlGroup.empty()) return std::optional<gid_t>();
    std::vector<char> buf;
    int err = 0;
    auto gr = lookupGroup(cfg.controlGroup, &buf, &err);
    if (!gr) {
        return Error::permanent(cfg.file + ": control_group: " + cfg.controlGroup + ": " +
                                (err ? errnoText(err) : std::string("no such group")));
    }
    return std::optional<gid_t>(gr->gr_gid);
}

Status prepareSpoolDir(const std::string& dir, const RunAs& runAs) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) return okStatus();
    if (auto s = mkdirParents(parentOf(dir)); !s) return s;
    if (::mkdir(dir.c_str(), 0750) != 0) {
        return Error::permanent("mkdir " + dir + ": " + errnoText(errno));
    }
    // Not following a symlink: had someone who may write the parent put
    // one in the directory's place since mkdir, its target stays root's.
    if (::fchownat(AT_FDCWD, dir.c_str(), runAs.uid, runAs.gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return Error::permanent("chown " + dir + " to " + runAs.name + ": " + errnoText(errno));
    }
    return okStatus();
}

Status giveLogFile(int fd, const std::string& path, const RunAs& runAs) {
    // The descriptor logOpen() checked, never the name again: between the
    // two the run user could have put anything there.
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_uid != 0) return okStatus();
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        return Error::permanent(path + ": not a regular file with one link; not handed to " +
                                runAs.name);
    }
    if (::fchown(fd, runAs.uid, runAs.gid) != 0) {
        return Error::permanent("chown " + path + " to " + runAs.name + ": " + errnoText(errno));
    }
    return okStatus();
}

Status dropPrivileges(const RunAs& runAs) {
    auto fail = [&](const char* what) {
        return Error::permanent(std::string("cannot become ") + runAs.name + ": " + what + ": " +
                                errnoText(errno));
    };
    // Groups first: once the uid is gone, so is the right to change them.
    if (::setgroups(0, nullptr) != 0) return fail("setgroups");
    if (::setresgid(runAs.gid, runAs.gid, runAs.gid) != 0) return fail("setresgid");
    if (::setresuid(runAs.uid, runAs.uid, runAs.uid) != 0) return fail("setresuid");
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0)
        return fail("getresuid");
    bool ids = ru == runAs.uid && eu == runAs.uid && su == runAs.uid && rg == runAs.gid &&
               eg == runAs.gid && sg == runAs.gid;
    if (!ids || ::getgroups(0, nullptr) != 0) {
        errno = EPERM;
        return fail("the IDs did not change as asked");
    }
    if (::setuid(0) == 0 || ::seteuid(0) == 0) {
        errno = EPERM;
        return fail("root could be regained");
    }
    return okStatus();
}

}  // namespace danerelay::relay
