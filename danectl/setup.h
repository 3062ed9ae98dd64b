// setup.h — danectl's helpers for writing the configuration; they need
// neither the daemon nor the spool.
//
//   policy check DIR   load a policy directory as the daemon would; exit 1
//                      (and the error, naming file and line) if it would not
//   passwd             read a password on stdin, print its yescrypt hash for
//                      the AUTH credentials file; exit 2 without a password
#pragma once

#include <string>

namespace danerelay::danectl {

int policyCheck(const std::string& dir, bool asJson);
int passwd(bool asJson);

}  // namespace danerelay::danectl
