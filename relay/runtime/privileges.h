// privileges.h — who the daemon runs as.
//
// Started as root, the daemon binds its listeners (port 25 needs root) and
// opens its log, then becomes the configured `user` for good: its primary
// group, supplementary groups cleared, real, effective and saved IDs all
// changed, so no way back to root remains. Only then does it read the spool
// or touch the network. Root without `user` is refused (a mail daemon that
// parses hostile bytes must not run as root); started as an ordinary user it
// runs as that user, and a `user` naming someone else is an error, since it
// could not switch.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/result.h"

namespace danerelay::relay {

struct Config;

struct RunAs {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

// What `user` means for a process whose effective uid is `self`: the account
// to drop to (root start with `user`), nothing to do (not root, and `user`
// unset or naming this very account), or an error that says what to set.
Result<std::optional<RunAs>> resolveRunAs(const Config& cfg, uid_t self);

// control_group's gid; nullopt when unset. Error: no such group.
Result<std::optional<gid_t>> resolveControlGroup(const Config& cfg);

// A root start only: a missing spool_dir is created (parents 0755, owned by
// root, as mkdir -p) and given to the run user, mode 0750, so the dropped
// daemon can fill it. An existing one is left as it is: if the user cannot
// write it, the check after the drop says so.
Status prepareSpoolDir(const std::string& dir, const RunAs& runAs);

// The log file, opened by root before the drop (fd, as logOpen() opened
// it: a regular file with one link, no symlink followed), is handed to the
// run user if it was root's, so that the reopen after a rotation (SIGUSR2)
// works. Only the descriptor is changed, never the path: the run user may
// own the directory and swap the name for a link to another root file.
Status giveLogFile(int fd, const std::string& path, const RunAs& runAs);

// Becomes runAs for good and verifies it: the real, effective and saved
// uid and gid are runAs's, no supplementary group is left, and going back
// to root fails.
Status dropPrivileges(const RunAs& runAs);

}  // namespace danerelay::relay
