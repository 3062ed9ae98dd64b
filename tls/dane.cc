#include "tls/dane.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <algorithm>
#include <memory>
#include <optional>

namespace danerelay::tls {

const char* toString(DaneFailure f) {
    switch (f) {
        case DaneFailure::None:
            return "none";
        case DaneFailure::ValidationFailure:
            return "validation-failure";
        case DaneFailure::CertificateHostMismatch:
            return "certificate-host-mismatch";
        case DaneFailure::CertificateExpired:
            return "certificate-expired";
        case DaneFailure::TlsaInvalid:
            return "tlsa-invalid";
    }
    return "?";
}

std::string recordText(const TlsaRecord& r, size_t maxHex) {
    static const char* hex = "0123456789abcdef";
    std::string s = std::to_string(r.usage) + " " + std::to_string(r.selector) + " " +
                    std::to_string(r.mtype) + " ";
    for (size_t i = 0; i < r.data.size() && i * 2 < maxHex; ++i) {
        s += hex[r.data[i] >> 4];
        s += hex[r.data[i] & 15];
    }
    if (r.data.size() * 2 > maxHex) s += "...";
    return s;
}

namespace {

struct CrtDeleter {
    void operator()(gnutls_x509_crt_t c) const { gnutls_x509_crt_deinit(c); }
};
using Crt = std::unique_ptr<std::remove_pointer_t<gnutls_x509_crt_t>, CrtDeleter>;

struct PubkeyDeleter {
    void operator()(gnutls_pubkey_t k) const { gnutls_pubkey_deinit(k); }
};

// deinit(tl, 1): the trust list and the CA certificates added to it.
struct TrustListDeleter {
    void operator()(gnutls_x509_trust_list_t tl) const { gnutls_x509_trust_list_deinit(tl, 1); }
};
using TrustList =
    std::unique_ptr<std::remove_pointer_t<gnutls_x509_trust_list_t>, TrustListDeleter>;

TrustList newTrustList() {
    gnutls_x509_trust_list_t tl = nullptr;
    if (gnutls_x509_trust_list_init(&tl, 0) < 0) return nullptr;
    return TrustList(tl);
}

// The data of a datum GnuTLS allocated (export2 and friends).
struct GnutlsFree {
    void operator()(unsigned char* p) const { gnutls_free(p); }
};
using GnutlsBytes = std::unique_ptr<unsigned char, GnutlsFree>;

Crt importDer(const std::vector<uint8_t>& der) {
    gnutls_x509_crt_t c = nullptr;
    if (gnutls_x509_crt_init(&c) < 0) return nullptr;
    Crt crt(c);
    gnutls_datum_t d{const_cast<unsigned char*>(der.data()), static_cast<unsigned>(der.size())};
    if (gnutls_x509_crt_import(c, &d, GNUTLS_X509_FMT_DER) < 0) return nullptr;
    return crt;
}

// The bytes a selector picks from a certificate: the whole DER (0) or the
// SubjectPublicKeyInfo (1).
std::vector<uint8_t> selected(const std::vector<uint8_t>& der, gnutls_x509_crt_t crt,
                              uint8_t selector) {
    if (selector == 0) return der;
    gnutls_pubkey_t k = nullptr;
    if (gnutls_pubkey_init(&k) < 0) return {};
    std::unique_ptr<std::remove_pointer_t<gnutls_pubkey_t>, PubkeyDeleter> key(k);
    if (gnutls_pubkey_import_x509(k, crt, 0) < 0) return {};
    gnutls_datum_t out{};
    int rc = gnutls_pubkey_export2(k, GNUTLS_X509_FMT_DER, &out);
    GnutlsBytes owned(out.data);
    if (rc < 0) return {};
    return std::vector<uint8_t>(out.data, out.data + out.size);
}

bool matches(const TlsaRecord& r, const std::vector<uint8_t>& data) {
    if (data.empty()) return false;
    if (r.mtype == 0) return data == r.data;
    gnutls_digest_algorithm_t alg = r.mtype == 1 ? GNUTLS_DIG_SHA256 : GNUTLS_DIG_SHA512;
    std::vector<uint8_t> digest(gnutls_hash_get_len(alg));
    if (gnutls_hash_fast(alg, data.data(), data.size(), digest.data()) < 0) return false;
    return digest == r.data;
}

bool within(gnutls_x509_crt_t c, std::time_t now) {
    return gnutls_x509_crt_get_activation_time(c) <= now &&
           now <= gnutls_x509_crt_get_expiration_time(c);
}

// The anchor a DANE-TA record names: a presented certificate above the
// leaf, or the whole certificate published in DNS (2 0 0).
struct TaAnchor {
    gnutls_x509_crt_t crt = nullptr;
    size_t pathEnd = 0;  // certificates [0, pathEnd) are the path below the anchor
    Crt published;       // owns crt when it came from DNS
};

TaAnchor findAnchor(const TlsaRecord& r, const std::vector<std::vector<uint8_t>>& chain,
                    const std::vector<Crt>& crts) {
    TaAnchor a;
    for (size_t i = 1; i < chain.size(); ++i) {
        if (matches(r, selected(chain[i], crts[i].get(), r.selector))) {
            a.crt = crts[i].get();
            a.pathEnd = i;
            return a;
        }
    }
    if (r.selector == 0 && r.mtype == 0) {
        a.published = importDer(r.data);
        if (a.published) {
            a.crt = a.published.get();
            a.pathEnd = chain.size();
        }
    }
    return a;
}

// Build the path upward from the leaf, using only presented certificates
// below the anchor, and verify it against the anchor (signatures only;
// *timesOk says whether every certificate, anchor included, is valid at
// now). Empty if no trust list could be made.
std::optional<bool> pathVerifies(const TaAnchor& anchor, const std::vector<Crt>& crts,
                                 std::time_t now, bool* timesOk) {
    TrustList tl = newTrustList();
    if (!tl) return std::nullopt;
    gnutls_x509_crt_t ta = nullptr;
    gnutls_x509_crt_init(&ta);
    gnutls_datum_t taDer{};
    gnutls_x509_crt_export2(anchor.crt, GNUTLS_X509_FMT_DER, &taDer);
    GnutlsBytes taOwned(taDer.data);
    gnutls_x509_crt_import(ta, &taDer, GNUTLS_X509_FMT_DER);
    gnutls_x509_trust_list_add_cas(tl.get(), &ta, 1, 0);  // tl owns ta now
    std::vector<gnutls_x509_crt_t> path;
    for (size_t i = 0; i < anchor.pathEnd; ++i) path.push_back(crts[i].get());
    unsigned status = 0;
    int rc = gnutls_x509_trust_list_verify_crt2(
        tl.get(), path.data(), static_cast<unsigned>(path.size()), nullptr, 0,
        GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS |
            GNUTLS_VERIFY_ALLOW_UNSORTED_CHAIN,
        &status, nullptr);
    *timesOk = within(anchor.crt, now);
    for (auto* c : path) *timesOk = *timesOk && within(c, now);
    return rc >= 0 && status == 0;
}

bool namesOne(gnutls_x509_crt_t leaf, const std::vector<std::string>& referenceNames) {
    for (const auto& n : referenceNames) {
        if (gnutls_x509_crt_check_hostname2(leaf, n.c_str(), 0)) return true;
    }
    return false;
}

}  // namespace

// RFC 7671 section 9, digest algorithm agility: for each usage and selector,
// when SHA2-512 records are present the SHA2-256 ones are not used, so a
// weaker digest cannot stand in for a stronger one. Full (0) always counts.
static std::vector<TlsaRecord> strongestDigests(const std::vector<TlsaRecord>& in) {
    std::vector<TlsaRecord> out;
    for (const auto& r : in) {
        if (r.mtype == 1) {
            bool stronger = false;
            for (const auto& o : in) {
                if (o.usage == r.usage && o.selector == r.selector && o.mtype == 2) stronger = true;
            }
            if (stronger) continue;
        }
        out.push_back(r);
    }
    return out;
}

// DANE-TA: for each usage-2 record, find the anchor, then validate the
// path leaf → anchor; crts holds the whole chain, parsed.
static DaneResult verifyTa(const std::vector<std::vector<uint8_t>>& chain,
                           const std::vector<Crt>& crts, const std::vector<TlsaRecord>& usableTlsa,
                           const std::vector<std::string>& referenceNames, std::time_t now) {
    DaneResult res;
    DaneFailure best = DaneFailure::ValidationFailure;
    std::string bestReason = "no TLSA record matched the certificate chain";
    for (const auto& r : usableTlsa) {
        if (r.usage != 2) continue;
        TaAnchor anchor = findAnchor(r, chain, crts);
        if (!anchor.crt) continue;
        bool timesOk = false;
        auto verified = pathVerifies(anchor, crts, now, &timesOk);
        if (!verified) continue;
        if (!*verified) {
            bestReason = "TLSA " + recordText(r) + " matched, but the chain does not verify to it";
            continue;
        }
        if (!timesOk) {
            best = DaneFailure::CertificateExpired;
            bestReason = "TLSA " + recordText(r) +
                         " matched, but a certificate of the chain is expired or not yet valid";
            continue;
        }
        if (!namesOne(crts[0].get(), referenceNames)) {
            if (best != DaneFailure::CertificateExpired)
                best = DaneFailure::CertificateHostMismatch;
            std::string names;
            for (const auto& n : referenceNames) names += (names.empty() ? "" : ", ") + n;
            bestReason =
                "TLSA " + recordText(r) + " matched, but the certificate names none of: " + names;
            continue;
        }
        res.authenticated = true;
        res.matched = recordText(r);
        return res;
    }
    res.failure = best;
    res.reason = bestReason;
    return res;
}

DaneResult verifyDane(const std::vector<std::vector<uint8_t>>& chain,
                      const std::vector<TlsaRecord>& tlsaIn,
                      const std::vector<std::string>& referenceNames, std::time_t now) {
    DaneResult res;
    const std::vector<TlsaRecord> usableTlsa = strongestDigests(tlsaIn);
    if (usableTlsa.empty()) {
        res.failure = DaneFailure::TlsaInvalid;
        res.reason = "no usable TLSA record";
        return res;
    }
    if (chain.empty()) {
        res.failure = DaneFailure::ValidationFailure;
        res.reason = "the server presented no certificate";
        return res;
    }
    // The leaf alone is parsed first: DANE-EE needs nothing else (RFC 7672
    // 3.1.1); the rest of the chain only when a DANE-TA record is tried.
    auto unparsable = [&res]() {
        res.failure = DaneFailure::ValidationFailure;
        res.reason = "the server presented a certificate that does not parse";
        return res;
    };
    std::vector<Crt> crts;
    crts.push_back(importDer(chain[0]));
    if (!crts[0]) return unparsable();

    // DANE-EE first: cheapest, and it needs nothing but the leaf.
    for (const auto& r : usableTlsa) {
        if (r.usage != 3) continue;
        if (matches(r, selected(chain[0], crts[0].get(), r.selector))) {
            res.authenticated = true;
            res.matched = recordText(r);
            return res;
        }
    }
    if (std::none_of(usableTlsa.begin(), usableTlsa.end(),
                     [](const TlsaRecord& r) { return r.usage == 2; })) {
        res.failure = DaneFailure::ValidationFailure;
        res.reason = "no TLSA record matched the certificate chain";
        return res;
    }
    for (size_t i = 1; i < chain.size(); ++i) {
        crts.push_back(importDer(chain[i]));
        if (!crts.back()) return unparsable();
    }
    return verifyTa(chain, crts, usableTlsa, referenceNames, now);
}

std::vector<uint8_t> spkiSha256(const std::vector<uint8_t>& certDer) {
    Crt c = importDer(certDer);
    if (!c) return {};
    auto spki = selected(certDer, c.get(), 1);
    if (spki.empty()) return {};
    std::vector<uint8_t> out(32);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data(), spki.size(), out.data());
    return out;
}

bool verifyPkix(const std::vector<std::vector<uint8_t>>& chain, const std::string& trustFile,
                const std::string& hostname, std::time_t now, std::string* reason) {
    if (chain.empty()) {
        *reason = "the server presented no certificate";
        return false;
    }
    std::vector<Crt> crts;
    std::vector<gnutls_x509_crt_t> raw;
    for (const auto& der : chain) {
        Crt c = importDer(der);
        if (!c) {
            *reason = "a presented certificate does not parse";
            return false;
        }
        raw.push_back(c.get());
        crts.push_back(std::move(c));
    }
    TrustList tl = newTrustList();
    if (!tl) {
        *reason = "cannot make a trust list";
        return false;
    }
    int n = trustFile.empty()
                ? gnutls_x509_trust_list_add_system_trust(tl.get(), 0, 0)
                : gnutls_x509_trust_list_add_trust_file(tl.get(), trustFile.c_str(), nullptr,
                                                        GNUTLS_X509_FMT_PEM, 0, 0);
    if (n <= 0) {
        *reason = "no CA certificates in " +
                  (trustFile.empty() ? std::string("the system trust store") : trustFile);
        return false;
    }
    unsigned status = 0;
    int rc = gnutls_x509_trust_list_verify_crt2(
        tl.get(), raw.data(), static_cast<unsigned>(raw.size()), nullptr, 0,
        GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS, &status,
        nullptr);
    tl.reset();
    if (rc < 0 || status != 0) {
        *reason = "the certificate chain does not lead to a trusted CA";
        return false;
    }
    for (auto* c : raw) {
        if (!within(c, now)) {
            *reason = "a certificate of the chain is expired or not yet valid";
            return false;
        }
    }
    if (!gnutls_x509_crt_check_hostname2(raw[0], hostname.c_str(), 0)) {
        *reason = "the certificate does not name " + hostname;
        return false;
    }
    return true;
}

}  // namespace danerelay::tls
