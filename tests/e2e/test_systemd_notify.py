"""End-to-end: danerelayd speaks systemd's notify protocol (issue 15).

The test plays the service manager: it binds a datagram socket and names it
in NOTIFY_SOCKET (with WATCHDOG_USEC), as systemd does for a Type=notify unit
with WatchdogSec=. READY=1 comes only once the SMTP listener answers; the
watchdog pings keep coming from the event loop; SIGHUP brings RELOADING=1
then READY=1; SIGTERM brings STOPPING=1. Loopback only; the daemon is stopped
by its PID; every wait is bounded."""
import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import relayharness as h  # noqa: E402

POLICY = {"policies": {"example.org": {"level": "dane-only"}}}


class Manager:
    """The service manager's end of NOTIFY_SOCKET: every datagram, with the
    time it came, and for READY=1 whether the SMTP port greeted right then."""

    def __init__(self, directory, smtp_port):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        # As systemd's /run/systemd/notify: writable by the daemon after it
        # has dropped root.
        os.chmod(self.path, 0o777)
        self.sock.settimeout(0.2)
        self.smtp_port = smtp_port
        self.messages = []  # (time, text)
        self.greeted_at_ready = None
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def greets(self):
        try:
            with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=5) as s:
                s.settimeout(5)
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def run(self):
        while not self.done:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            if data.startswith("READY=1") and self.greeted_at_ready is None:
                self.greeted_at_ready = self.greets()
            with self.lock:
                self.messages.append((time.monotonic(), data))

    def texts(self):
        with self.lock:
            return [m for _, m in self.messages]

    def wait_for(self, prefix, after=0, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.startswith(prefix) for m in self.texts()[after:]):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.done = True
        self.thread.join(timeout=5)
        self.sock.close()


class SystemdNotifyTest(unittest.TestCase):
    def setUp(self):
        self.relay = h.Relay()
        policy_dir = os.path.join(self.relay.dir, "policy")
        os.mkdir(policy_dir)
        with open(os.path.join(policy_dir, "local.json"), "w") as f:
            json.dump(POLICY, f)
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["policy_dir"] = policy_dir
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)
        self.manager = Manager(self.relay.dir, self.relay.port)
        self.relay.env.update({"NOTIFY_SOCKET": self.manager.path, "WATCHDOG_USEC": "400000"})
        self.relay.env.pop("WATCHDOG_PID", None)

    def tearDown(self):
        self.relay.cleanup()
        self.manager.close()

    def test_ready_watchdog_reload_and_stop(self):
        self.relay.start()
        self.assertTrue(self.manager.wait_for("READY=1"), self.manager.texts())
        self.assertTrue(self.manager.greeted_at_ready,
                        "READY=1 came before the SMTP listener greeted")
        ready = next(m for m in self.manager.texts() if m.startswith("READY=1"))
        self.assertIn("STATUS=0 messages queued; DNSSEC", ready)

        # WatchdogSec=0.4 s: a ping every 0.2 s from the loop, for as long as it runs.
        n0 = self.manager.texts().count("WATCHDOG=1")
        time.sleep(1.5)
        pings = self.manager.texts().count("WATCHDOG=1") - n0
        self.assertGreaterEqual(pings, 4, self.manager.texts())

        # SIGHUP: the policy reload is announced, and readiness after it.
        mark = len(self.manager.texts())
        os.kill(self.relay.proc.pid, signal.SIGHUP)
        self.assertTrue(self.manager.wait_for("RELOADING=1", mark), self.manager.texts()[mark:])
        after = self.manager.texts()[mark:]
        reloading = next(i for i, m in enumerate(after) if m.startswith("RELOADING=1"))
        self.assertTrue(self.manager.wait_for("READY=1", mark + reloading + 1),
                        self.manager.texts()[mark:])

        mark = len(self.manager.texts())
        os.kill(self.relay.proc.pid, signal.SIGTERM)
        self.relay.proc.wait(timeout=10)
        self.assertTrue(self.manager.wait_for("STOPPING=1", mark, timeout=2),
                        self.manager.texts()[mark:])

    def test_without_notify_socket_nothing_is_sent(self):
        self.relay.env.pop("NOTIFY_SOCKET")
        self.relay.start()
        time.sleep(1)
        self.assertEqual(self.manager.texts(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
