#include "queue/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "queue/queue_id.h"
#include "queue/utf8.h"

namespace danerelay::queue {

namespace {

constexpr const char* kMagic = "DRQ1";
constexpr size_t kMaxHeaderLine = 128;
constexpr size_t kMaxEnvelopeBytes = 16 * 1024 * 1024;

std::string sysError(const std::string& what, int err) {
    return what + ": " + std::strerror(err);
}

// The checksum in a message file's header: 64-bit FNV-1a over the envelope
// text and the content, fed in pieces.
struct Fnv1a {
    uint64_t h = 0xcbf29ce484222325ULL;
    void add(std::string_view part) {
        for (unsigned char c : part) {
            h ^= c;
            h *= 0x100000001b3ULL;
        }
    }
};

uint64_t fnv1a(std::string_view a, std::string_view b) {
    Fnv1a f;
    f.add(a);
    f.add(b);
    return f.h;
}

bool writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// The error for a system call that failed on an existing message file: not
// damage, but the system's state (EIO, EMFILE, ENFILE, ENOMEM...), so the
// caller retries later. ENOENT (the message is gone) is the caller's business.
Error ioError(const std::string& what, int err) {
    return Error::temporary(sysError(what, err));
}

// *err is the errno of a failure (0 on success).
// Never blocks: O_NONBLOCK, and anything but a regular file is damage (a
// FIFO planted in the spool would otherwise hang recovery).
Result<std::string> readFile(const std::string& path, int* err) {
    *err = 0;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) {
        *err = errno;
        return ioError("open " + path, *err);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        *err = errno;
        return ioError("stat " + path, *err);
    }
    if (!S_ISREG(st.st_mode)) return Error::internal(path + ": not a regular file");
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return ioError("read " + path, *err);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

// Opens message file `path` (msg/ID) for reading, as readFile() does: never
// blocking, a regular file or damage; its stat in *st. A missing file is a
// permanent "no such message", another failure of the system a temporary one.
Result<UniqueFd> openMessage(const std::string& path, const std::string& id, struct stat* st) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno == ENOENT) return Error::permanent("no such message: " + id);
        return ioError("open " + path, errno);
    }
    if (::fstat(fd.get(), st) != 0) return ioError("stat " + path, errno);
    if (!S_ISREG(st->st_mode)) return Error::internal(path + ": not a regular file");
    return fd;
}

// The owner writes; the daemon's group may read (danectl queue list/show
// for mail admins in that group, as with Exim's spool); others nothing.
// The process umask can only take more away. The lock file stays 0600.
constexpr mode_t kSpoolDirMode = 0750;
constexpr mode_t kSpoolFileMode = 0640;

Status mkdirIfMissing(const std::string& path) {
    // Parents first (mkdir -p), so a fresh spool_dir needs no set-up.
    for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
        std::string parent = path.substr(0, pos);
        if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
            return Error::internal(sysError("mkdir " + parent, errno));
        }
    }
    if (::mkdir(path.c_str(), kSpoolDirMode) != 0 && errno != EEXIST) {
        return Error::internal(sysError("mkdir " + path, errno));
    }
    return okStatus();
}

std::vector<std::string> listDir(const std::string& path) {
    std::vector<std::string> names;
    DIR* d = ::opendir(path.c_str());
    if (!d) return names;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        names.emplace_back(e->d_name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

// The parsed header of a message file.
struct FileHeader {
    size_t headerLen = 0;
    size_t envLen = 0;
    uint64_t contentLen = 0;
    uint64_t checksum = 0;
};

Result<FileHeader> parseHeader(std::string_view data) {
    auto nl = data.find('\n');
    if (nl == std::string_view::npos || nl > kMaxHeaderLine) {
        return Error::internal("no header line");
    }
    std::string line(data.substr(0, nl));
    char magic[8] = {};
    unsigned long long envLen = 0, contentLen = 0, sum = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "%4s %llu %llu %16llx%n", magic, &envLen, &contentLen, &sum,
                    &used) != 4 ||
        static_cast<size_t>(used) != line.size() || std::strcmp(magic, kMagic) != 0) {
        return Error::internal("malformed header line");
    }
    if (envLen == 0 || envLen > kMaxEnvelopeBytes) return Error::internal("bad envelope length");
    return FileHeader{nl + 1, static_cast<size_t>(envLen), contentLen, sum};
}

// A message file opened as openMessage() opens it, with its header line
// read and parsed: what load() and verify() both start from.
struct OpenedMessage {
    UniqueFd fd;
    struct stat st {};
    FileHeader header;
};
Result<OpenedMessage> openWithHeader(const std::string& path, const std::string& id) {
    OpenedMessage m;
    auto fd = openMessage(path, id, &m.st);
    if (!fd) return fd.error();
    m.fd = std::move(*fd);
    char head[kMaxHeaderLine + 1];
    ssize_t n = ::pread(m.fd.get(), head, sizeof head, 0);
    if (n < 0) return ioError("read " + path, errno);
    auto h = parseHeader(std::string_view(head, static_cast<size_t>(n)));
    if (!h) return Error::internal(path + ": " + h.error().message);
    m.header = *h;
    return m;
}

}  // namespace

std::string encodeMessageFile(const Envelope& env, std::string_view content) {
    std::string envText = dumpJson(envelopeToJson(env));
    char header[kMaxHeaderLine];
    std::snprintf(header, sizeof header, "%s %zu %zu %016llx\n", kMagic, envText.size(),
                  content.size(), static_cast<unsigned long long>(fnv1a(envText, content)));
    std::string out;
    out.reserve(std::strlen(header) + envText.size() + content.size());
    out += header;
    out += envText;
    out += content;
    return out;
}

Result<std::unique_ptr<Spool>> Spool::open(const std::string& dir, Mode mode) {
    if (mode == Mode::Writer) {
        for (const char* sub : {"", "/tmp", "/msg", "/state", "/quarantine"}) {
            auto s = mkdirIfMissing(dir + sub);
            if (!s) return s.error();
        }
    }
    std::unique_ptr<Spool> sp(new Spool(dir));
    if (mode == Mode::Writer) {
        sp->lockFd_.reset(::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!sp->lockFd_.valid()) return Error::internal(sysError("open " + dir + "/lock", errno));
        if (::flock(sp->lockFd_.get(), LOCK_EX | LOCK_NB) != 0) {
            return Error::internal("spool " + dir + " is locked by another process");
        }
    }
    sp->msgDirFd_.reset(::open((dir + "/msg").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    sp->stateDirFd_.reset(::open((dir + "/state").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!sp->msgDirFd_.valid() || !sp->stateDirFd_.valid()) {
        return Error::internal(sysError("no spool at " + dir + " (open msg/, state/)", errno));
    }
    return sp;
}

Spool::~Spool() = default;

class Spool::WriteClaim {
  public:
    WriteClaim(Spool& s, const std::string& id) : s_(s), id_(id) {
        std::lock_guard lock(s_.writingMu_);
        held_ = s_.writing_.insert(id_).second;
    }
    ~WriteClaim() {
        if (!held_) return;
        std::lock_guard lock(s_.writingMu_);
        s_.writing_.erase(id_);
    }
    WriteClaim(const WriteClaim&) = delete;
    WriteClaim& operator=(const WriteClaim&) = delete;
    Status status() const {
        if (held_) return okStatus();
        return Error::internal("spool: " + id_ +
                               ": a write overlapped another write of the same message "
                               "(one writer per message); nothing changed");
    }

  private:
    Spool& s_;
    const std::string& id_;
    bool held_ = false;
};

Status Spool::commitOne(const NewMessage& m) {
    const NewMessage* one[] = {&m};
    return commit(one).front();
}

std::vector<Status> Spool::commit(std::span<const NewMessage* const> batch) {
    std::vector<Status> results(batch.size(), okStatus());
    std::vector<UniqueFd> fds(batch.size());
    std::vector<std::string> tmpPaths(batch.size());
    auto fail = [&](size_t i, std::string why) {
        if (!results[i]) return;
        results[i] = Error::temporary(std::move(why));
        fds[i].reset();
        ::unlink(tmpPaths[i].c_str());
    };

    // 1. Write every file and start its write-back, so that the disk works on
    //    all of them at once.
    for (size_t i = 0; i < batch.size(); ++i) {
        const NewMessage& m = *batch[i];
        tmpPaths[i] = dir_ + "/tmp/" + m.id;
        fds[i].reset(
            ::open(tmpPaths[i].c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kSpoolFileMode));
        if (!fds[i].valid()) {
            int e = errno;
            tmpPaths[i].clear();  // not ours to unlink
            results[i] = Error::temporary(sysError("create spool file", e));
            continue;
        }
        if (!writeAll(fds[i].get(), encodeMessageFile(m.envelope, m.content))) {
            fail(i, sysError("write spool file", errno));
            continue;
        }
        ::sync_file_range(fds[i].get(), 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    stage(CommitStage::TmpWritten);

    // 2. fsync each. The first one commits the journal for all; the others
    //    find their data already on disk and return quickly.
    for (size_t i = 0; i < batch.size(); ++i) {
        if (!results[i]) continue;
        if (::fsync(fds[i].get()) != 0) {
            fail(i, sysError("fsync spool file", errno));
            continue;
        }
        if (::close(fds[i].release()) != 0) fail(i, sysError("close spool file", errno));
    }
    stage(CommitStage::TmpSynced);

    // 3. Move into msg/. RENAME_NOREPLACE: an existing message is never overwritten.
    std::vector<bool> renamed(batch.size(), false);
    for (size_t i = 0; i < batch.size(); ++i) {
        if (!results[i]) continue;
        std::string final = dir_ + "/msg/" + batch[i]->id;
        if (::renameat2(AT_FDCWD, tmpPaths[i].c_str(), AT_FDCWD, final.c_str(), RENAME_NOREPLACE) !=
            0) {
            fail(i, sysError("rename spool file", errno));
            continue;
        }
        renamed[i] = true;
    }
    stage(CommitStage::Renamed);

    // 4. One directory fsync makes every rename of the batch durable.
    bool anyRenamed = std::find(renamed.begin(), renamed.end(), true) != renamed.end();
    if (anyRenamed && ::fsync(msgDirFd_.get()) != 0) {
        std::string why = sysError("fsync spool directory", errno);
        for (size_t i = 0; i < batch.size(); ++i) {
            if (!renamed[i]) continue;
            // Not durable: we must not say 250, so take the message back out.
            ::unlink((dir_ + "/msg/" + batch[i]->id).c_str());
            results[i] = Error::temporary(why);
        }
    }
    stage(CommitStage::DirSynced);
    return results;
}

Result<StoredMessage> Spool::load(const std::string& id) const {
    if (!isValidQueueId(id)) return Error::permanent("not a queue ID: " + id);
    std::string path = dir_ + "/msg/" + id;
    auto file = openWithHeader(path, id);
    if (!file) return file.error();
    const FileHeader* h = &file->header;
    if (static_cast<uint64_t>(file->st.st_size) != h->headerLen + h->envLen + h->contentLen) {
        return Error::internal(path + ": file size does not match its header (truncated?)");
    }
    std::string envText(h->envLen, '\0');
    ssize_t got =
        ::pread(file->fd.get(), envText.data(), envText.size(), static_cast<off_t>(h->headerLen));
    if (got < 0) return ioError("read " + path, errno);
    if (static_cast<size_t>(got) != envText.size()) {
        return Error::internal(path + ": short read of envelope");
    }
    // Written by an older version, the envelope may hold bytes that are not
    // UTF-8, which the parser refuses: replace them (see queue/utf8.h).
    auto j = nlohmann::json::parse(jsonTextFromDisk(std::move(envText)), nullptr,
                                   /*allow_exceptions=*/false);
    if (j.is_discarded()) return Error::internal(path + ": envelope is not valid JSON");
    auto env = envelopeFromJson(j);
    if (!env) return Error::internal(path + ": " + env.error().message);

    StoredMessage m;
    m.id = id;
    m.envelope = std::move(*env);
    m.contentSize = h->contentLen;

    std::string statePath = dir_ + "/state/" + id;
    int stateErr = 0;
    auto st2 = readFile(statePath, &stateErr);
    if (st2) {
        auto sj = nlohmann::json::parse(jsonTextFromDisk(std::move(*st2)), nullptr, false);
        if (sj.is_discarded()) return Error::internal(statePath + ": not valid JSON");
        auto status = statusFromJson(sj);
        if (!status) return Error::internal(statePath + ": " + status.error().message);
        if (status->size() != m.envelope.recipients.size()) {
            return Error::internal(statePath + ": recipient count differs from envelope");
        }
        m.status = std::move(*status);
    } else if (stateErr == ENOENT) {
        m.status.assign(m.envelope.recipients.size(), RecipientStatus{});
    } else {
        return st2.error();
    }
    return m;
}

Result<std::string> Spool::loadContent(const std::string& id) const {
    if (!isValidQueueId(id)) return Error::permanent("not a queue ID: " + id);
    std::string path = dir_ + "/msg/" + id;
    int err = 0;
    auto data = readFile(path, &err);
    if (!data) {
        if (err == ENOENT) return Error::permanent("no such message: " + id);
        return data.error();
    }
    auto h = parseHeader(*data);
    if (!h) return Error::internal(path + ": " + h.error().message);
    if (data->size() != h->headerLen + h->envLen + h->contentLen) {
        return Error::internal(path + ": file size does not match its header");
    }
    std::string_view all(*data);
    auto env = all.substr(h->headerLen, h->envLen);
    auto content = all.substr(h->headerLen + h->envLen);
    if (fnv1a(env, content) != h->checksum) return Error::internal(path + ": checksum mismatch");
    return std::string(content);
}

Status Spool::verify(const std::string& id) const {
    if (!isValidQueueId(id)) return Error::permanent("not a queue ID: " + id);
    std::string path = dir_ + "/msg/" + id;
    auto file = openWithHeader(path, id);
    if (!file) return file.error();
    const FileHeader* h = &file->header;
    // The envelope and the content follow the header line.
    Fnv1a sum;
    uint64_t left = h->envLen + h->contentLen;
    off_t at = static_cast<off_t>(h->headerLen);
    char buf[65536];
    while (left > 0) {  // bounded: each pass consumes at least one byte, or returns
        size_t want = static_cast<size_t>(std::min<uint64_t>(left, sizeof buf));
        ssize_t got = ::pread(file->fd.get(), buf, want, at);
        if (got < 0) {
            if (errno == EINTR) continue;
            return ioError("read " + path, errno);
        }
        if (got == 0) return Error::internal(path + ": file size does not match its header");
        sum.add(std::string_view(buf, static_cast<size_t>(got)));
        left -= static_cast<uint64_t>(got);
        at += got;
    }
    if (::pread(file->fd.get(), buf, 1, at) != 0) {
        return Error::internal(path + ": file size does not match its header");
    }
    if (sum.h != h->checksum) return Error::internal(path + ": checksum mismatch");
    return okStatus();
}

LoadFailure classifyLoadError(const Error& e) {
    switch (e.kind) {
        case ErrorKind::Permanent:
            return LoadFailure::NotFound;
        case ErrorKind::Temporary:
            return LoadFailure::Transient;
        case ErrorKind::Internal:
            break;
    }
    return LoadFailure::Damaged;
}

size_t Spool::quarantinedCount() const {
    size_t n = 0;
    for (const auto& name : listDir(dir_ + "/quarantine")) {
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".why") == 0) ++n;
    }
    return n;
}

Status Spool::writeStatus(const std::string& id, const std::vector<RecipientStatus>& status) {
    if (!isValidQueueId(id)) return Error::permanent("not a queue ID: " + id);
    WriteClaim claim(*this, id);
    if (auto st = claim.status(); !st) return st;
    std::string tmp = dir_ + "/tmp/" + id + ".state";
    std::string final = dir_ + "/state/" + id;
    std::string text = dumpJson(statusToJson(status));
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kSpoolFileMode));
    if (!fd.valid()) return Error::temporary(sysError("create " + tmp, errno));
    if (!writeAll(fd.get(), text) || ::fsync(fd.get()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return Error::temporary(sysError("write " + tmp, e));
    }
    fd.reset();
    if (::rename(tmp.c_str(), final.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return Error::temporary(sysError("rename " + tmp, e));
    }
    if (::fsync(stateDirFd_.get()) != 0)
        return Error::temporary(sysError("fsync state dir", errno));
    return okStatus();
}

Status Spool::remove(const std::string& id, bool durable) {
    if (!isValidQueueId(id)) return Error::permanent("not a queue ID: " + id);
    WriteClaim claim(*this, id);
    if (auto st = claim.status(); !st) return st;
    // Message first: a crash in between leaves an orphaned state file, which
    // recovery removes; never a message without the state saying what was done.
    // No directory fsync: if power fails before the unlink reaches the disk,
    // the message comes back and is delivered again (at-least-once, as
    // DESIGN.md allows), which costs less than a sync per delivered message.
    if (::unlink((dir_ + "/msg/" + id).c_str()) != 0) {
        if (errno == ENOENT) return Error::permanent("no such message: " + id);
        return Error::internal(sysError("unlink message " + id, errno));
    }
    ::unlink((dir_ + "/state/" + id).c_str());
    if (durable && ::fsync(msgDirFd_.get()) != 0)
        return Error::internal(sysError("fsync msg dir", errno));
    return okStatus();
}

Status Spool::quarantine(const std::string& id, const std::string& reason) {
    WriteClaim claim(*this, id);
    if (auto st = claim.status(); !st) return st;
    std::string q = dir_ + "/quarantine/";
    for (const char* sub : {"msg", "state"}) {
        std::string from = dir_ + "/" + sub + "/" + id;
        std::string to = q + id + (std::strcmp(sub, "state") == 0 ? ".state" : "");
        if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
            return Error::internal(sysError("quarantine " + from, errno));
        }
    }
    UniqueFd why(::open((q + id + ".why").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                        kSpoolFileMode));
    if (why.valid()) {
        writeAll(why.get(), reason + "\n");
        ::fsync(why.get());
    }
    UniqueFd qd(::open(q.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (qd.valid()) ::fsync(qd.get());
    ::fsync(msgDirFd_.get());
    ::fsync(stateDirFd_.get());
    return okStatus();
}

std::vector<std::string> Spool::listIds() const {
    return listDir(dir_ + "/msg");
}

RecoveryScan Spool::beginRecovery() {
    RecoveryScan scan;
    for (const auto& name : listDir(dir_ + "/tmp")) {
        if (::unlink((dir_ + "/tmp/" + name).c_str()) == 0) ++scan.debrisRemoved;
    }
    scan.ids = listIds();
    // State files whose message is gone were left by an interrupted remove(),
    // or by a quarantine() cut off between its two renames: that one goes
    // where the message went (damage is never deleted), with a .why if the
    // cut came before it was written.
    const std::string q = dir_ + "/quarantine/";
    for (const auto& name : listDir(dir_ + "/state")) {
        if (std::binary_search(scan.ids.begin(), scan.ids.end(), name)) continue;
        std::string path = dir_ + "/state/" + name;
        struct stat st;
        if (::lstat((q + name).c_str(), &st) == 0 &&
            ::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, (q + name + ".state").c_str(),
                        RENAME_NOREPLACE) == 0) {
            UniqueFd why(::open((q + name + ".why").c_str(),
                                O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                                kSpoolFileMode));
            if (why.valid()) {
                writeAll(why.get(), "quarantine interrupted (the state file was left behind)\n");
                ::fsync(why.get());
            }
            continue;
        }
        if (::unlink(path.c_str()) == 0) ++scan.debrisRemoved;
    }
    return scan;
}

RecoveryCheck Spool::recoverOne(const std::string& id) {
    using Verdict = RecoveryCheck::Verdict;
    auto setAside = [&](const std::string& reason) -> RecoveryCheck {
        if (auto st = quarantine(id, reason); !st) {
            // Left in place: the delivery path tries again when it loads it.
            return {Verdict::Unreadable, reason + "; cannot quarantine: " + st.error().message, {}};
        }
        return {Verdict::Quarantined, reason, {}};
    };
    if (!isValidQueueId(id)) return setAside("file name is not a queue ID");
    auto m = load(id);
    Status checked = m ? verify(id) : Status(m.error());
    if (checked) return {Verdict::Queued, "", std::move(m->status)};
    const auto& e = checked.error();
    switch (classifyLoadError(e)) {
        case LoadFailure::NotFound:
            return {Verdict::Gone, "", {}};
        case LoadFailure::Transient:
            return {Verdict::Unreadable, e.message, {}};
        case LoadFailure::Damaged:
            break;
    }
    return setAside(e.message);
}

RecoveryReport Spool::recover() {
    RecoveryReport report;
    auto scan = beginRecovery();
    report.debrisRemoved = scan.debrisRemoved;
    for (const auto& id : scan.ids) {
        auto c = recoverOne(id);
        switch (c.verdict) {
            case RecoveryCheck::Verdict::Queued:
            case RecoveryCheck::Verdict::Unreadable:
                report.queued.push_back(id);
                break;
            case RecoveryCheck::Verdict::Quarantined:
                report.quarantined.push_back({"msg/" + id, c.reason});
                break;
            case RecoveryCheck::Verdict::Gone:
                break;
        }
    }
    return report;
}

}  // namespace danerelay::queue
