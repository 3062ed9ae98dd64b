#include "sts/txt_record.h"

#include "sts/text.h"

namespace danerelay::sts {

namespace {

constexpr std::string_view kVersion = "v=STSv1";

bool isExtValueChar(char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x21 && u <= 0x7e && c != '=' && c != ';';
}

// Does the record begin with the version field, i.e. "v=STSv1" followed by
// the field delimiter or the end? (The discard rule of RFC 8461 3.1.)
bool beginsWithVersion(std::string_view r) {
    if (r.substr(0, kVersion.size()) != kVersion) return false;
    size_t i = kVersion.size();
    while (i < r.size() && isWsp(r[i])) ++i;
    return i == r.size() || r[i] == ';';
}

Error bad(std::string_view domain, const std::string& why) {
    return Error::permanent("MTA-STS TXT record at _mta-sts." + std::string(domain) + ": " + why);
}

}  // namespace

const char* toString(TxtStatus s) {
    switch (s) {
        case TxtStatus::Found:
            return "found";
        case TxtStatus::Absent:
            return "absent";
        case TxtStatus::Invalid:
            return "invalid";
        case TxtStatus::LookupFailed:
            return "lookup-failed";
    }
    return "?";
}

Result<std::string> parseTxtRecord(std::string_view domain, std::string_view r) {
    if (r.substr(0, kVersion.size()) != kVersion) {
        return bad(domain, "does not begin with v=STSv1: " + quoted(r));
    }
    size_t i = kVersion.size();
    std::string id;
    bool sawId = false;
    int fields = 0;
    while (i < r.size()) {
        // sts-field-delim
        while (i < r.size() && isWsp(r[i])) ++i;
        if (i == r.size() || r[i] != ';') {
            return bad(domain, "expected ';' at offset " + std::to_string(i) + ": " + quoted(r));
        }
        ++i;
        while (i < r.size() && isWsp(r[i])) ++i;
        if (i == r.size()) break;  // the optional trailing delimiter
        size_t eq = r.find('=', i);
        size_t end = i;
        while (end < r.size() && r[end] != ';' && !isWsp(r[end])) ++end;
        if (eq == std::string_view::npos || eq >= end) {
            return bad(domain, "field without '=': " + quoted(r.substr(i, end - i)));
        }
        std::string_view name = r.substr(i, eq - i), value = r.substr(eq + 1, end - eq - 1);
        if (name == "id") {
            if (sawId) return bad(domain, "more than one id field");
            if (!isPolicyId(value)) {
                return bad(domain, "id must be 1 to 32 letters and digits: " + quoted(value));
            }
            sawId = true;
            id = std::string(value);
        } else {
            if (!isExtensionName(name)) return bad(domain, "bad field name " + quoted(name));
            if (value.empty()) return bad(domain, "empty value for field " + quoted(name));
            for (char c : value) {
                if (!isExtValueChar(c)) return bad(domain, "bad value for field " + quoted(name));
            }
        }
        ++fields;
        i = end;
    }
    if (fields == 0 || !sawId) return bad(domain, "no id field: " + quoted(r));
    return id;
}

TxtLookup selectTxtRecord(std::string_view domain, const std::vector<std::string>& records) {
    const std::string* only = nullptr;
    size_t n = 0;
    for (const auto& r : records) {
        if (!beginsWithVersion(r)) continue;
        ++n;
        only = &r;
    }
    TxtLookup out;
    if (n == 0) {
        out.status = TxtStatus::Absent;
        return out;
    }
    if (n > 1) {
        out.status = TxtStatus::Invalid;
        out.error = "MTA-STS TXT record at _mta-sts." + std::string(domain) + ": " +
                    std::to_string(n) + " records begin with v=STSv1 (exactly one is allowed)";
        return out;
    }
    auto id = parseTxtRecord(domain, *only);
    if (!id) {
        out.status = TxtStatus::Invalid;
        out.error = id.error().message;
        return out;
    }
    out.status = TxtStatus::Found;
    out.id = std::move(*id);
    return out;
}

}  // namespace danerelay::sts
