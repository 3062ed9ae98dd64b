"""End-to-end: a start either succeeds or touches nothing (issue 13).

For each broken configuration, `danerelayd --check-config` exits non-zero
naming the key and the configuration file, and a real start exits non-zero,
leaves a spool holding debris in tmp/, an orphaned state file and a damaged
message exactly as it was (every path, mode and byte), and logs neither
event=listen nor event=recovered. A good configuration over the same spool
does recover it (so the comparison can see a change). Run as nobody, the
check and the start refuse a privileged port, a log directory, control
socket directory and spool the user cannot write. A start under
`prlimit --nofile=256:4096` raises its soft limit to 4096 and logs it.

Loopback only; every daemon is stopped by its PID, every wait is bounded."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import relayharness as h  # noqa: E402

SPOOL_FILL = os.path.join(h.BUILD, "tests", "spool_fill")
DAMAGED_ID = "0123456789ABCD"
NOT_LOCAL = "198.51.100.7"  # TEST-NET-2: on no interface of a test machine


def snapshot(root):
    """Every path under root with its kind, mode and bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    out[rel] = ("file", st.st_mode, f.read())
            else:
                out[rel] = ("other", st.st_mode, None)
    return out


class StartupTest(unittest.TestCase):
    def setUp(self):
        # Relay only makes the directory, certificate and configuration here;
        # this test starts the daemon itself.
        self.relay = h.Relay()
        self.dir = self.relay.dir
        with open(self.relay.config) as f:
            self.base = json.load(f)
        self.base["log_file"] = "events.log"
        self.events = os.path.join(self.dir, "events.log")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            h.stop_process(p)
        self.relay.cleanup()

    def seed_spool(self):
        """A spool as a crash leaves it: what recovery would change."""
        spool = os.path.join(self.dir, "spool")
        shutil.rmtree(spool, ignore_errors=True)
        for sub in ("tmp", "msg", "state", "quarantine"):
            os.makedirs(os.path.join(spool, sub), mode=0o700)
        with open(os.path.join(spool, "tmp", "0123456789ABCE"), "wb") as f:
            f.write(b"half-written message\r\n")
        with open(os.path.join(spool, "msg", DAMAGED_ID), "wb") as f:
            f.write(b"\x00\x01 not a spool file \xff")
        with open(os.path.join(spool, "state", "0123456789ABCF"), "w") as f:
            f.write('{"orphan": true}')
        h.give_to_run_user(spool)
        return spool

    def write_config(self, cfg):
        path = os.path.join(self.dir, "danerelay.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def check_config(self, path):
        return subprocess.run([h.DANERELAYD, "--config", path, "--check-config"],
                              capture_output=True, text=True, timeout=60)

    def start(self, path, prefix=()):
        """Starts the daemon; returns (exit code or None if still running, output)."""
        p = subprocess.Popen(list(prefix) + [h.DANERELAYD, "--config", path],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(p)
        try:
            out, _ = p.communicate(timeout=20)
            return p.returncode, out.decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGTERM)
            out, _ = p.communicate(timeout=10)
            return None, out.decode(errors="replace")

    def events_text(self):
        if not os.path.exists(self.events):
            return ""
        with open(self.events, errors="replace") as f:
            return f.read()

    def broken_configs(self, busy_port):
        """(name, config, key the error must name)."""
        def cfg(**changes):
            c = json.loads(json.dumps(self.base))
            for k, v in changes.items():
                c[k] = v
            return c

        listeners = self.base["listeners"]
        with open(os.path.join(self.dir, "ctl-file"), "w") as f:
            f.write("not a socket")
        with open(os.path.join(self.dir, "a-file"), "w") as f:
            f.write("not a directory")
        return [
            ("duplicate listeners", cfg(listeners=listeners + [listeners[0]]),
             "listeners[2].address"),
            ("address not local",
             cfg(listeners=listeners + [{"address": f"{NOT_LOCAL}:{h.free_port()}"}]),
             "listeners[2].address"),
            ("port in use",
             cfg(listeners=listeners + [{"address": f"127.0.0.1:{busy_port}"}]),
             "listeners[2].address"),
            ("log directory missing", cfg(log_file="no-log-dir/events.log"), "log_file"),
            ("control socket directory missing",
             cfg(control_socket="no-run-dir/danerelay.sock"), "control_socket"),
            ("control socket is a regular file", cfg(control_socket="ctl-file"),
             "control_socket"),
            ("spool under a regular file", cfg(spool_dir="a-file/spool"), "spool_dir"),
            ("empty spool_dir", cfg(spool_dir=""), "spool_dir"),
            # Read up to the NUL this would be the seeded spool itself.
            ("NUL in spool_dir", cfg(spool_dir="spool\u0000/elsewhere"), "spool_dir"),
        ]

    def test_broken_configs_are_refused_by_check_and_start_alike(self):
        # The precondition of "not local": nothing here may bind it.
        with socket.socket() as s:
            try:
                s.bind((NOT_LOCAL, 0))
                self.skipTest(f"{NOT_LOCAL} is an address of this host")
            except OSError:
                pass
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            busy_port = busy.getsockname()[1]
            for name, cfg, key in self.broken_configs(busy_port):
                with self.subTest(name):
                    path = self.write_config(cfg)
                    check = self.check_config(path)
                    self.assertNotEqual(check.returncode, 0, check.stdout + check.stderr)
                    self.assertNotIn("configuration ok", check.stdout)
                    self.assertIn(f"{path}: {key}: ", check.stderr)

                    spool = self.seed_spool()
                    if os.path.exists(self.events):
                        os.unlink(self.events)
                    before = snapshot(spool)
                    code, out = self.start(path)
                    self.assertIsNotNone(code, "the daemon started:\n" + out)
                    self.assertNotEqual(code, 0, out)
                    self.assertIn(f"{path}: {key}: ", out)
                    self.assertEqual(snapshot(spool), before, out)
                    logged = out + self.events_text()
                    self.assertNotIn("event=listen", logged)
                    self.assertNotIn("event=recovered", logged)
                    self.assertNotIn("event=quarantine", logged)
            # The other process's listener is still its own.
            with socket.create_connection(("127.0.0.1", busy_port), timeout=5):
                pass

    def test_a_good_start_recovers_the_same_spool(self):
        # The comparison above can see a change: a start that succeeds
        # removes the debris and quarantines the damaged message.
        spool = self.seed_spool()
        before = snapshot(spool)
        path = self.write_config(self.base)
        check = self.check_config(path)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("configuration ok", check.stdout)
        # --check-config bound the listeners and let them go; it created
        # nothing and changed nothing.
        self.assertEqual(snapshot(spool), before)
        self.assertFalse(os.path.exists(self.events))
        p = subprocess.Popen([h.DANERELAYD, "--config", path], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.wait_listening(p)
        self.wait_logged("event=recovered")  # recovery runs while the relay serves
        after = snapshot(spool)
        self.assertNotIn("tmp/0123456789ABCE", after)
        self.assertNotIn("state/0123456789ABCF", after)
        self.assertNotIn(f"msg/{DAMAGED_ID}", after)
        self.assertIn(f"quarantine/{DAMAGED_ID}", after)
        log = self.events_text()
        self.assertIn("event=recovered", log)
        self.assertIn("event=listen", log)
        # The control socket was listening before recovery changed anything.
        self.assertLess(log.index("event=control-listen"), log.index("event=recovered"))

    def test_the_rights_of_the_daemons_user_are_checked(self):
        # Run as nobody: root may write anywhere, so only another user shows
        # whether the check asks for the rights the start will need.
        if os.geteuid() != 0:
            self.skipTest("needs root to run the daemon as nobody")
        os.chmod(self.dir, 0o755)
        spool = self.seed_spool()
        shutil.chown(spool, "root")  # root's, mode 0700
        os.makedirs(os.path.join(self.dir, "logs"), mode=0o755)  # root's
        cfg = {"hostname": "relay.e2e.test", "spool_dir": "spool",
               "listeners": [{"address": f"127.0.0.1:{h.free_port()}"},
                             {"address": "127.0.0.1:1"}],
               "log_file": "logs/events.log", "dns": {"resolvers": ["127.0.0.1:53"]}}
        path = self.write_config(cfg)
        os.chmod(path, 0o644)
        before = snapshot(spool)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        check = subprocess.run(as_nobody + [h.DANERELAYD, "--config", path, "--check-config"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
        err = check.stderr
        self.assertIn(f"{path}: listeners[1].address: 127.0.0.1:1: the port needs root or "
                      "CAP_NET_BIND_SERVICE", err)
        self.assertIn(f"{path}: log_file: cannot create {self.dir}/logs/events.log in "
                      f"{self.dir}/logs: Permission denied", err)
        self.assertIn(f"{path}: control_socket: cannot create {spool}/control.sock in {spool}: "
                      "Permission denied", err)
        self.assertIn(f"{path}: spool_dir: {spool}: cannot write: Permission denied", err)
        code, out = self.start(path, prefix=as_nobody)
        self.assertEqual(code, 1, out)
        self.assertEqual(snapshot(spool), before)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "logs", "events.log")))

    def wait_logged(self, text, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.events_text():
                return
            time.sleep(0.05)
        self.fail(f"{text} not logged within {seconds} s:\n" + self.events_text()[-3000:])

    def test_a_large_queue_is_read_while_the_relay_already_serves(self):
        """20,000 queued messages (written by the spool's own commit), one of
        them damaged: the listener opens before recovery has read them (the
        log says listen, then recovered); a message submitted at once is
        accepted; recovery then indexes every message, quarantines the
        damaged one, and danectl status shows it done."""
        n = 20000
        spool = os.path.join(self.dir, "spool")
        shutil.rmtree(spool, ignore_errors=True)
        fill = subprocess.run([SPOOL_FILL, spool, str(n), "2048", "queued@nowhere.test"],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(fill.returncode, 0, fill.stderr)
        ids = sorted(os.listdir(os.path.join(spool, "msg")))
        self.assertEqual(len(ids), n)
        with open(os.path.join(spool, "msg", ids[n // 2]), "r+b") as f:
            f.seek(-3, os.SEEK_END)
            f.write(b"X")  # the checksum no longer matches
        h.give_to_run_user(spool)
        cfg = json.loads(json.dumps(self.base))
        cfg["delivery"] = {"enabled": False}
        path = self.write_config(cfg)
        p = subprocess.Popen([h.DANERELAYD, "--config", path], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        t0 = time.monotonic()
        self.wait_listening(p)
        listening = time.monotonic() - t0
        out = self.relay.swaks("--to", "new@nowhere.test", "--from", "a@inside.test")
        self.assertTrue(h.queued_id(out), out)
        self.wait_logged("event=recovered", seconds=240)
        log = self.events_text()
        self.assertLess(log.index("event=listen"), log.index("event=recovered"))
        recovered = next(ln for ln in log.splitlines() if "event=recovered" in ln)
        self.assertIn(f" queued={n - 1}", recovered)
        self.assertIn(" quarantined=1", recovered)
        self.assertTrue(os.path.exists(os.path.join(spool, "quarantine", ids[n // 2])))
        st = subprocess.run([h.DANECTL, "--config", path, "status", "--json"],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(st.returncode, 0, st.stderr)
        q = json.loads(st.stdout)["queue"]
        self.assertEqual(q["recovery"], {"running": False, "listed": n, "checked": n})
        self.assertEqual(q["scheduled"], n - 1 + 1)  # the recovered and the new one
        print(f"listening {listening:.2f} s after start; {recovered}", file=sys.stderr)

    def wait_listening(self, p):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.assertIsNone(p.poll(), "danerelayd exited:\n" + self.events_text())
            try:
                with socket.create_connection(("127.0.0.1", self.relay.port), timeout=5) as s:
                    s.recv(512)
                    s.sendall(b"QUIT\r\n")
                return
            except OSError:
                time.sleep(0.05)
        self.fail("danerelayd did not listen within 15 s")

    def test_open_file_limit_raised_to_the_hard_limit_and_logged(self):
        path = self.write_config(self.base)
        p = subprocess.Popen(["prlimit", "--nofile=256:4096", "--", h.DANERELAYD, "--config",
                              path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.wait_listening(p)  # prlimit execs the daemon: same PID
        start = [ln for ln in self.events_text().splitlines() if " event=start " in ln]
        self.assertEqual(len(start), 1, self.events_text())
        self.assertIn(" max_open_files=4096", start[0])
        with open(f"/proc/{p.pid}/limits") as f:
            limits = f.read()
        line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], ["4096", "4096"], limits)

    def test_check_config_while_the_daemon_runs(self):
        """An operator checks the configuration before a restart with the
        daemon up: its ports are noted, not failed; a second start still fails."""
        path = self.write_config(self.base)
        p = subprocess.Popen([h.DANERELAYD, "--config", path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.wait_listening(p)
        check = subprocess.run([h.DANERELAYD, "--config", path, "--check-config"],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("configuration ok", check.stdout)
        self.assertIn("not checked: a danerelayd runs on this spool", check.stdout)
        second = subprocess.run([h.DANERELAYD, "--config", path],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(second.returncode, 1, second.stdout + second.stderr)
        self.assertIn("locked by a running danerelayd", second.stderr)


if __name__ == "__main__":
    unittest.main()
