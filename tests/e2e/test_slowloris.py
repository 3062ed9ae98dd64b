"""End-to-end: slow clients cannot hold session slots (issue 13).

A command line must be complete within command_timeout, however its bytes
trickle in; DATA must keep up 500 bytes/s (each byte buys 2 ms, never more
than command_timeout from now); the TLS handshake has command_timeout in
all, and on the implicit-TLS port a timeout sends nothing in cleartext.
Clients outside relay_networks are limited per /24, so one neighbourhood
cannot take every slot while another address still gets in, and the last
reserved_sessions slots are kept for relay_networks.

Everything is on loopback (127.0.0.0/8 is all local on Linux, so 127.0.1.x
is "another /24"). Every loop is bounded in count and in time.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import relayharness as h  # noqa: E402

TIMEOUT = 2  # command_timeout for these tests


def trickle(sock, data, interval, limit):
    """Send `data` one byte every `interval` s until the server closes or
    answers, or `limit` s pass. Returns (seconds taken, bytes received)."""
    sock.setblocking(False)
    t0 = time.monotonic()
    got = b""
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
            if got.endswith(b"\r\n"):
                break
        except BlockingIOError:
            pass
        except ConnectionResetError:
            # The server closed with our trickled bytes still unread in its
            # socket, so the kernel sent a reset: closed, as EOF is.
            break
        try:
            sock.send(data[i % len(data):i % len(data) + 1])
        except OSError:
            break  # reset: the server closed
        i += 1
        time.sleep(interval)
    return time.monotonic() - t0, got


def wait_closed(sock, limit):
    """Read until EOF or `limit` s: (seconds taken, bytes received, closed)."""
    sock.settimeout(0.2)
    t0 = time.monotonic()
    got = b""
    while time.monotonic() - t0 < limit:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0, got, True
        if not chunk:
            return time.monotonic() - t0, got, True
        got += chunk
    return time.monotonic() - t0, got, False


class TrickleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = h.Relay(limits={"command_timeout": TIMEOUT, "session_timeout": 120})
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.cleanup()

    def test_trickled_command_is_cut_after_command_timeout(self):
        c = self.relay.connect()
        self.assertEqual(c.reply()[0], 220)
        # One byte every 0.4 s: before, every byte reset the timer, and the
        # session lived until session_timeout (120 s here).
        took, got = trickle(c.sock, b"NOOP NOOP NOOP NOOP NOOP NOOP", 0.4, 15)
        c.close()
        self.assertIn(b"421 4.4.2", got)
        self.assertLess(took, TIMEOUT + 2, f"cut off after {took:.1f} s")
        self.assertIn("after=command_timeout", self.relay.read_log())

    def test_complete_commands_are_not_cut(self):
        # A command every 0.5 s, each well within the timeout: the session
        # lives on for twice command_timeout.
        c = self.relay.connect()
        c.reply()
        t0 = time.monotonic()
        for _ in range(4 * TIMEOUT):
            self.assertEqual(c.command("NOOP")[0], 250)
            time.sleep(0.5)
        self.assertGreater(time.monotonic() - t0, 2 * TIMEOUT - 0.5)
        self.assertEqual(c.command("QUIT")[0], 221)
        c.close()

    def test_trickled_data_is_cut_after_command_timeout(self):
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        self.assertEqual(c.command("MAIL FROM:<a@inside.test>")[0], 250)
        self.assertEqual(c.command("RCPT TO:<b@example.com>")[0], 250)
        self.assertEqual(c.command("DATA")[0], 354)
        took, got = trickle(c.sock, b"Subject: slow\r\n\r\nx" * 100, 0.4, 15)
        c.close()
        self.assertIn(b"421 4.4.2", got)
        self.assertLess(took, TIMEOUT + 2, f"cut off after {took:.1f} s")

    def test_data_at_a_steady_rate_is_not_cut(self):
        # 2 KB/s for 2 x command_timeout: faster than 500 bytes/s, accepted.
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@inside.test>")
        c.command("RCPT TO:<b@example.com>")
        self.assertEqual(c.command("DATA")[0], 354)
        c.send(b"Subject: steady\r\n\r\n")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2 * TIMEOUT:
            c.send(b"y" * 198 + b"\r\n")
            time.sleep(0.1)
        code, lines = c.command(".")
        self.assertEqual(code, 250, lines)
        c.close()

    def test_implicit_tls_silent_client_gets_no_cleartext(self):
        s = socket.create_connection(("127.0.0.1", self.relay.tls_port), timeout=20)
        took, got, closed = wait_closed(s, 15)
        s.close()
        self.assertTrue(closed, "not closed")
        self.assertEqual(got, b"", "cleartext sent on the implicit-TLS port")
        self.assertLess(took, TIMEOUT + 2)

    def test_implicit_tls_half_handshake_gets_no_cleartext(self):
        s = socket.create_connection(("127.0.0.1", self.relay.tls_port), timeout=20)
        # The first bytes of a TLS record (handshake, TLS 1.0 record version,
        # 512 bytes announced) and then nothing: the handshake never ends.
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        took, got, closed = wait_closed(s, 15)
        s.close()
        self.assertTrue(closed, "not closed")
        self.assertNotIn(b"421", got)
        self.assertEqual(got, b"")
        self.assertLess(took, TIMEOUT + 2)
        self.assertIn("timeout in TLS handshake", self.relay.read_log())

    def test_starttls_handshake_has_a_deadline(self):
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        self.assertEqual(c.command("STARTTLS")[0], 220)
        # A ClientHello trickled a byte at a time never finishes.
        took, got = trickle(c.sock, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,
                            0.4, 15)
        c.close()
        self.assertNotIn(b"421", got)
        self.assertLess(took, TIMEOUT + 2, f"cut off after {took:.1f} s")


class PerNetworkTest(unittest.TestCase):
    def test_one_network_cannot_take_every_slot(self):
        relay = h.Relay(relay_networks=["127.0.0.1/32"],
                        limits={"max_sessions_per_network": 3, "max_sessions_per_client": 2,
                                "max_sessions": 10})
        conns = []
        try:
            relay.start()
            for src in ("127.0.0.2", "127.0.0.2", "127.0.0.3"):
                conns.append(relay.connect(source=src))
                self.assertEqual(conns[-1].reply()[0], 220)
            # a fourth from the same /24, from an address with no session yet
            c = relay.connect(source="127.0.0.4")
            conns.append(c)
            code, lines = c.reply()
            self.assertEqual(code, 421, lines)
            self.assertIn("too many sessions from this network", lines[0])
            # another /24 still gets in, and so does the relay network
            for src in ("127.0.1.2", "127.0.0.1"):
                conns.append(relay.connect(source=src))
                self.assertEqual(conns[-1].reply()[0], 220, src)
            self.assertIn('network=127.0.0.0/24 reason="too many sessions from this network"',
                          relay.read_log())
            # a slot freed in the network is a slot again
            conns[0].command("QUIT")
            conns[0].close()
            deadline = time.monotonic() + 10
            code = None
            while time.monotonic() < deadline:
                c = relay.connect(source="127.0.0.4")
                conns.append(c)
                code = c.reply()[0]
                if code == 220:
                    break
                time.sleep(0.2)
            self.assertEqual(code, 220)
        finally:
            for c in conns:
                c.close()
            relay.cleanup()

    def test_last_slots_are_kept_for_relay_networks(self):
        relay = h.Relay(relay_networks=["127.0.0.1/32"],
                        limits={"max_sessions": 4, "reserved_sessions": 2})
        conns = []
        try:
            relay.start()
            # outsiders from different networks take what is not reserved ...
            for src in ("127.0.2.2", "127.0.3.2"):
                conns.append(relay.connect(source=src))
                self.assertEqual(conns[-1].reply()[0], 220, src)
            c = relay.connect(source="127.0.4.2")
            conns.append(c)
            code, lines = c.reply()
            self.assertEqual(code, 421, lines)
            # ... and the relay network still gets the last two
            for _ in range(2):
                conns.append(relay.connect(source="127.0.0.1"))
                self.assertEqual(conns[-1].reply()[0], 220)
            c = relay.connect(source="127.0.0.1")
            conns.append(c)
            self.assertEqual(c.reply()[0], 421)  # max_sessions itself still holds
        finally:
            for c in conns:
                c.close()
            relay.cleanup()


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@unittest.skipUnless(shutil.which("prlimit"), "needs prlimit")
class AcceptBackoffTest(unittest.TestCase):
    """Out of descriptors, the listener pauses instead of spinning on a
    backlog it cannot accept; it serves again once descriptors are free."""

    def test_emfile_does_not_spin_and_recovers(self):
        relay = h.Relay(relay_networks=["127.0.0.0/8"],
                        limits={"max_sessions_per_client": 200, "max_sessions": 200})
        conns = []
        try:
            relay.start()
            pid = relay.proc.pid
            used = len(os.listdir(f"/proc/{pid}/fd"))
            # As the daemon's own user: root without CAP_SYS_RESOURCE (a
            # container) may not change another user's limits.
            prlimit = h.as_run_user(["prlimit", "--pid", str(pid)])
            soft = subprocess.run(prlimit + ["--nofile", "--output=SOFT", "--noheadings"],
                                  capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
            # Only the soft limit: raising it back needs no privilege.
            subprocess.run(prlimit + [f"--nofile={used + 4}:"], check=True, timeout=30)
            for i in range(30):
                conns.append(socket.create_connection(("127.0.0.1", relay.port), timeout=20))
            time.sleep(0.5)  # the daemon has taken what it can
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(3)
            busy = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            self.assertLess(busy, 0.2, f"daemon used {busy:.0%} of a CPU while out of fds")
            log = relay.read_log()
            self.assertIn("event=accept-paused", log)
            self.assertIn("Too many open files", log)
            # once per episode, not once per wake-up
            self.assertEqual(log.count("event=accept-paused"), 1, log[-3000:])
            for c in conns:
                c.close()
            conns = []
            subprocess.run(prlimit + [f"--nofile={soft}:"], check=True,
                           timeout=30)
            deadline = time.monotonic() + 15
            code = None
            while time.monotonic() < deadline and code != 220:
                try:
                    c = relay.connect()
                    conns.append(c)
                    code = c.reply()[0]
                except OSError:
                    time.sleep(0.2)
            self.assertEqual(code, 220)
            out = relay.swaks("--from", "a@inside.test", "--to", "b@example.com")
            self.assertIsNotNone(h.queued_id(out), out)
        finally:
            for c in conns:
                c.close()
            relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
