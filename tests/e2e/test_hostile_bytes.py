"""End-to-end: no byte from the network ends the daemon (audit issue 12).

A fake receiving MTA on mx.insecure.test's lab address answers with replies
that are not UTF-8 (451 4.3.0 \\xff\\xfe; a 5xx with invalid bytes and a bare
CR; a reply longer than the 512 bytes the relay records, so the cut falls in
the middle of a character). Inbound, a client sends ENVID=+FF, an ORCPT
decoding to 0xFF, and an address that is not UTF-8 under SMTPUTF8. Each
time: the daemon stays up, the queue stays readable (danectl queue show),
a restart is clean, and a DSN built from the hostile reply is clean."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import relayharness as h  # noqa: E402
import test_delivery as td  # noqa: E402

SENDER = td.SENDER  # sender@insecure.test: DSNs come back to the fake MTA
FFFD = "\ufffd"
LONG = "451 4.3.0 x" + "\u00e9" * 300  # 611 bytes of UTF-8: an e-acute at 511..512

REPLIES = {
    b"temp@": b"451 4.3.0 \xff\xfe\r\n",
    b"multi@": b"451-4.3.0 first \xc3\r\n451 4.3.0 last \xed\xa0\x80\r\n",
    b"cut@": LONG.encode() + b"\r\n",
    b"perm@": b"550 5.1.1 gone\xff\rX-Injected: yes\x00\x1b[2J\r\n",
}


class FakeMta:
    """A tiny SMTP responder on one lab address, port 25. RCPT replies come
    from REPLIES by local part; everything else is accepted, and the data of
    each transaction is kept."""

    def __init__(self, address):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 25))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.received = []  # (mail from, [rcpts], data bytes)
        self.stop_flag = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop_flag:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        conn.settimeout(30)
        buf = b""

        def line():
            nonlocal buf
            while b"\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            out, buf = buf.split(b"\n", 1)
            return out.rstrip(b"\r")

        try:
            conn.sendall(b"220 mx.insecure.test fake ESMTP\r\n")
            mail, rcpts = None, []
            while True:
                cmd = line()
                if cmd is None:
                    return
                verb = cmd[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-mx.insecure.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"MAIL":
                    mail, rcpts = cmd, []
                    conn.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    reply = next((r for k, r in REPLIES.items() if b"<" + k in cmd), None)
                    if reply is None:
                        rcpts.append(cmd)
                        reply = b"250 2.1.5 ok\r\n"
                    conn.sendall(reply)
                elif verb == b"DATA":
                    if not rcpts:
                        conn.sendall(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    conn.sendall(b"354 go\r\n")
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    data, buf = (b"\r\n" + buf).split(b"\r\n.\r\n", 1)
                    self.received.append((mail, rcpts, data[2:]))
                    conn.sendall(b"250 2.0.0 kept\r\n")
                elif verb == b"RSET":
                    mail, rcpts = None, []
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"502 5.5.2 what\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop_flag = True
        self.thread.join(timeout=5)
        self.sock.close()


def setUpModule():
    td.LAB = dnslab.DnsLab().build().start()


def tearDownModule():
    td.LAB.cleanup()


class HostileBytesTest(td.LabCase):
    def setUp(self):
        self.mta = FakeMta(dnslab.HOSTS["mx.insecure.test"])
        self.addCleanup(self.mta.close)
        self.e = self.env(None)

    def ctl(self, *args):
        r = subprocess.run([h.DANECTL, "--spool", self.e.relay.spool, "queue", *args],
                           capture_output=True, timeout=30)
        return r.returncode, r.stdout

    def assert_alive(self):
        self.assertIsNone(self.e.relay.proc.poll(),
                          "danerelayd died:\n" + self.e.relay.read_log()[-3000:])
        self.assertNotIn("terminate called", self.e.relay.read_log())

    def assert_restarts_cleanly(self):
        before = self.e.relay.read_log().count("event=recovered")
        self.e.relay.stop()
        self.e.relay.start()
        # The relay listens first and reads its queue after (event=recovered).
        deadline = time.monotonic() + 30
        while (self.e.relay.read_log().count("event=recovered") <= before
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assert_alive()
        recovered = [l for l in self.e.relay.read_log().splitlines() if "event=recovered" in l]
        self.assertEqual(len(recovered), before + 1, self.e.relay.read_log()[-3000:])
        self.assertIn("quarantined=0", recovered[-1])
        self.assertNotIn("quarantined=1", self.e.relay.read_log())

    def test_invalid_utf8_replies_leave_the_message_queued_and_readable(self):
        qids = {who: self.e.submit(f"{who}@insecure.test") for who in ("temp", "multi", "cut")}
        for who, qid in qids.items():
            rcpt = f"{who}@insecure.test"
            st = td.wait_until(lambda: (self.e.states(qid) or {}).get(rcpt, ("",))[0] ==
                               "deferred" and self.e.states(qid))
            self.assertTrue(st, self.e.relay.read_log()[-3000:])
            self.assert_alive()
            self.assertIn("4.3.0", st[rcpt][1])
            rc, out = self.ctl("show", qid, "--json")
            self.assertEqual(rc, 0, out)
            shown = json.loads(out.decode("utf-8"))  # strict: valid UTF-8
            self.assertEqual(shown["recipients"][0]["state"], "deferred")
            rc, text = self.ctl("show", qid)
            self.assertEqual(rc, 0)
            self.assertIn("4.3.0", text.decode("utf-8"))
        self.assertIn(FFFD + FFFD, self.e.states(qids["temp"])["temp@insecure.test"][1])
        self.assertIn("last " + FFFD, self.e.states(qids["multi"])["multi@insecure.test"][1])
        # The attempt record keeps 512 bytes at most, cut between characters.
        rc, out = self.ctl("show", qids["cut"], "--json")
        kept = json.loads(out.decode("utf-8"))["recipients"][0]["history"][-1]["reply"]
        self.assertEqual(len(kept.encode()), 511, kept)
        self.assertTrue(LONG.startswith(kept), kept)
        # The log has the bytes, escaped, and stays UTF-8.
        with open(self.e.relay.log, "rb") as f:
            f.read().decode("utf-8")
        self.assert_restarts_cleanly()
        for qid in qids.values():
            self.assertEqual(self.ctl("show", qid, "--json")[0], 0)
        # Retried after the restart: still up, still queued.
        time.sleep(3)
        self.assert_alive()
        self.assertTrue(all(self.e.states(q) for q in qids.values()))

    def test_invalid_5xx_bounces_with_a_clean_dsn(self):
        qid = self.e.submit("perm@insecure.test")
        self.assertTrue(td.wait_until(lambda: self.e.states(qid) is None),
                        self.e.relay.read_log()[-3000:])
        dsn = td.wait_until(lambda: [d for m, r, d in self.mta.received if b"<>" in m])
        self.assertTrue(dsn, self.e.relay.read_log()[-3000:])
        self.assert_alive()
        data = dsn[0]
        own = data.split(b"Content-Type: message/rfc822")[0]  # the DSN's own text
        own.decode("utf-8")
        for i, c in enumerate(own):
            if c == 0x0D:
                self.assertEqual(own[i + 1:i + 2], b"\n", own[i - 40:i + 40])
            if c == 0x0A:
                self.assertEqual(own[i - 1:i], b"\r", own[i - 40:i + 40])
        for ln in own.split(b"\r\n"):
            self.assertLess(len(ln), 998)
            self.assertFalse(ln.startswith(b"X-Injected"), ln)
            self.assertFalse(any(b < 0x20 and b != 9 for b in ln), ln)
        self.assertIn(b"550 5.1.1 gone\xef\xbf\xbd", own)
        self.assert_restarts_cleanly()

    def test_hostile_inbound_parameters_do_not_kill_the_daemon(self):
        cases = [
            [b"MAIL FROM:<" + SENDER.encode() + b"> ENVID=+FF", b"RCPT TO:<ok1@insecure.test>"],
            [b"MAIL FROM:<" + SENDER.encode() + b"> ENVID=a+FF+FE+0D+0Ab",
             b"RCPT TO:<ok2@insecure.test> NOTIFY=FAILURE ORCPT=rfc822;x+FF+0D+0A@insecure.test"],
            [b"MAIL FROM:<" + SENDER.encode() + b"> SMTPUTF8",
             b"RCPT TO:<\xff\xfe@insecure.test>"],
            [b"MAIL FROM:<\xc3@insecure.test> SMTPUTF8 BODY=8BITMIME",
             b"RCPT TO:<ok3\xed\xa0\x80@insecure.test>"],
        ]
        for mail, rcpt in cases:
            c = self.e.relay.connect()
            try:
                self.assertEqual(c.reply()[0], 220)
                self.assertEqual(c.command("EHLO client.e2e.test")[0], 250)
                c.send(mail + b"\r\n")
                code, _ = c.reply()
                if code == 250:
                    c.send(rcpt + b"\r\n")
                    code, _ = c.reply()
                if code == 250:
                    self.assertEqual(c.command("DATA")[0], 354)
                    c.send(b"Subject: hostile\r\n\r\nbody\r\n.\r\n")
                    code, lines = c.reply()
                    self.assertIn(code, (250, 451, 550, 553, 554), lines)
                c.command("QUIT")
            finally:
                c.close()
            time.sleep(0.3)
            self.assert_alive()
        time.sleep(2)  # deliveries and DSNs run
        self.assert_alive()
        rc, out = self.ctl("list", "--json")
        json.loads(out.decode("utf-8"))
        self.assert_restarts_cleanly()
        rc, out = self.ctl("list", "--json")
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
