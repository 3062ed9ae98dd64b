#include "sts/cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "sts/text.h"

namespace danerelay::sts {

namespace {

constexpr int kFormat = 1;
constexpr size_t kMaxFileBytes = kMaxPolicyBytes * 2 + 4096;  // JSON escapes, fields
constexpr int64_t kMaxTime = int64_t{1} << 40;

std::string sysError(const std::string& what, int e) {
    return what + ": " + std::strerror(e);
}

uint64_t fnv1a(uint64_t h, std::string_view s) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

// Over every field that says what the policy is, each length-prefixed.
std::string checksumOf(const CacheEntry& e) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const std::string& part :
         {e.domain, e.id, e.text, std::to_string(e.fetchedAt), std::to_string(e.history.failures),
          std::to_string(e.history.lastFailureAt), e.history.lastError}) {
        h = fnv1a(h, std::to_string(part.size()) + ":");
        h = fnv1a(h, part);
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

// A policy domain as a file name: a host name with at least one dot (so
// never "damaged", never ".tmp-..."), already in normal form.
bool isCacheName(std::string_view domain) {
    return isDomainName(domain) && domain.find('.') != std::string_view::npos &&
           normalizeName(domain) == domain;
}

Status writeAll(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = ::write(fd, s.data(), s.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Error::temporary(sysError("write", errno));
        s.remove_prefix(static_cast<size_t>(n));
    }
    return okStatus();
}

Status mkdirIfMissing(const std::string& d) {
    if (::mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) {
        return Error::temporary(sysError("mkdir " + d, errno));
    }
    return okStatus();
}

// Reads at most `max` bytes; a longer file is an error. ENOENT: nullopt.
// Only a regular file is read (*notRegular says if it was something else):
// O_NONBLOCK, so that a FIFO planted under the name cannot hang the open.
Result<std::optional<std::string>> readSmallFile(int dirFd, const std::string& name, size_t max,
                                                 bool* notRegular) {
    *notRegular = false;
    UniqueFd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno == ENOENT) return std::optional<std::string>();
        return Error::temporary(sysError("open " + name, errno));
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Error::temporary(sysError("stat " + name, errno));
    if (!S_ISREG(st.st_mode)) {
        *notRegular = true;
        return std::optional<std::string>();
    }
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::temporary(sysError("read " + name, errno));
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max) {
            return std::optional<std::string>(std::move(out));  // caller sees it too long
        }
    }
    return std::optional<std::string>(std::move(out));
}

}  // namespace

const char* toString(FetchReason r) {
    switch (r) {
        case FetchReason::None:
            return "none";
        case FetchReason::FirstContact:
            return "first-contact";
        case FetchReason::Expired:
            return "expired";
        case FetchReason::IdChanged:
            return "id-changed";
        case FetchReason::Refresh:
            return "refresh";
    }
    return "?";
}

Result<CacheEntry> makeEntry(std::string_view domain, std::string id, std::string text,
                             const Clock& clock) {
    CacheEntry e;
    e.domain = normalizeName(domain);
    if (!isCacheName(e.domain)) {
        return Error::permanent("MTA-STS: not a policy domain: " + sts::quoted(domain));
    }
    if (!isPolicyId(id)) return Error::permanent("MTA-STS: not a policy id: " + sts::quoted(id));
    auto p = parsePolicy(e.domain, text);
    if (!p) return p.error();
    e.id = std::move(id);
    e.text = std::move(text);
    e.policy = std::move(*p);
    e.fetchedAt = clock.wallSeconds();
    return e;
}

FetchHistory recordFailure(FetchHistory h, std::string error, const Clock& clock) {
    h.failures = std::min(h.failures + 1, 1000);
    h.lastFailureAt = clock.wallSeconds();
    // Printable ASCII only (it goes into the cache file, logs and danectl),
    // and bounded: it may quote a peer.
    std::string q = sts::quoted(error, 300);
    h.lastError = q.substr(1, q.rfind('"') - 1) + (q.back() == '.' ? "..." : "");
    return h;
}

int64_t refreshDue(const CacheEntry& e, const RefreshRules& rules) {
    return e.fetchedAt + std::min(rules.refreshInterval, e.policy.maxAge / 2);
}

namespace {

int64_t retryDelay(int failures, const RefreshRules& rules) {
    int64_t d = rules.retryMin;
    for (int i = 1; i < failures && d < rules.retryMax; ++i) d *= 2;
    return std::min(d, rules.retryMax);
}

FetchReason wantedFetch(const CacheEntry* cached, bool live, const TxtLookup& txt, int64_t now,
                        const RefreshRules& rules) {
    bool due = live && (now >= refreshDue(*cached, rules) || now < cached->fetchedAt);
    if (txt.status != TxtStatus::Found) {
        // No usable record: nothing to discover; a live policy due for
        // refresh is fetched anyway (see the header).
        return due ? FetchReason::Refresh : FetchReason::None;
    }
    if (!cached) return FetchReason::FirstContact;
    if (!live) return FetchReason::Expired;
    if (cached->id != txt.id) return FetchReason::IdChanged;
    return due ? FetchReason::Refresh : FetchReason::None;
}

}  // namespace

RefreshDecision decideRefresh(const CacheEntry* cached, const TxtLookup& txt,
                              const FetchHistory& history, const Clock& clock,
                              const RefreshRules& rules) {
    const int64_t now = clock.wallSeconds();
    RefreshDecision d;
    d.apply = cached && cached->liveAt(now);
    d.fetch = wantedFetch(cached, d.apply, txt, now, rules);
    if (d.fetch == FetchReason::None) return d;
    d.fetchId = txt.status == TxtStatus::Found ? txt.id : cached->id;
    if (history.failures > 0) {
        int64_t at = history.lastFailureAt + retryDelay(history.failures, rules);
        // A failure "in the future" (the clock went back) does not hold
        // fetches back for longer than one delay.
        if (now < at && history.lastFailureAt <= now) {
            d.heldBack = true;
            d.retryAt = at;
        }
    }
    return d;
}

std::string serializeEntry(const CacheEntry& e) {
    nlohmann::json j = {
        {"format", kFormat},
        {"domain", e.domain},
        {"id", e.id},
        {"fetched_at", e.fetchedAt},
        {"policy", e.text},
        {"failures", e.history.failures},
        {"last_failure_at", e.history.lastFailureAt},
        {"last_error", e.history.lastError},
        {"checksum", checksumOf(e)},
    };
    return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

namespace {

// An integer field, or -1 when absent or not an integer: a float (1e300)
// or an integer beyond int64 is never converted (that conversion is
// undefined behaviour; found by the sts_policy fuzz target).
int64_t intField(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) return -1;
    if (it->is_number_unsigned()) {
        auto u = it->get<uint64_t>();
        return u > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(u);
    }
    return it->is_number_integer() ? it->get<int64_t>() : -1;
}

Result<CacheEntry> entryFromJson(std::string_view domain, const nlohmann::json& j) {
    auto bad = [&](const std::string& why) {
        return Error::permanent("MTA-STS cache file for " + std::string(domain) + ": " + why);
    };
    if (!j.is_object() || intField(j, "format") != kFormat) return bad("not format 1");
    CacheEntry e;
    e.domain = j.value("domain", "");
    e.id = j.value("id", "");
    e.text = j.value("policy", "");
    e.fetchedAt = intField(j, "fetched_at");
    int64_t failures = intField(j, "failures");
    e.history.lastFailureAt = intField(j, "last_failure_at");
    e.history.lastError = j.value("last_error", "");
    if (e.domain != domain) return bad("names the domain " + sts::quoted(e.domain));
    if (e.fetchedAt < 0 || e.fetchedAt > kMaxTime || failures < 0 || failures > 1000 ||
        e.history.lastFailureAt < 0 || e.history.lastFailureAt > kMaxTime || !isPolicyId(e.id)) {
        return bad("a field out of range");
    }
    e.history.failures = static_cast<int>(failures);
    if (j.value("checksum", "") != checksumOf(e)) return bad("checksum mismatch");
    auto p = parsePolicy(e.domain, e.text);
    if (!p) return bad(p.error().message);
    e.policy = std::move(*p);
    return e;
}

}  // namespace

Result<CacheEntry> parseEntry(std::string_view domain, std::string_view fileText) {
    auto j = nlohmann::json::parse(fileText, nullptr, false);
    if (j.is_discarded()) {
        return Error::permanent("MTA-STS cache file for " + std::string(domain) + ": not JSON");
    }
    try {
        return entryFromJson(domain, j);
    } catch (const nlohmann::json::exception& ex) {  // a field of the wrong type
        return Error::permanent("MTA-STS cache file for " + std::string(domain) + ": " + ex.what());
    }
}

Result<PolicyCache> PolicyCache::open(std::string dir) {
    for (const std::string& d : {dir, dir + "/damaged"}) {
        if (auto s = mkdirIfMissing(d); !s) return s.error();
    }
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return Error::temporary(sysError("open " + dir, errno));
    return PolicyCache(std::move(dir), std::move(fd));
}

std::string PolicyCache::setAside(const std::string& name, const std::string& why) const {
    // damaged/NAME.N: the first N not taken, so earlier ones are kept too.
    for (int n = 1; n <= 1000; ++n) {
        std::string to = "damaged/" + name + "." + std::to_string(n);
        struct stat st;
        if (::fstatat(dirFd_.get(), to.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) continue;
        if (::renameat(dirFd_.get(), name.c_str(), dirFd_.get(), to.c_str()) != 0) {
            return why + " (could not be set aside: " + std::strerror(errno) + ")";
        }
        UniqueFd w(::openat(dirFd_.get(), (to + ".why").c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
        if (w.valid()) (void)writeAll(w.get(), why + "\n");
        ::fsync(dirFd_.get());
        return why + " (set aside as " + dir_ + "/" + to + ")";
    }
    return why + " (not set aside: damaged/ is full)";
}

Result<PolicyCache::Loaded> PolicyCache::load(std::string_view domain) const {
    std::string name = normalizeName(domain);
    if (!isCacheName(name)) {
        return Error::permanent("MTA-STS cache: not a policy domain: " + sts::quoted(domain));
    }
    bool notRegular = false;
    auto text = readSmallFile(dirFd_.get(), name, kMaxFileBytes, &notRegular);
    if (!text) return text.error();
    Loaded out;
    if (notRegular) {
        out.damaged = setAside(name, "MTA-STS cache file for " + name + ": not a regular file");
        return out;
    }
    if (!*text) return out;
    if ((*text)->size() > kMaxFileBytes) {
        out.damaged = setAside(name, "MTA-STS cache file for " + name + ": larger than " +
                                         std::to_string(kMaxFileBytes) + " bytes");
        return out;
    }
    auto e = parseEntry(name, **text);
    if (!e) {
        out.damaged = setAside(name, e.error().message);
        return out;
    }
    out.entry = std::move(*e);
    return out;
}

Result<PolicyCache::Loaded> PolicyCache::peek(const std::string& dir, std::string_view domain) {
    std::string name = normalizeName(domain);
    if (!isCacheName(name)) {
        return Error::permanent("MTA-STS cache: not a policy domain: " + sts::quoted(domain));
    }
    Loaded out;
    UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirFd.valid()) {
        if (errno == ENOENT) return out;
        return Error::temporary(sysError("open " + dir, errno));
    }
    bool notRegular = false;
    auto text = readSmallFile(dirFd.get(), name, kMaxFileBytes, &notRegular);
    if (!text) return text.error();
    if (notRegular) {
        out.damaged = "MTA-STS cache file for " + name + ": not a regular file";
    } else if (*text && (*text)->size() > kMaxFileBytes) {
        out.damaged = "MTA-STS cache file for " + name + ": larger than " +
                      std::to_string(kMaxFileBytes) + " bytes";
    } else if (*text) {
        auto e = parseEntry(name, **text);
        if (e) {
            out.entry = std::move(*e);
        } else {
            out.damaged = e.error().message;
        }
    }
    return out;
}

Status PolicyCache::store(const CacheEntry& e) {
    if (!isCacheName(e.domain)) {
        return Error::permanent("MTA-STS cache: not a policy domain: " + sts::quoted(e.domain));
    }
    // Only what reads back: a valid id, and text that parses.
    if (!isPolicyId(e.id))
        return Error::permanent("MTA-STS: not a policy id: " + sts::quoted(e.id));
    if (auto p = parsePolicy(e.domain, e.text); !p) return p.error();
    std::string tmp = ".tmp-" + e.domain;
    UniqueFd fd(::openat(dirFd_.get(), tmp.c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
    if (!fd.valid()) return Error::temporary(sysError("create " + dir_ + "/" + tmp, errno));
    auto w = writeAll(fd.get(), serializeEntry(e));
    if (w && ::fsync(fd.get()) != 0) w = Error::temporary(sysError("fsync", errno));
    fd.reset();
    if (w && ::renameat(dirFd_.get(), tmp.c_str(), dirFd_.get(), e.domain.c_str()) != 0) {
        w = Error::temporary(sysError("rename " + tmp, errno));
    }
    if (!w) {
        ::unlinkat(dirFd_.get(), tmp.c_str(), 0);
        return Error::temporary("MTA-STS cache " + dir_ + "/" + e.domain + ": " +
                                w.error().message);
    }
    if (::fsync(dirFd_.get()) != 0) return Error::temporary(sysError("fsync " + dir_, errno));
    return okStatus();
}

Status PolicyCache::remove(std::string_view domain) {
    std::string name = normalizeName(domain);
    if (!isCacheName(name)) {
        return Error::permanent("MTA-STS cache: not a policy domain: " + sts::quoted(domain));
    }
    if (::unlinkat(dirFd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
        return Error::temporary(sysError("unlink " + dir_ + "/" + name, errno));
    }
    if (::fsync(dirFd_.get()) != 0) return Error::temporary(sysError("fsync " + dir_, errno));
    return okStatus();
}

namespace {
std::vector<std::string> listNames(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) out.emplace_back(e->d_name);
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}
}  // namespace

Result<std::vector<std::string>> PolicyCache::domains() const {
    std::vector<std::string> out;
    for (auto& n : listNames(dir_)) {
        if (isCacheName(n)) out.push_back(std::move(n));
    }
    return out;
}

size_t PolicyCache::damagedCount() const {
    size_t n = 0;
    for (const auto& name : listNames(dir_ + "/damaged")) {
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".why") == 0) ++n;
    }
    return n;
}

}  // namespace danerelay::sts
