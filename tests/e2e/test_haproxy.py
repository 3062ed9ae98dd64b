"""End-to-end: two shared-nothing danerelayd behind Debian's haproxy (TCP
mode, PROXY protocol v2 and v1) on loopback, delivering to the lab's
receiving Postfix. haproxy connects from 127.0.0.5 (the only proxy_from);
the "inside" client is 127.0.0.1 (relay_networks), the "outside" one binds
127.0.0.9. Checks: relay_networks, the log and the Received: header see the
real client, not haproxy; both relays deliver; stopping one relay (SIGTERM
by PID) loses nothing and its spool delivers once it is back; anyone but
proxy_from, a garbage header, or no header at all is closed with a log
line; the client's first bytes after the header are kept; implicit TLS
behind a PROXY header works."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import mtalab  # noqa: E402
import relayharness as h  # noqa: E402

LAB = None
MTAS = None
BALANCER = "127.0.0.5"  # haproxy's source address, the relays' proxy_from
INSIDE = "127.0.0.1"  # in relay_networks
OUTSIDE = "127.0.0.9"  # not
SENDER = "sender@insecure.test"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def setUpModule():
    global LAB, MTAS
    if not shutil.which("haproxy"):
        raise unittest.SkipTest("haproxy is not installed (scripts/install-deps.sh)")
    LAB = dnslab.DnsLab().build().start()
    try:
        MTAS = mtalab.ReceivingMtas(LAB, {"mx.insecure.test": False}).start()
    except Exception:
        LAB.cleanup()
        raise


def tearDownModule():
    if MTAS:
        MTAS.cleanup()
    LAB.cleanup()


def wait_until(pred, timeout=30, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def v2_header(src, sport, dst, dport):
    block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(block)) + block


class HaProxy:
    """haproxy in the foreground (-db), config in its own temp dir, stopped by PID."""

    def __init__(self, frontends):
        """frontends: [(frontend port, "send-proxy-v2"|"send-proxy", [relay ports])]."""
        self.dir = tempfile.mkdtemp(prefix="danerelay-haproxy-")
        self.sock = os.path.join(self.dir, "admin.sock")
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        lines = ["global", f"    stats socket {self.sock} level admin", "    maxconn 200",
                 "defaults", "    mode tcp", "    timeout connect 2s", "    timeout client 60s",
                 "    timeout server 60s", "    retries 2", "    option redispatch 1"]
        for i, (port, send, relays) in enumerate(frontends):
            lines += [f"frontend smtp{i}", f"    bind 127.0.0.1:{port}",
                      f"    default_backend relays{i}",
                      f"backend relays{i}", "    balance roundrobin", "    option smtpchk"]
            for n, rport in enumerate(relays):
                # check-send-proxy: the health check carries a header too
                # (LOCAL in v2), as a proxy listener requires.
                lines.append(f"    server r{n} 127.0.0.1:{rport} {send} source {BALANCER} "
                             "check check-send-proxy inter 500 fall 1 rise 1")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.log = os.path.join(self.dir, "haproxy.log")

    def start(self):
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=self.logfile,
                                     stderr=subprocess.STDOUT)
        if not wait_until(lambda: self.proc.poll() is not None or self.all_up(), timeout=20) \
                or self.proc.poll() is not None:
            raise RuntimeError("haproxy: servers not up\n" + self.read_log() + self.state())
        return self

    def command(self, cmd):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(self.sock)
                s.sendall(cmd.encode() + b"\n")
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
                return out.decode(errors="replace")
        except OSError:
            return ""

    def state(self):
        return self.command("show servers state")

    def up(self):
        """{backend/server: operational state == 2 (UP)}"""
        out = {}
        for line in self.state().splitlines():
            f = line.split()
            if len(f) > 5 and f[0].isdigit():
                out[f"{f[1]}/{f[3]}"] = f[5] == "2"
        return out

    def all_up(self):
        u = self.up()
        return bool(u) and all(u.values())

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def cleanup(self):
        h.stop_process(self.proc)
        if self.proc:
            self.logfile.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_relay(tag):
    """A relay with a v2 proxy listener, a v1 one and an implicit-TLS v2 one."""
    ports = {k: h.free_port() for k in ("v2", "v1", "v2tls")}
    extra = [{"address": f"127.0.0.1:{ports['v2']}", "proxy_protocol": "v2",
              "proxy_from": [f"{BALANCER}/32"]},
             {"address": f"127.0.0.1:{ports['v1']}", "proxy_protocol": "v1",
              "proxy_from": [f"{BALANCER}/32"]},
             {"address": f"127.0.0.1:{ports['v2tls']}", "tls": "implicit",
              "proxy_protocol": "v2", "proxy_from": [f"{BALANCER}/32"]}]
    r = h.Relay(dns=LAB.relay_dns("local"), relay_networks=(f"{INSIDE}/32",),
                limits={"command_timeout": 4}, extra_listeners=extra)
    with open(r.config) as f:
        cfg = json.load(f)
    cfg["hostname"] = f"{tag}.e2e.test"
    cfg["delivery"] = {"retry_initial": 1, "retry_max": 2, "connect_timeout": 5,
                       "command_timeout": 15, "data_timeout": 15}
    with open(r.config, "w") as f:
        json.dump(cfg, f)
    r.proxy_ports = ports
    return r


class HaProxyTest(unittest.TestCase):
    def setUp(self):
        self.relays = []
        for tag in ("relay1", "relay2"):
            r = make_relay(tag)
            self.addCleanup(r.cleanup)
            r.start()
            self.relays.append(r)
        self.front_v2, self.front_v1 = h.free_port(), h.free_port()
        self.hap = HaProxy([
            (self.front_v2, "send-proxy-v2", [r.proxy_ports["v2"] for r in self.relays]),
            (self.front_v1, "send-proxy", [r.proxy_ports["v1"] for r in self.relays])])
        self.addCleanup(self.hap.cleanup)
        self.hap.start()

    def send(self, subject, port, source=INSIDE, to="pat@insecure.test"):
        return h.Relay.swaks(self.relays[0], "--from", SENDER, "--to", to, "--header",
                             f"Subject: {subject}", "--local-interface", source, port=port)

    def received(self, subject):
        return [m for m in MTAS.messages() if f"Subject: {subject}" in m["text"]]

    def logs(self):
        return "\n".join(r.read_log() for r in self.relays)

    def test_v2_real_client_address_both_relays_deliver(self):
        tag = f"v2-{time.monotonic_ns()}"
        # Outside relay_networks, through the balancer: refused at RCPT.
        out = self.send(f"{tag}-outside", self.front_v2, source=OUTSIDE)
        self.assertIn("554 5.7.1", out)
        self.assertIsNone(h.queued_id(out))
        self.assertRegex(self.logs(), rf"event=connect client={OUTSIDE} via={BALANCER} ")
        # Inside: accepted; six sessions, round robin over both relays.
        for i in range(6):
            out = self.send(f"{tag}-{i}", self.front_v2)
            self.assertTrue(h.queued_id(out), out)
        got = wait_until(lambda: len([m for m in MTAS.messages() if tag in m["text"]]) >= 6,
                         timeout=60)
        self.assertTrue(got, self.logs()[-4000:])
        for r in self.relays:
            log = r.read_log()
            self.assertIn("outcome=delivered", log, "this relay delivered nothing")
            self.assertRegex(log, rf"event=connect client={INSIDE} via={BALANCER} ")
        msg = self.received(f"{tag}-0")[0]["text"]
        # Our Received: field names the client haproxy was relaying, not haproxy.
        self.assertRegex(msg, r"Received: from \S+ \(\[127\.0\.0\.1\]\)\s+by relay[12]\.e2e\.test")
        self.assertNotIn(BALANCER, msg)
        self.assertEqual(len([m for m in MTAS.messages() if f"{tag}-outside" in m["text"]]), 0)
        # haproxy's health checks (LOCAL: the balancer itself) pass and are logged as such.
        self.assertRegex(self.logs(), rf"event=connect client={BALANCER} via={BALANCER} ")

    def test_v1_through_haproxy(self):
        tag = f"v1-{time.monotonic_ns()}"
        self.assertIn("554 5.7.1", self.send(f"{tag}-outside", self.front_v1, source=OUTSIDE))
        out = self.send(f"{tag}-inside", self.front_v1)
        self.assertTrue(h.queued_id(out), out)
        self.assertTrue(wait_until(lambda: self.received(f"{tag}-inside"), timeout=60))
        self.assertRegex(self.logs(), rf"event=connect client={OUTSIDE} via={BALANCER} "
                                      rf"listener=127\.0\.0\.1:({self.relays[0].proxy_ports['v1']}|"
                                      rf"{self.relays[1].proxy_ports['v1']})")

    def test_stopping_one_relay_loses_nothing(self):
        tag = f"stop-{time.monotonic_ns()}"
        MTAS.pf.stop()  # mail queues on both relays meanwhile
        try:
            for i in range(4):
                self.assertTrue(h.queued_id(self.send(f"{tag}-a{i}", self.front_v2)))
            for r in self.relays:
                self.assertTrue(wait_until(lambda: r.queue()["messages"], timeout=10),
                                "round robin left a relay without mail")
            stopped = self.relays[0]
            os.kill(stopped.proc.pid, signal.SIGTERM)
            stopped.proc.wait(timeout=15)
            stopped.stop()
            # At once, before or after the health check noticed: every new
            # session lands on the other relay (retries, redispatch).
            for i in range(4):
                out = self.send(f"{tag}-b{i}", self.front_v2)
                self.assertTrue(h.queued_id(out), out + self.hap.read_log())
            self.assertTrue(wait_until(lambda: not self.hap.up().get("relays0/r0", True),
                                       timeout=10), self.hap.state())
        finally:
            MTAS.pf.start()
        expect = {f"{tag}-a{i}" for i in range(4)} | {f"{tag}-b{i}" for i in range(4)}

        def arrived():
            return {s for s in expect if self.received(s)}
        # The running relay delivers its share; the stopped one's waits for it.
        self.assertTrue(wait_until(lambda: not self.relays[1].queue()["messages"], timeout=60),
                        self.relays[1].read_log()[-3000:])
        # Its share is still in its spool, not delivered by anyone else.
        self.assertTrue(self.relays[0].queue()["messages"])
        self.assertLess(len(arrived()), len(expect))
        self.relays[0].start()
        self.assertTrue(wait_until(lambda: arrived() == expect, timeout=60),
                        f"missing {expect - arrived()}\n" + self.relays[0].read_log()[-3000:])
        self.assertTrue(wait_until(lambda: not self.relays[0].queue()["messages"], timeout=30))
        for s in expect:  # once each: nothing lost, nothing twice
            self.assertEqual(len(self.received(s)), 1, s)


class ProxyListenerTest(unittest.TestCase):
    """Straight to a relay's proxy listeners, as a hostile peer would."""

    @classmethod
    def setUpClass(cls):
        cls.relay = make_relay("relay3").start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.cleanup()

    def connect(self, port_key, source):
        return socket.create_connection(("127.0.0.1", self.relay.proxy_ports[port_key]),
                                        timeout=20, source_address=(source, 0))

    def assert_closed_silently(self, s):
        """Closed with nothing sent: EOF, or a reset (the relay closed with
        our unread bytes in its socket, which makes the kernel send RST)."""
        s.settimeout(20)
        try:
            got = s.recv(512)
        except ConnectionResetError:
            got = b""
        self.assertEqual(got, b"", "the relay sent something")

    def test_peer_outside_proxy_from_is_closed(self):
        with self.connect("v2", INSIDE) as s:
            s.sendall(v2_header("192.0.2.1", 1000, "127.0.0.1", 25) + b"EHLO x\r\n")
            self.assert_closed_silently(s)
        self.assertTrue(wait_until(lambda: re.search(
            rf'event=proxy-refused peer={INSIDE} listener=127\.0\.0\.1:'
            rf'{self.relay.proxy_ports["v2"]} reason="not in proxy_from"', self.relay.read_log())))

    def test_garbage_header_is_closed(self):
        for key, garbage in (("v2", b"EHLO attacker\r\n"),
                             ("v1", b"PROXY TCP4 1.2.3.999 127.0.0.1 1 25\r\n"),
                             ("v2", V2_SIG + b"\x21\x11\xff\xff" + b"A" * 100)):
            with self.connect(key, BALANCER) as s:
                s.sendall(garbage)
                self.assert_closed_silently(s)
        log = self.relay.read_log()
        self.assertIn("bad signature", log)
        self.assertIn("PROXY v1: bad source address", log)
        self.assertIn("length 65535 over", log)
        self.assertRegex(log, rf"event=proxy-refused peer={BALANCER} ")

    def test_no_header_is_timed_out(self):
        start = time.monotonic()
        with self.connect("v2", BALANCER) as s:
            self.assert_closed_silently(s)
        self.assertLess(time.monotonic() - start, 10)  # command_timeout 4 here
        self.assertIn("no complete PROXY header in time", self.relay.read_log())

    def test_client_bytes_after_the_header_are_kept(self):
        # Header and the first command in one segment: the EHLO is answered.
        with self.connect("v1", BALANCER) as s:
            conn = h.SmtpConn(s)
            conn.send(b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 25\r\nEHLO one.example\r\n")
            self.assertEqual(conn.reply()[0], 220)
            self.assertEqual(conn.reply()[0], 250)
            self.assertEqual(conn.command("MAIL FROM:<a@insecure.test>")[0], 250)
            self.assertEqual(conn.command("RCPT TO:<b@insecure.test>")[0], 250)  # inside
            self.assertEqual(conn.command("QUIT")[0], 221)

    def test_implicit_tls_after_the_header(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with self.connect("v2tls", BALANCER) as raw:
            raw.sendall(v2_header(OUTSIDE, 1234, "127.0.0.1", 465))
            with ctx.wrap_socket(raw) as s:
                conn = h.SmtpConn(s)
                self.assertEqual(conn.reply()[0], 220)
                self.assertEqual(conn.command("EHLO tls.example")[0], 250)
                self.assertEqual(conn.command("MAIL FROM:<a@insecure.test>")[0], 250)
                self.assertEqual(conn.command("RCPT TO:<b@insecure.test>")[0], 554)  # outside
                conn.command("QUIT")
        self.assertRegex(self.relay.read_log(), rf"event=tls client={OUTSIDE} ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
