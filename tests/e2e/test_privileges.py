"""End-to-end: the daemon gives up root, and who may use its control socket
(issue 15); log reopen (SIGUSR2) and the JSON log format.

Started as root with "user": nobody, the daemon must run as nobody, its
primary group, no supplementary groups, with no way back; root without
"user" is refused; a spool the user cannot write is a clear error that
changes nothing. The control socket gives every verb to root, the daemon's
user and control_group, the read-only ones to the daemon's group, nothing
to anyone else. Needs root (to start as root and act as other uids with
setpriv). Loopback only; daemons stopped by PID; every wait is bounded."""
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import relayharness as h  # noqa: E402

NOBODY = pwd.getpwnam("nobody")
# Not the daemon's user, and in no group unless given one.
OTHER_UID = 65533


def proc_ids(pid):
    """Uid:, Gid: (real, effective, saved, fs) and Groups: of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(v) for v in value.split()]
    return out


def as_uid(uid, gid, groups=()):
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    return cmd + ([f"--groups={','.join(str(g) for g in groups)}"] if groups else
                  ["--clear-groups"])


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                     "needs root (to start as root and act as other users) and setpriv")
class PrivilegeTest(unittest.TestCase):
    def setUp(self):
        self.relay = h.Relay()
        with open(self.relay.config) as f:
            self.cfg = json.load(f)

    def tearDown(self):
        self.relay.cleanup()

    def write(self, **changes):
        cfg = dict(self.cfg, **changes)
        for k in [k for k, v in cfg.items() if v is None]:
            del cfg[k]
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f, indent=2)

    def ctl(self, prefix, *args):
        return subprocess.run([*prefix, h.DANECTL, "--spool", self.relay.spool, *args],
                              capture_output=True, text=True, timeout=60)

    def test_started_as_root_it_runs_as_the_user_for_good(self):
        self.relay.start()
        ids = proc_ids(self.relay.proc.pid)
        self.assertEqual(ids["Uid"], [NOBODY.pw_uid] * 4, ids)
        self.assertEqual(ids["Gid"], [NOBODY.pw_gid] * 4, ids)
        self.assertEqual(ids["Groups"], [], ids)
        # It made the spool for that user, and its files are that user's.
        st = os.stat(self.relay.spool)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY.pw_uid, NOBODY.pw_gid))
        sock = os.stat(os.path.join(self.relay.spool, "control.sock"))
        self.assertEqual(sock.st_uid, NOBODY.pw_uid)
        self.assertEqual(sock.st_mode & 0o777, 0o660)
        self.assertIn("user=\"nobody (dropped from root)\"", self.relay.read_log())

    def test_root_without_user_is_refused_and_says_what_to_set(self):
        self.write(user=None)
        r = subprocess.run([h.DANERELAYD, "--config", self.relay.config],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"{self.relay.config}: user: not set, and danerelayd was started as root; "
                      "set \"user\"", r.stderr)
        self.assertFalse(os.path.exists(self.relay.spool), "a refused start made the spool")
        check = subprocess.run([h.DANERELAYD, "--config", self.relay.config, "--check-config"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 1)
        self.assertIn("user: not set", check.stderr)

    def test_bad_users_are_refused(self):
        for user, says in (("root", "is root (uid 0)"),
                           ("no-such-user-here", "no such user"),
                           ("../etc", "must be an account name")):
            with self.subTest(user):
                self.write(user=user)
                r = subprocess.run([h.DANERELAYD, "--config", self.relay.config],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(f"{self.relay.config}: user: ", r.stderr)
                self.assertIn(says, r.stderr)

    def test_a_spool_the_user_cannot_write_is_a_clear_error_that_changes_nothing(self):
        os.makedirs(os.path.join(self.relay.spool, "msg"), mode=0o700)  # root's
        os.chmod(self.relay.spool, 0o700)
        r = subprocess.run([h.DANERELAYD, "--config", self.relay.config],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"{self.relay.config}: spool_dir: {self.relay.spool}: cannot write: "
                      "Permission denied", r.stderr)
        self.assertIn("checked as user nobody", r.stderr)
        self.assertEqual(sorted(os.listdir(self.relay.spool)), ["msg"])
        check = subprocess.run([h.DANERELAYD, "--config", self.relay.config, "--check-config"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 1)
        self.assertIn("spool_dir", check.stderr)

    def test_started_as_another_user_it_cannot_switch_and_says_so(self):
        # Its TLS key is root's: plain listeners only.
        self.write(tls=None, listeners=[{"address": f"127.0.0.1:{self.relay.port}"}])
        os.makedirs(self.relay.spool)
        shutil.chown(self.relay.spool, OTHER_UID, OTHER_UID)
        r = subprocess.run(as_uid(OTHER_UID, OTHER_UID) +
                           [h.DANERELAYD, "--config", self.relay.config, "--check-config"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"user: nobody (uid {NOBODY.pw_uid}), but danerelayd runs as uid "
                      f"{OTHER_UID} and cannot switch", r.stderr)

    def test_the_control_socket_serves_by_the_peers_user_and_groups(self):
        admin = grp.getgrnam("adm")
        self.write(control_group="adm")
        self.relay.start()
        for d in (self.relay.dir,):
            os.chmod(d, 0o755)
        os.chmod(self.relay.spool, 0o750)  # the daemon's group reaches the socket
        stranger = as_uid(OTHER_UID, OTHER_UID)
        reader = as_uid(OTHER_UID, OTHER_UID, [NOBODY.pw_gid])
        operator = as_uid(OTHER_UID, OTHER_UID, [admin.gr_gid])
        # Anyone else: refused (the socket's mode already keeps them out).
        r = self.ctl(stranger, "status")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # The daemon's group may read, not act.
        r = self.ctl(reader, "status")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.ctl(reader, "queue", "flush", "--all")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("permission denied", r.stdout + r.stderr)
        # control_group may act: through the socket as a member of adm, even
        # without the daemon's group (it reaches the socket as its group here).
        os.chown(os.path.join(self.relay.spool, "control.sock"), NOBODY.pw_uid, admin.gr_gid)
        os.chmod(self.relay.spool, 0o755)
        r = self.ctl(operator, "queue", "flush", "--all")
        self.assertNotIn("permission denied", r.stdout + r.stderr)
        self.assertIn("flush: 0 matched", r.stdout + r.stderr)  # reached the verb
        self.assertIn("event=control-refused", self.relay.read_log())


@unittest.skipUnless(os.geteuid() == 0, "needs root (the daemon drops to nobody)")
class LogFileTest(unittest.TestCase):
    def setUp(self):
        self.relay = h.Relay()
        with open(self.relay.config) as f:
            cfg = json.load(f)
        self.logdir = os.path.join(self.relay.dir, "log")
        os.makedirs(self.logdir)
        self.log = os.path.join(self.logdir, "danerelay.log")
        cfg["log_file"] = self.log
        cfg["log_format"] = "json"
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f, indent=2)

    def tearDown(self):
        self.relay.cleanup()

    def lines(self, path):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def wait_for(self, path, event):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(path) and any(e["event"] == event for e in self.lines(path)):
                return
            time.sleep(0.05)
        self.fail(f"no {event} in {path}")

    def test_json_lines_and_reopen_after_a_rotation(self):
        self.relay.start()
        first = self.lines(self.log)
        start = [e for e in first if e["event"] == "start"]
        self.assertEqual(len(start), 1, first)
        self.assertEqual(start[0]["hostname"], "relay.e2e.test")
        self.assertRegex(start[0]["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        # The file root opened is the daemon's user's now.
        self.assertEqual(os.stat(self.log).st_uid, NOBODY.pw_uid)

        # logrotate with "create": move, make a new file for the user, signal.
        disconnects = sum(e["event"] == "disconnect" for e in self.lines(self.log))
        os.rename(self.log, self.log + ".1")
        with open(self.log, "w"):
            pass
        shutil.chown(self.log, "nobody")
        os.kill(self.relay.proc.pid, signal.SIGUSR2)
        self.wait_for(self.log, "log-reopened")
        # Sessions after the rotation are logged in the new file only.
        conn = self.relay.connect()
        conn.reply()
        conn.command("QUIT")
        conn.close()
        self.wait_for(self.log, "disconnect")
        old = self.lines(self.log + ".1")
        self.assertEqual(sum(e["event"] == "disconnect" for e in old), disconnects)
        self.assertFalse(any(e["event"] == "log-reopened" for e in old))

        # Without "create", in a directory the user may not write: the
        # reopen fails, says so in the file still open, and the daemon lives on.
        os.rename(self.log, self.log + ".2")
        os.kill(self.relay.proc.pid, signal.SIGUSR2)
        self.wait_for(self.log + ".2", "log-reopen-FAILED")
        self.assertIsNone(self.relay.proc.poll())
        failed = [e for e in self.lines(self.log + ".2") if e["event"] == "log-reopen-FAILED"]
        self.assertEqual(failed[0]["reason"], "Permission denied")


if __name__ == "__main__":
    unittest.main(verbosity=2)
