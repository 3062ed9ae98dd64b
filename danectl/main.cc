// main.cc — danectl, the operator's command line: the arguments, the usage,
// and which verb runs.
//
//   danectl [GLOBAL] status [--json]       the running daemon: uptime, queue, DNSSEC, listeners
//   danectl [GLOBAL] reload [--json]       re-read the policy directory (like SIGHUP)
//   danectl [GLOBAL] queue list [--json] [FILTERS]
//   danectl [GLOBAL] queue show ID [--json] [--body]
//   danectl [GLOBAL] queue summary [--json]
//   danectl [GLOBAL] queue hold|release|delete|flush|bounce|requeue [--json]
//                         (ID... | FILTERS | --all)
//   danectl [--config FILE] probe [--json] [--resolver ADDR]...
//                         [--validation local|resolver] [--trust-anchor FILE]
//                         [--probe-names SIGNED_NAME BOGUS_NAME] DOMAIN
//   danectl policy check [--json] DIR
//   danectl passwd [--json]
//   danectl [VERB [SUB]] --help
//   GLOBAL:  --config FILE | --spool DIR | --socket PATH | --timeout SECONDS
//   FILTERS: --state S --domain D --sender ADDR --older-than SECONDS
//
// The usage below (kUsage) and docs/man/danectl.8.in say the same:
// tests/man/check_help.py compares every verb's --help with the man page.
//
// The verbs live beside this file: daemon.h (status, reload), queue.h,
// probe.h, setup.h (policy check, passwd). list, show and summary read the
// spool directly and read-only (they work with the daemon down); status,
// reload and the queue actions go to the daemon over its control socket, so
// that they and the scheduler agree.
// Exit codes: 0 success (and --help, which prints the usage of the verb it
// follows on stdout), 1 not found, partly done or the daemon unreachable,
// 2 usage error; messages go to stderr. --json output shapes (each with a
// "version") are documented in docs/danectl-json.md.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "danectl/client.h"
#include "danectl/daemon.h"
#include "danectl/output.h"
#include "danectl/probe.h"
#include "danectl/queue.h"
#include "danectl/setup.h"
#include "queue/queue_id.h"
#include "relay/runtime/config.h"

using namespace danerelay;
using namespace danerelay::danectl;

namespace {

constexpr const char* kDefaultConfig = "/etc/danerelay/danerelay.json";

// The usage, one entry per verb (queue's by action), so that "danectl VERB
// --help" can show just that verb's lines.
struct UsageLine {
    const char* verb;
    const char* sub;  // queue and policy: the second word
    const char* text;
};
constexpr UsageLine kUsage[] = {
    {"status", "", "danectl [GLOBAL] status [--json]\n"},
    {"reload", "", "danectl [GLOBAL] reload [--json]\n"},
    {"queue", "list", "danectl [GLOBAL] queue list [--json] [FILTERS]\n"},
    {"queue", "show", "danectl [GLOBAL] queue show ID [--json] [--body]\n"},
    {"queue", "summary", "danectl [GLOBAL] queue summary [--json]\n"},
    {"queue", "hold|release|delete|flush|bounce|requeue",
     "danectl [GLOBAL] queue hold|release|delete|flush|bounce|requeue [--json]\n"
     "               (ID... | FILTERS | --all)\n"},
    {"probe", "",
     "danectl [--config FILE] probe [--json] [--resolver ADDR]...\n"
     "               [--validation local|resolver] [--trust-anchor FILE]\n"
     "               [--probe-names SIGNED_NAME BOGUS_NAME] DOMAIN\n"},
    {"policy", "check", "danectl policy check [--json] DIR\n"},
    {"passwd", "", "danectl passwd [--json]   (password on stdin; prints a yescrypt hash)\n"},
};

bool subMatches(const char* subs, const std::string& sub) {
    std::string all = std::string("|") + subs + "|";
    return all.find("|" + sub + "|") != std::string::npos;
}

// The lines for verb (and sub, if it names one of its sub-verbs); all of them
// for an empty verb. Empty: no such verb.
std::string usageText(const std::string& verb, const std::string& sub) {
    std::string out;
    bool subKnown = false;
    for (const auto& u : kUsage) {
        if (verb == u.verb && subMatches(u.sub, sub)) subKnown = true;
    }
    for (const auto& u : kUsage) {
        if (!verb.empty() && verb != u.verb) continue;
        if (subKnown && !subMatches(u.sub, sub)) continue;
        out += (out.empty() ? "usage: " : "       ") + std::string(u.text);
    }
    if (out.empty()) return out;
    out += "GLOBAL:  --config FILE | --spool DIR | --socket PATH | --timeout SECONDS\n";
    if (out.find("FILTERS") != std::string::npos)
        out += "FILTERS: --state S | --domain D | --sender ADDR | --older-than SECONDS\n";
    out += "HELP:    VERB [SUB] --help (or -h): that verb's usage alone; see danectl(8)\n";
    return out;
}

int usage() {
    std::fputs(usageText("", "").c_str(), stderr);
    return 2;
}

// --timeout: how long a reply from the daemon may take, by default and at
// most (a queue action waits for deliveries in flight).
constexpr int kDefaultTimeout = 600;
constexpr int64_t kMaxTimeout = 86400;
// A number of seconds on the command line: at most nine digits.
constexpr size_t kMaxSecondsDigits = 9;

bool parseSeconds(const std::string& v, int64_t* out) {
    if (v.empty() || v.size() > kMaxSecondsDigits ||
        v.find_first_not_of("0123456789") != std::string::npos)
        return false;
    *out = std::stoll(v);
    return true;
}

// The options before the verb.
struct Globals {
    std::string configPath, spoolDir, socketPath;
    int timeout = kDefaultTimeout;
};

// Parses args' leading options into g; gives the index of the verb, or
// nullopt (after saying why) for a usage error.
std::optional<size_t> parseGlobals(const std::vector<std::string>& args, Globals* g) {
    size_t i = 0;
    for (; i < args.size(); ++i) {
        int64_t t = 0;
        if (args[i] == "--config" && i + 1 < args.size()) {
            g->configPath = args[++i];
        } else if (args[i] == "--spool" && i + 1 < args.size()) {
            g->spoolDir = args[++i];
        } else if (args[i] == "--socket" && i + 1 < args.size()) {
            g->socketPath = args[++i];
        } else if (args[i] == "--timeout" && i + 1 < args.size()) {
            if (!parseSeconds(args[++i], &t) || t == 0 || t > kMaxTimeout) {
                printError("--timeout takes seconds (1-" + std::to_string(kMaxTimeout) + ")");
                return std::nullopt;
            }
            g->timeout = static_cast<int>(t);
        } else {
            break;
        }
    }
    return i;
}

// --help (or -h) anywhere: the usage asked for, on stdout, and success.
std::optional<int> help(const std::vector<std::string>& rest) {
    if (std::find_if(rest.begin(), rest.end(),
                     [](const std::string& a) { return a == "--help" || a == "-h"; }) == rest.end())
        return std::nullopt;
    std::string verb = rest[0] == "--help" || rest[0] == "-h" ? "" : rest[0];
    std::string text = usageText(verb, rest.size() > 1 ? rest[1] : "");
    if (text.empty()) {
        printError("unknown verb '" + verb + "'");
        return usage();
    }
    std::fputs(text.c_str(), stdout);
    return 0;
}

// probe's arguments (after the verb); nullopt (having said why) is a usage error.
std::optional<ProbeOptions> parseProbeArgs(const std::vector<std::string>& args) {
    ProbeOptions o;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--resolver" && i + 1 < args.size()) {
            auto sa = dns::parseServerAddress(args[++i]);
            if (!sa) {
                printError("--resolver " + sa.error().message);
                return std::nullopt;
            }
            o.resolvers.push_back(*sa);
        } else if (args[i] == "--validation" && i + 1 < args.size()) {
            o.validation = args[++i];
            if (o.validation != "local" && o.validation != "resolver") {
                printError("--validation is local or resolver");
                return std::nullopt;
            }
        } else if (args[i] == "--trust-anchor" && i + 1 < args.size()) {
            o.trustAnchor = args[++i];
        } else if (args[i] == "--probe-names" && i + 2 < args.size()) {
            o.probeSecure = args[++i];
            o.probeBogus = args[++i];
        } else if (o.domain.empty() && !args[i].empty() && args[i][0] != '-') {
            o.domain = args[i];
        } else {
            usage();
            return std::nullopt;
        }
    }
    if (o.domain.empty()) {
        usage();
        return std::nullopt;
    }
    return o;
}

// One of queue's filter options at args[*k] (advancing *k past its value):
// true if it was one; *bad set (having said why) if its value is not valid.
bool parseFilterOption(const std::vector<std::string>& args, size_t* k, queue::Filter* filter,
                       bool* bad) {
    const auto& a = args[*k];
    if (*k + 1 >= args.size()) return false;
    if (a == "--state") {
        filter->state = args[++*k];
        queue::RcptState ignored;
        if (!queue::parseRcptState(filter->state, &ignored)) {
            printError("unknown state '" + filter->state +
                       "' (pending, deferred, delivered, bounced, held)");
            *bad = true;
        }
    } else if (a == "--domain") {
        filter->domain = args[++*k];
    } else if (a == "--sender") {
        filter->sender = args[++*k];
    } else if (a == "--older-than") {
        if (!parseSeconds(args[++*k], &filter->olderThan)) {
            printError("--older-than takes seconds");
            *bad = true;
        }
    } else {
        return false;
    }
    return true;
}

// queue's arguments after the sub-verb, into c; false (having said why) is a
// usage error.
bool parseQueueOptions(const std::vector<std::string>& rest, QueueCommand* c) {
    bool action = isQueueAction(c->verb);
    bool filters = c->verb == "list" || action;
    for (size_t k = 2; k < rest.size(); ++k) {
        const auto& a = rest[k];
        bool bad = false;
        if (a == "--body" && c->verb == "show") {
            c->body = true;
        } else if (a == "--all" && action) {
            c->all = true;
        } else if (filters && parseFilterOption(rest, &k, &c->filter, &bad)) {
            if (bad) return false;
        } else if ((c->verb == "show" || action) && !a.empty() && a[0] != '-') {
            if (c->verb == "show" && !c->ids.empty()) return usage(), false;
            if (!queue::isValidQueueId(a)) {
                printError("'" + a + "' is not a queue ID (14 hex digits)");
                return false;
            }
            c->ids.push_back(a);
        } else {
            return usage(), false;
        }
    }
    return true;
}

// queue's arguments (rest[0] is "queue"); nullopt (having said why) is a
// usage error.
std::optional<QueueCommand> parseQueueArgs(const std::vector<std::string>& rest) {
    if (rest.size() < 2) return usage(), std::nullopt;
    QueueCommand c;
    c.verb = rest[1];
    bool action = isQueueAction(c.verb);
    if (!action && c.verb != "list" && c.verb != "show" && c.verb != "summary")
        return usage(), std::nullopt;
    if (!parseQueueOptions(rest, &c)) return std::nullopt;
    if (c.verb == "show" && c.ids.empty()) return usage(), std::nullopt;
    // An action takes exactly one selection; an action on everything must say --all.
    int selections = int(!c.ids.empty()) + int(c.all) + int(!c.filter.empty());
    if (action && selections != 1) {
        printError("queue " + c.verb +
                   " takes queue IDs, or filters (--state, --domain, --sender, --older-than), "
                   "or --all: exactly one of them");
        return std::nullopt;
    }
    return c;
}

// Where the spool and the daemon's socket are: --spool/--socket, or the
// configuration file.
bool locate(Globals* g) {
    if (!g->spoolDir.empty() && !g->socketPath.empty()) return true;
    if (!g->spoolDir.empty()) {
        g->socketPath = g->spoolDir + "/control.sock";
        return true;
    }
    try {
        auto cfg = relay::loadConfig(g->configPath, relay::FileCheck::Skip);
        g->spoolDir = cfg.spoolDir;
        if (g->socketPath.empty()) g->socketPath = cfg.controlSocket;
    } catch (const std::exception& e) {
        printError(e.what());
        return false;
    }
    return true;
}

int runQueue(const std::vector<std::string>& rest, Globals* g, bool asJson) {
    auto c = parseQueueArgs(rest);
    if (!c) return 2;
    if (!locate(g)) return 1;
    if (isQueueAction(c->verb)) return queueAction({g->socketPath, g->timeout}, *c, asJson);
    if (c->verb == "show") return queueShow(g->spoolDir, c->ids[0], asJson, c->body);
    if (c->verb == "summary") return queueSummary(g->spoolDir, asJson);
    return queueList(g->spoolDir, asJson, c->filter);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    Globals g;
    auto verbAt = parseGlobals(args, &g);
    if (!verbAt) return 2;
    std::vector<std::string> rest(args.begin() + static_cast<long>(*verbAt), args.end());
    if (auto code = help(rest)) return *code;
    // --json anywhere after the verb.
    bool asJson = false;
    std::erase_if(rest, [&](const std::string& a) { return a == "--json" && (asJson = true); });
    if (rest.empty()) return usage();
    if (rest[0] == "passwd" && rest.size() == 1) return passwd(asJson);
    if (rest[0] == "policy" && rest.size() == 3 && rest[1] == "check")
        return policyCheck(rest[2], asJson);
    if (g.configPath.empty()) {
        const char* env = std::getenv("DANERELAY_CONFIG");
        g.configPath = env ? env : kDefaultConfig;
    }
    if (rest[0] == "probe") {
        auto o = parseProbeArgs(std::vector<std::string>(rest.begin() + 1, rest.end()));
        return o ? probe(g.configPath, *o, asJson) : 2;
    }
    if ((rest[0] == "status" || rest[0] == "reload") && rest.size() == 1) {
        if (!locate(&g)) return 1;
        Daemon daemon{g.socketPath, g.timeout};
        return rest[0] == "status" ? status(daemon, asJson) : reload(daemon, asJson);
    }
    if (rest[0] != "queue") return usage();
    return runQueue(rest, &g, asJson);
}
