// config.h — the daemon's configuration file (JSON), loaded and validated once.
//
// Unknown keys, wrong types and impossible values are errors that name the
// file and the key ("etc/danerelay.json: limits.max_recipients: ..."); syntax
// errors and keys written twice in one object name file:line:column; numbers
// out of range say the range; "hostname" must be a DNS name (it goes into the
// SMTP greeting, so CR, LF or spaces would forge replies). Relative paths are taken relative to the
// directory of the configuration file. No string may hold a NUL ("\u0000"
// would cut a path short); spool_dir may not be empty; two listeners on one
// address and port (however spelt) are refused. What the system must allow
// (binding, directories) is checked by checkStart() (relay/startup.h).
// Loading throws ConfigError: this is start-up, where exceptions are the
// house rule.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dns/resolv_conf.h"
#include "dns/resolver.h"
#include "relay/runtime/net_address.h"

namespace danerelay::relay {

class ConfigError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class ListenerTls { StartTls, Implicit };
// A PROXY protocol header (haproxy.org/download/2.9/doc/proxy-protocol.txt)
// precedes each connection's first byte on this listener.
enum class ProxyProtocol { None, V1, V2 };

// log_format: "kv" (key=value after a timestamp) or "json" (one object per line).
enum class LogFormat { Kv, Json };

struct ListenerConfig {
    std::string host;  // numeric address
    uint16_t port = 0;
    ListenerTls tls = ListenerTls::StartTls;
    std::string text;  // as written, for logs
    // "proxy_protocol": "v1" | "v2"; with it, "proxy_from" (non-empty): the
    // only peers whose header is believed, every other peer is closed.
    ProxyProtocol proxy = ProxyProtocol::None;
    std::vector<Cidr> proxyFrom{};
};

struct Limits {
    uint64_t maxMessageSize = 10240000;  // Postfix's default message_size_limit
    unsigned maxRecipients = 1000;
    unsigned maxSessions = 100;
    unsigned maxSessionsPerClient = 20;
    unsigned commandTimeout = 300;   // seconds idle in a command or DATA (RFC 5321 4.5.3.2.7)
    unsigned sessionTimeout = 3600;  // seconds from connect to forced close
    unsigned maxErrors = 20;         // protocol errors before the session is dropped
    // Sessions at once from one /24 (IPv4) or /64 (IPv6) outside relay_networks.
    unsigned maxSessionsPerNetwork = 20;
    // A message already carrying this many Received: headers is refused at
    // DATA (554 5.4.6): a mail loop. Postfix's hopcount_limit.
    unsigned maxHops = 100;
    // Of max_sessions, these are kept for clients in relay_networks (when
    // there are any): others get 421 once only these are left. Default: a
    // tenth of max_sessions; must be below it.
    unsigned reservedSessions = 10;
    // seconds between sweeps that schedule any spooled message the
    // scheduler's index lacks (a safety net; flush sweeps too)
    unsigned queueSweepInterval = 600;
    // Outbound fan-out: connections (a destination's DNS lookups and its SMTP
    // session) open at once in all, and for one message
    unsigned maxOutboundConnections = 100;
    unsigned maxConnectionsPerMessage = 20;
};

struct DnsConfig {
    // dns.resolvers if set; else the nameservers of resolvConf (local
    // validation only: no resolver from resolv.conf is trusted for its AD
    // bit); 127.0.0.1:53 when that file names none, as the C library does.
    std::vector<dns::ServerAddress> resolvers;
    std::string resolvConf = "/etc/resolv.conf";
    std::string resolversFrom;               // "dns.resolvers" or the file, said in logs
    std::vector<std::string> resolverNotes;  // resolv.conf lines skipped, and why
    // "local": validate in-process from trustAnchor; "resolver": believe the
    // AD bit of trusted (loopback) validating resolvers.
    std::string validation = "local";
    std::string trustAnchor = "/usr/share/dns/root.key";
    unsigned timeoutMs = 2000;
    unsigned attempts = 3;
    std::string probeSecureName = "isc.org";           // signed: must validate
    std::string probeBogusName = "dnssec-failed.org";  // deliberately broken: must fail
    unsigned reprobeInterval = 300;                    // seconds
};

struct DeliveryConfig {
    unsigned maxConcurrent = 50;  // message deliveries in flight
    // RFC 8689 5: a message whose header says "TLS-Required: No" is sent
    // as policy "may" (opportunistic TLS, DANE and MTA-STS failures do
    // not stop it). Off by default: the operator decides whether senders
    // may lower the relay's policy.
    bool allowTlsRequiredNo = false;
    bool enabled = true;  // false: accept and keep mail, deliver nothing (maintenance, benchmarks)
    unsigned maxPerDestination = 20;     // deliveries in flight to one domain
    unsigned maxHostsPerAttempt = 5;     // MX hosts tried per attempt
    unsigned retryInitial = 300;         // seconds until the first retry
    unsigned retryMax = 3600;            // at most this between tries
    unsigned maxQueueLifetime = 432000;  // 5 days, then a bounce
    uint16_t port = 25;
    unsigned connectTimeout = 30;
    unsigned commandTimeout = 300;
    unsigned dataTimeout = 600;
    unsigned connectionReuseTime =
        2;  // seconds an idle connection waits for the next message; 0: off
};

// mta_sts: MTA-STS (RFC 8461) for destinations without DANE
// (relay/outbound/mta_sts.h). The policy cache lives in SPOOL/sts/.
struct MtaStsConfig {
    bool enabled = true;
    // PEM CA file for the policy fetch and for MX certificates under a
    // policy; empty: the system's trust store.
    std::string trustStore;
    uint16_t port = 443;         // HTTPS port of mta-sts.DOMAIN (443; a lab may use another)
    unsigned fetchTimeout = 60;  // seconds for one fetch (RFC 8461 3.3 suggests a minute)
};

struct Config {
    std::string file;
    std::string hostname;
    std::string spoolDir;
    std::vector<ListenerConfig> listeners;
    std::string tlsCertificate;  // empty: no STARTTLS, no implicit TLS
    std::string tlsKey;
    std::vector<Cidr> relayNetworks;
    std::string credentialsFile;  // empty: no AUTH
    Limits limits;
    DnsConfig dns;
    DeliveryConfig delivery;
    MtaStsConfig mtaSts;
    std::string policyDir;  // empty: built-in policy (dane) for every destination
    std::string logFile;    // empty: standard error
    // danectl's way in: a Unix socket, mode 0600 (default: <spool_dir>/control.sock).
    std::string controlSocket;
    unsigned commitBatch = 256;
    // metrics.listen: the Prometheus endpoint (GET /metrics); none if unset.
    std::optional<ListenerConfig> metricsListen;
    // The account the daemon runs as once its listeners are bound and its
    // log is open (relay/runtime/privileges.h); empty: the one it started as,
    // which then must not be root.
    std::string user;
    // Members of this group may use every danectl verb; members of the
    // daemon's own group only the read-only ones. Empty: none beyond root
    // and the daemon's user.
    std::string controlGroup;
    LogFormat logFormat = LogFormat::Kv;
};

// Check: the files the configuration names (tls.certificate, tls.key,
// auth.credentials, policy_dir) must exist and be readable now, or the error
// names the key and the file. Skip: danectl, which reads only the spool and
// socket locations and may run without the daemon's rights.
enum class FileCheck { Check, Skip };

Config loadConfig(const std::string& path, FileCheck files = FileCheck::Check);

// "ADDR:PORT,ADDR:PORT" of the resolvers in use, for logs and status.
std::string resolversText(const DnsConfig& d);

// The resolver options that a DnsConfig describes (without the validator).
dns::ResolverOptions resolverOptions(const DnsConfig& d);
// The in-process validator for validation "local", from the trust anchor
// file; the error names the file. Its key fetches block: use it off the loop.
Result<std::shared_ptr<dns::Validator>> loadValidator(const DnsConfig& d);

}  // namespace danerelay::relay
