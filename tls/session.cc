#include "tls/session.h"

#include <algorithm>

namespace danerelay::tls {

const char* const kPriority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE";

namespace {
Error tlsError(const char* what, int rc) {
    return Error::temporary(std::string(what) + ": " + gnutls_strerror(rc));
}

struct PriorityDeleter {
    void operator()(gnutls_priority_t p) const { gnutls_priority_deinit(p); }
};
using Priority = std::unique_ptr<std::remove_pointer_t<gnutls_priority_t>, PriorityDeleter>;

// kPriority parsed once for every session (GnuTLS only reads it); null if
// it does not parse, and then each session parses it again and reports why.
gnutls_priority_t sharedPriority() {
    static const Priority p = [] {
        gnutls_priority_t raw = nullptr;
        return Priority(gnutls_priority_init(&raw, kPriority, nullptr) < 0 ? nullptr : raw);
    }();
    return p.get();
}
}  // namespace

Result<std::shared_ptr<ServerCredentials>> ServerCredentials::load(const std::string& certFile,
                                                                   const std::string& keyFile) {
    gnutls_certificate_credentials_t raw = nullptr;
    int rc = gnutls_certificate_allocate_credentials(&raw);
    if (rc < 0) return tlsError("allocate credentials", rc);
    auto out = std::make_shared<ServerCredentials>();
    out->creds_.reset(raw);
    rc = gnutls_certificate_set_x509_key_file(raw, certFile.c_str(), keyFile.c_str(),
                                              GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        return Error::permanent("TLS certificate " + certFile + " / key " + keyFile + ": " +
                                gnutls_strerror(rc));
    }
    return out;
}

Result<std::unique_ptr<Session>> Session::make(int fd, unsigned flags,
                                               gnutls_certificate_credentials_t creds,
                                               std::shared_ptr<const void> owner) {
    std::unique_ptr<Session> s(new Session);
    gnutls_session_t raw = nullptr;
    int rc = gnutls_init(&raw, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc < 0) return tlsError("gnutls_init", rc);
    s->s_.reset(raw);
    s->creds_ = std::move(owner);
    const char* errPos = nullptr;
    gnutls_priority_t shared = sharedPriority();
    rc = shared ? gnutls_priority_set(raw, shared)
                : gnutls_priority_set_direct(raw, kPriority, &errPos);
    if (rc < 0) return tlsError("priority", rc);
    rc = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, creds);
    if (rc < 0) return tlsError("credentials", rc);
    gnutls_transport_set_int(raw, fd);
    return s;
}

Result<std::unique_ptr<Session>> Session::server(int fd, std::shared_ptr<ServerCredentials> creds) {
    gnutls_certificate_credentials_t c = creds->get();
    auto s = make(fd, GNUTLS_SERVER, c, std::move(creds));
    if (!s) return s.error();
    gnutls_certificate_server_set_request((*s)->get(), GNUTLS_CERT_IGNORE);
    return s;
}

Result<std::shared_ptr<ClientCredentials>> ClientCredentials::create() {
    gnutls_certificate_credentials_t raw = nullptr;
    int rc = gnutls_certificate_allocate_credentials(&raw);
    if (rc < 0) return tlsError("allocate credentials", rc);
    auto out = std::make_shared<ClientCredentials>();
    out->creds_.reset(raw);
    return out;
}

Result<std::unique_ptr<Session>> Session::client(int fd, std::shared_ptr<ClientCredentials> creds,
                                                 const std::string& sni) {
    gnutls_certificate_credentials_t c = creds->get();
    auto s = make(fd, GNUTLS_CLIENT | GNUTLS_KEY_SHARE_TOP, c, std::move(creds));
    if (!s) return s.error();
    if (!sni.empty()) {
        int rc = gnutls_server_name_set((*s)->get(), GNUTLS_NAME_DNS, sni.data(), sni.size());
        if (rc < 0) return tlsError("server name", rc);
    }
    return s;
}

std::vector<std::vector<uint8_t>> Session::peerChain() const {
    std::vector<std::vector<uint8_t>> out;
    unsigned n = 0;
    const gnutls_datum_t* certs = gnutls_certificate_get_peers(get(), &n);
    for (unsigned i = 0; certs && i < n && i < 16; ++i) {
        out.emplace_back(certs[i].data, certs[i].data + certs[i].size);
    }
    return out;
}

static IoState waitState(gnutls_session_t s) {
    return gnutls_record_get_direction(s) == 1 ? IoState::NeedWrite : IoState::NeedRead;
}

Result<IoState> Session::handshake() {
    int rc = gnutls_handshake(get());
    if (rc == GNUTLS_E_SUCCESS) return IoState::Done;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) return waitState(get());
    if (gnutls_error_is_fatal(rc) == 0) return waitState(get());  // e.g. a warning alert
    return tlsError("TLS handshake", rc);
}

Result<IoResult> Session::read(char* buf, size_t len) {
    ssize_t n = gnutls_record_recv(get(), buf, len);
    if (n > 0) return IoResult{IoState::Done, static_cast<size_t>(n), false};
    if (n == 0) return IoResult{IoState::Done, 0, true};
    int rc = static_cast<int>(n);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) return IoResult{waitState(get()), 0};
    if (rc == GNUTLS_E_PREMATURE_TERMINATION) return IoResult{IoState::Done, 0, true};
    if (rc == GNUTLS_E_REHANDSHAKE) return tlsError("TLS read", rc);  // we never renegotiate
    if (gnutls_error_is_fatal(rc) == 0) return IoResult{IoState::NeedRead, 0};
    return tlsError("TLS read", rc);
}

Result<IoResult> Session::write(const char* buf, size_t len) {
    ssize_t n = gnutls_record_send(get(), buf, len);
    if (n >= 0) return IoResult{IoState::Done, static_cast<size_t>(n), false};
    int rc = static_cast<int>(n);
    // On AGAIN GnuTLS wants the same call repeated with the same data.
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) return IoResult{waitState(get()), 0};
    return tlsError("TLS write", rc);
}

Result<IoState> Session::drain(std::string& out) {
    constexpr size_t kChunk = 16384;
    while (!out.empty()) {
        auto r =
            writeInFlight_ ? write(nullptr, 0) : write(out.data(), std::min(out.size(), kChunk));
        if (!r) return r.error();
        if (r->state != IoState::Done) {
            if (!writeInFlight_) writeInFlight_ = std::min(out.size(), kChunk);
            return r->state;
        }
        out.erase(0, writeInFlight_ ? writeInFlight_ : r->bytes);
        writeInFlight_ = 0;
    }
    return IoState::Done;
}

size_t Session::pending() const {
    return gnutls_record_check_pending(get());
}

int Session::protocolVersion() const {
    switch (gnutls_protocol_get_version(get())) {
        case GNUTLS_TLS1_2:
            return 12;
        case GNUTLS_TLS1_3:
            return 13;
        default:
            return 0;
    }
}

std::string Session::description() const {
    const char* v = gnutls_protocol_get_name(gnutls_protocol_get_version(get()));
    const char* c = gnutls_cipher_get_name(gnutls_cipher_get(get()));
    return std::string(v ? v : "?") + "/" + (c ? c : "?");
}

void Session::bye() {
    gnutls_bye(get(), GNUTLS_SHUT_WR);
}

}  // namespace danerelay::tls
