// startup.h — what a start needs from the system, tried before anything is
// changed: the one check behind both `danerelayd --check-config` and a real
// start, so the one cannot pass what the other refuses.
//
// checkStart() binds every listener (and keeps it bound: a start adopts the
// sockets, a check closes them), and checks the log file, the control
// socket and the spool path the way their opening would use them, but
// creates, removes and locks nothing. Each problem is one line naming the
// configuration file and the key ("etc/danerelay.json: listeners[1].address:
// 127.0.0.1:25: port in use ..."); all are reported, not only the first.
//
// The order of a start (danerelayd.cc): load the configuration and the files
// it names; raise RLIMIT_NOFILE; the first part of the check, as the user it
// was started as (root, to bind port 25): listeners, metrics, log file, and
// a spool_dir root will create; open the log; create a missing spool_dir for
// the run user; drop to `user` (relay/runtime/privileges.h); the second part,
// as that user: control socket and spool; take the spool lock; listen on the
// control socket; only then recover the spool and serve. A start that fails
// before recovery leaves the spool as it found it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "relay/runtime/config.h"

namespace danerelay::relay {

struct StartCheck {
    // "FILE: KEY: what is wrong", in configuration order. Empty: go on.
    std::vector<std::string> problems;
    // "FILE: KEY: what was not checked, and why" (a check only).
    std::vector<std::string> notes;
    // Bound and listening, one per cfg.listeners in order; complete only
    // when no listener is in problems.
    std::vector<UniqueFd> listeners;
    // metrics.listen, bound the same way (invalid when not configured).
    UniqueFd metrics;
};

// Binds one listener (SO_REUSEADDR; IPv6 sockets IPv6-only) and listens on
// it. The error says why in an operator's words (not an address of this
// host, in use, needs privilege) and names the address, not the key.
Result<UniqueFd> bindListener(const ListenerConfig& l);

// Tries everything a start would try, in a start's order, touching nothing
// in the file system:
//   listeners       bound and listening all at once (two that overlap, as
//                   0.0.0.0:25 and 127.0.0.1:25, fail here too); a port in
//                   use while another process holds the spool lock says so,
//                   and for a check only (forStart false) it is a note, not
//                   a problem: an operator checks a new configuration while
//                   the daemon that holds those ports runs, as with
//                   `postfix check`
//   log_file        its directory exists; the file (or, new, its directory)
//                   is writable, and the file is a regular file with one
//                   link, not a symlink (root opens it: relay/runtime/log.h)
//   control_socket  its directory exists and is writable; the path, if
//                   present, is a socket (a stale one is replaced later)
//   spool_dir       a writable directory with directories tmp/ msg/ state/
//                   quarantine/ where present and a writable lock file; or,
//                   absent, creatable: its nearest existing ancestor is a
//                   writable directory (not a file)
StartCheck checkStart(const Config& cfg, bool forStart = true);

// The two parts of checkStart(), for a start that changes user between
// them. spoolByRoot: a missing spool_dir is to be created by root before
// the drop (prepareSpoolDir), so the first part checks that root can, and
// the second part, for a check that did not create it, does not complain.
StartCheck checkAsStarted(const Config& cfg, bool forStart, bool spoolByRoot);
// Also notes a policy_dir the run user cannot read (a reload would fail).
void checkAsRunUser(const Config& cfg, bool spoolByRoot, StartCheck* out);

// Raises the soft RLIMIT_NOFILE to the hard limit (to /proc/sys/fs/nr_open
// if the hard limit is unlimited). Returns the soft limit in force after,
// whether raising worked or not.
uint64_t raiseFileLimit();

}  // namespace danerelay::relay
