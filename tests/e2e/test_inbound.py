"""End-to-end: the inbound smarthost listener, driven by swaks (and a raw
socket where swaks cannot send the bytes), against a real danerelayd on
loopback. Each test checks the reply and what is, or is not, in the spool."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import relayharness as h  # noqa: E402

SENDER = "alice@inside.test"


class InboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = h.Relay(relay_networks=["127.0.0.1/32"],
                            users={"app": "correct horse"},
                            limits={"max_recipients": 5, "max_message_size": 100000,
                                    "max_hops": 3})
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.cleanup()

    def ids_in_queue(self):
        return {m["id"] for m in self.relay.queue()["messages"]}

    def test_plain_submission_is_queued_with_received_header(self):
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com,carol@example.net",
                               "--body", "plain body")
        qid = h.queued_id(out)
        self.assertIsNotNone(qid, out)
        msgs = {m["id"]: m for m in self.relay.queue()["messages"]}
        self.assertIn(qid, msgs)
        m = msgs[qid]
        self.assertEqual(m["sender"], SENDER)
        # No DNS in this test: the recipients wait in the queue (pending, or
        # deferred once the scheduler found the resolver does not validate).
        self.assertEqual([r["address"] for r in m["recipients"]],
                         ["bob@example.com", "carol@example.net"])
        self.assertTrue(all(r["state"] in ("pending", "deferred") for r in m["recipients"]))
        raw = self.relay.message_file(qid)
        self.assertIn(b"Received: from ", raw)
        self.assertIn(f"with ESMTP id {qid}".encode(), raw)
        self.assertIn(b"plain body", raw)
        self.assertIn(f"event=accept qid={qid}", self.relay.read_log())

    def test_starttls_names_version_and_cipher(self):
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com", "-tls")
        qid = h.queued_id(out)
        self.assertIsNotNone(qid, out)
        m = next(m for m in self.relay.queue()["messages"] if m["id"] == qid)
        self.assertRegex(m["tls"], r"^TLS1\.[23]/")
        raw = self.relay.message_file(qid)
        self.assertRegex(raw, rb"\(using TLS1\.[23]/[A-Z0-9-]+\)")
        self.assertIn(b"with ESMTPS id", raw)

    def test_implicit_tls_port(self):
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com", "--tlsc",
                               port=self.relay.tls_port)
        qid = h.queued_id(out)
        self.assertIsNotNone(qid, out)
        self.assertIn(qid, self.ids_in_queue())

    def test_relay_refused_outside_networks(self):
        before = self.ids_in_queue()
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com",
                               "--local-interface", "127.0.0.2")
        codes = h.replies(out)
        self.assertIn(554, [c for c, _ in codes], out)
        self.assertTrue(any("5.7.1" in t and "Relay access denied" in t for _, t in codes))
        self.assertEqual(self.ids_in_queue(), before)
        self.assertIn("reason=\"relay access denied\"", self.relay.read_log())

    def test_auth_over_tls_allows_relay_from_outside(self):
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com", "-tls",
                               "--local-interface", "127.0.0.2",
                               "--auth", "PLAIN", "--auth-user", "app",
                               "--auth-password", "correct horse")
        self.assertIn("235 2.7.0", out)
        qid = h.queued_id(out)
        self.assertIsNotNone(qid, out)
        self.assertIn(b"with ESMTPSA", self.relay.message_file(qid))
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com", "-tls",
                               "--local-interface", "127.0.0.2",
                               "--auth", "LOGIN", "--auth-user", "app",
                               "--auth-password", "correct horse")
        self.assertIsNotNone(h.queued_id(out), out)

    def test_auth_wrong_password_and_no_auth_without_tls(self):
        before = self.ids_in_queue()
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com", "-tls",
                               "--local-interface", "127.0.0.2",
                               "--auth", "PLAIN", "--auth-user", "app",
                               "--auth-password", "wrong")
        self.assertIn("535 5.7.8", out)
        c = self.relay.connect()
        c.reply()
        code, lines = c.command("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertFalse(any("AUTH" in l for l in lines), lines)
        self.assertEqual(c.command("AUTH PLAIN AGFwcABjb3JyZWN0IGhvcnNl")[0], 538)
        c.close()
        self.assertEqual(self.ids_in_queue(), before)

    def test_overlong_command_line(self):
        out = self.relay.swaks("--from", "a" * 600 + "@inside.test", "--to", "bob@example.com")
        self.assertIn("500 5.5.2", out)
        self.assertIsNone(h.queued_id(out))
        # the session went on: a raw client sees the refusal and then a normal reply
        c = self.relay.connect()
        c.reply()
        c.send(b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n")
        self.assertEqual(c.reply()[0], 500)
        self.assertEqual(c.reply()[0], 250)
        c.close()

    def test_bare_lf_in_data_is_refused_and_not_smuggled(self):
        before = self.ids_in_queue()
        with tempfile.NamedTemporaryFile("wb", suffix=".eml", delete=False) as f:
            f.write(b"Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@outside.test>\r\n"
                    b"RCPT TO:<victim@example.com>\r\nDATA\r\nSubject: forged\r\n\r\nx\r\n"
                    b".\r\n")
            path = f.name
        try:
            out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com",
                                   "--data", "@" + path, "--no-data-fixup")
        finally:
            os.unlink(path)
        self.assertIn("550 5.6.0", out)
        self.assertEqual(self.ids_in_queue(), before)
        self.assertNotIn("evil@outside.test", self.relay.read_log().split("event=accept")[-1])

    def test_nul_in_command(self):
        c = self.relay.connect()
        c.reply()
        c.send(b"EHLO a\x00b\r\n")
        self.assertEqual(c.reply()[0], 500)
        c.close()

    def test_commands_pipelined_after_starttls_are_discarded(self):
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        # STARTTLS and an injected transaction in the same packet
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@outside.test>\r\n")
        code, _ = c.reply()
        self.assertEqual(code, 220)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = ctx.wrap_socket(c.sock, server_hostname="relay.e2e.test")
        t = h.SmtpConn(tls)
        # If the injected MAIL had been kept, RCPT would be accepted (or EHLO
        # would see a stray reply first).
        code, lines = t.command("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertEqual(lines[0], "250-relay.e2e.test")
        self.assertEqual(t.command("RCPT TO:<bob@example.com>")[0], 503)
        self.assertEqual(t.command("QUIT")[0], 221)
        tls.close()
        self.assertIn("data pipelined after STARTTLS", self.relay.read_log())

    def test_too_many_recipients(self):
        rcpts = ",".join(f"r{i}@example.com" for i in range(7))
        out = self.relay.swaks("--from", SENDER, "--to", rcpts)
        self.assertIn("452 4.5.3", out)
        qid = h.queued_id(out)
        self.assertIsNotNone(qid, out)  # the first five were accepted
        m = next(m for m in self.relay.queue()["messages"] if m["id"] == qid)
        self.assertEqual(len(m["recipients"]), 5)

    def test_size_limit(self):
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com",
                               "--body", self.relay.body_file(("y" * 500 + "\n") * 300))
        self.assertIn("552 5.3.4", out)
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        self.assertEqual(c.command("MAIL FROM:<a@inside.test> SIZE=999999999")[0], 552)
        c.close()

    def test_dsn_parameters_are_stored(self):
        out = self.relay.swaks("--from", SENDER, "--to", "bob@example.com",
                               "--quit-after", "RCPT", "--pipeline")
        self.assertIn("250 2.1.5", out)
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        self.assertEqual(c.command("MAIL FROM:<a@inside.test> RET=HDRS ENVID=abc+2B1")[0], 250)
        self.assertEqual(c.command("RCPT TO:<b@example.com> NOTIFY=FAILURE,DELAY "
                                   "ORCPT=rfc822;b+2Bx@example.com")[0], 250)
        self.assertEqual(c.command("RCPT TO:<c@example.com> NOTIFY=NEVER,SUCCESS")[0], 501)
        self.assertEqual(c.command("DATA")[0], 354)
        c.send(b"Subject: dsn\r\n\r\nbody\r\n.\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        qid = lines[-1].split()[-1]
        c.command("QUIT")
        c.close()
        raw = self.relay.message_file(qid)
        self.assertIn(b'"envid":"abc+1"', raw)
        self.assertIn(b'"ret":"HDRS"', raw)
        self.assertIn(b'"orcpt":"rfc822;b+x@example.com"', raw)
        self.assertIn(b'"notify":12', raw)

    def test_pipelining_whole_transaction_in_one_write(self):
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        c.send(b"MAIL FROM:<a@inside.test>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertEqual([c.reply()[0] for _ in range(3)], [250, 250, 354])
        c.send(b"Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<a@inside.test>\r\n"
               b"RCPT TO:<d@example.com>\r\nDATA\r\nSubject: q\r\n\r\ny\r\n.\r\nQUIT\r\n")
        codes = [c.reply()[0] for _ in range(6)]
        self.assertEqual(codes, [250, 250, 250, 354, 250, 221])
        c.close()

    def auth_session(self):
        """An implicit-TLS session after EHLO, AUTH offered."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.relay.tls_port), timeout=20)
        t = h.SmtpConn(ctx.wrap_socket(raw))
        self.assertEqual(t.reply()[0], 220)
        code, lines = t.command("EHLO client.test")
        self.assertIn("250-AUTH PLAIN LOGIN", lines)
        return t

    def test_requiretls_only_over_tls_and_kept_with_the_message(self):
        """RFC 8689: REQUIRETLS is offered only over TLS, refused in plaintext
        (530 5.7.10: it would already be broken on this hop), and stored with
        the message (danectl queue show says so)."""
        c = self.relay.connect()
        c.reply()
        code, lines = c.command("EHLO client.test")
        self.assertFalse(any("REQUIRETLS" in l for l in lines), lines)
        code, lines = c.command(f"MAIL FROM:<{SENDER}> REQUIRETLS")
        self.assertEqual(code, 530, lines)
        self.assertIn("5.7.10", lines[0])
        c.command("QUIT")
        c.close()
        t = self.auth_session()
        code, lines = t.command("EHLO client.test")
        self.assertIn("REQUIRETLS", [l[4:] for l in lines])
        self.assertEqual(t.command(f"MAIL FROM:<{SENDER}> REQUIRETLS")[0], 250)
        self.assertEqual(t.command("RCPT TO:<bob@example.com>")[0], 250)
        self.assertEqual(t.command("DATA")[0], 354)
        code, lines = t.command("Subject: requiretls\r\n\r\nsecret\r\n.")
        self.assertEqual(code, 250, lines)
        qid = h.queued_id(lines[-1])
        t.command("QUIT")
        out = subprocess.run([h.DANECTL, "--spool", self.relay.spool, "queue", "show", qid,
                              "--json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIs(json.loads(out.stdout)["requiretls"], True)
        text = subprocess.run([h.DANECTL, "--spool", self.relay.spool, "queue", "show", qid],
                              capture_output=True, text=True, timeout=60).stdout
        self.assertIn("REQUIRETLS: yes", text)
        self.assertIn(f"qid={qid}", self.relay.read_log())
        accept = next(ln for ln in self.relay.read_log().splitlines()
                      if f"qid={qid}" in ln and "event=accept" in ln)
        self.assertIn("requiretls=yes", accept)

    def test_overlong_sasl_line_ends_the_exchange(self):
        # Issue 13: the line after an over-long SASL response was taken as
        # the next SASL response, not as the command it is.
        for first, rest in ((b"A" * 13000 + b"\r\n", b""),            # one write
                            (b"A" * 13000, b"A" * 5000 + b"\r\n")):   # cap passed before LF
            t = self.auth_session()
            self.assertEqual(t.command("AUTH PLAIN")[0], 334)
            t.send(first)
            if rest:
                time.sleep(0.2)
                t.send(rest)
            code, lines = t.reply()
            self.assertEqual(code, 500, lines)
            self.assertIn("5.5.6", lines[0])
            self.assertEqual(t.command("NOOP")[0], 250)
            # and AUTH can start again
            self.assertEqual(t.command("AUTH LOGIN")[0], 334)
            self.assertEqual(t.command("*")[0], 501)
            self.assertEqual(t.command("QUIT")[0], 221)
            t.close()

    def submit_with_received(self, n, extra=b""):
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@inside.test>")
        c.command("RCPT TO:<b@example.com>")
        self.assertEqual(c.command("DATA")[0], 354)
        hdr = b"".join(b"Received: from hop%d.test\r\n\tby x.test; Mon, 1 Jan 2026\r\n" % i
                       for i in range(n))
        c.send(hdr + b"Subject: hops\r\n" + extra + b"\r\nbody\r\n.\r\n")
        code, lines = c.reply()
        c.command("QUIT")
        c.close()
        return code, lines

    def test_mail_loop_refused_past_max_hops(self):
        before = self.ids_in_queue()
        # max_hops 3: two Received: fields (ours makes three) pass ...
        code, lines = self.submit_with_received(2, extra=b"X-Note: Received: 9\r\n")
        self.assertEqual(code, 250, lines)
        qid = lines[-1].split()[-1]
        self.assertEqual(self.relay.message_file(qid).count(b"Received: from "), 3)
        # ... three do not, whatever the case or spacing of the name
        code, lines = self.submit_with_received(2, extra=b"rECEIVED : from x\r\n")
        self.assertEqual(code, 554, lines)
        self.assertEqual(lines[-1], "554 5.4.6 Too many hops")
        code, lines = self.submit_with_received(3)
        self.assertEqual(code, 554, lines)
        self.assertEqual(self.ids_in_queue() - before, {qid})
        self.assertIn('reason="too many hops"', self.relay.read_log())


class LimitsTest(unittest.TestCase):
    def test_sessions_per_client_and_command_timeout(self):
        relay = h.Relay(limits={"max_sessions_per_client": 2, "command_timeout": 2})
        try:
            relay.start()
            a, b = relay.connect(), relay.connect()
            self.assertEqual(a.reply()[0], 220)
            self.assertEqual(b.reply()[0], 220)
            third = relay.connect()
            code, lines = third.reply()
            self.assertEqual(code, 421, lines)
            third.close()
            # another client address is not affected by this one's cap
            other = relay.connect(source="127.0.0.3")
            self.assertEqual(other.reply()[0], 220)
            # idle past command_timeout: 421 4.4.2 and the connection closes
            code, lines = a.reply()
            self.assertEqual(code, 421)
            self.assertIn("4.4.2", lines[0])
            for conn in (a, b, other):
                conn.close()
        finally:
            relay.cleanup()


@unittest.skipUnless(shutil.which("strace"), "needs strace for fault injection")
class CommitAfterTimeoutTest(unittest.TestCase):
    """Issue 13: a commit that lands after command_timeout fired (fsync
    delayed 2.5 s by strace fault injection, command_timeout 1 s) left the
    message on disk, pending, and unknown to the scheduler until a flush or
    a restart. Now the idle timer is off while a commit is pending, the
    client gets its 250, and every committed message is scheduled, whatever
    became of its session."""

    def setUp(self):
        dead = h.free_port()  # nothing listens: every DNS query fails fast
        self.relay = h.Relay(limits={"command_timeout": 1, "session_timeout": 120},
                             dns={"resolvers": [f"127.0.0.1:{dead}"], "timeout_ms": 200,
                                  "attempts": 1})
        self.relay.start()
        self.strace = None

    def tearDown(self):
        self.stop_strace()
        self.relay.cleanup()

    def start_strace(self):
        # All threads of the daemon; only fsync is traced and delayed.
        self.strace = subprocess.Popen(
            ["strace", "-f", "-qq", "-p", str(self.relay.proc.pid), "-e", "trace=fsync",
             "-e", "inject=fsync:delay_enter=2500000", "-o", "/dev/null"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Attached when every thread of the daemon has a tracer (strace has
        # no "ready" signal of its own).
        pid = self.relay.proc.pid
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.strace.poll() is None:
            if all(self.tracer(pid, t) for t in os.listdir(f"/proc/{pid}/task")):
                return
            time.sleep(0.1)
        self.strace.kill()
        err = self.strace.communicate(timeout=10)[1] or b""
        self.strace = None
        self.fail("strace could not attach to every thread: " + err.decode(errors="replace"))

    @staticmethod
    def tracer(pid, tid):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                return any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f)
        except FileNotFoundError:
            return True  # a thread that has ended needs no tracer

    def stop_strace(self):
        if self.strace and self.strace.poll() is None:
            self.strace.terminate()  # strace detaches cleanly on SIGTERM
        if self.strace:
            self.strace.communicate(timeout=10)
        self.strace = None

    def recipient(self, qid):
        for m in self.relay.queue()["messages"]:
            if m["id"] == qid:
                return m["recipients"][0]
        return None

    def test_commit_after_command_timeout_is_scheduled(self):
        self.start_strace()
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@inside.test>")
        c.command("RCPT TO:<slowdisk@example.com>")
        self.assertEqual(c.command("DATA")[0], 354)
        t0 = time.monotonic()
        code, lines = c.command("Subject: slow disk\r\n\r\nx\r\n.")
        took = time.monotonic() - t0
        c.close()
        # The client waited for the commit (two fsyncs, 5 s) and got its 250,
        # not a 421 after command_timeout.
        self.assertEqual(code, 250, lines)
        self.assertGreater(took, 2, "the fsync was not delayed: the test proves nothing")
        qid = lines[-1].split()[-1]
        self.stop_strace()
        # Scheduled without a flush: attempted (DNS fails, so deferred).
        deadline = time.monotonic() + 30
        r = self.recipient(qid)
        while time.monotonic() < deadline and (r is None or r["attempts"] < 1):
            time.sleep(0.3)
            r = self.recipient(qid)
        self.assertIsNotNone(r)
        self.assertGreaterEqual(r["attempts"], 1, r)

    def test_commit_after_session_timeout_is_scheduled(self):
        # session_timeout fires while the commit is pending and the client
        # has gone: the message is still scheduled.
        self.relay.stop()
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["limits"]["session_timeout"] = 4
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)
        self.relay.start()
        self.start_strace()
        c = self.relay.connect()
        c.reply()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@inside.test>")
        c.command("RCPT TO:<gone@example.com>")
        self.assertEqual(c.command("DATA")[0], 354)
        c.send(b"Subject: gone\r\n\r\nx\r\n.\r\n")
        code, lines = c.reply()  # the answer still comes first, then the 421
        self.assertEqual(code, 250, lines)
        qid = lines[-1].split()[-1]
        self.assertEqual(c.reply()[0], 421)
        c.close()
        self.stop_strace()
        deadline = time.monotonic() + 30
        r = self.recipient(qid)
        while time.monotonic() < deadline and (r is None or r["attempts"] < 1):
            time.sleep(0.3)
            r = self.recipient(qid)
        self.assertGreaterEqual(r["attempts"], 1, r)


class DeliveryDisabledTest(unittest.TestCase):
    def test_mail_is_kept_and_not_attempted(self):
        relay = h.Relay()
        try:
            with open(relay.config) as f:
                cfg = json.load(f)
            cfg["delivery"] = {"enabled": False}
            with open(relay.config, "w") as f:
                json.dump(cfg, f)
            relay.start()
            qid = h.queued_id(relay.swaks("--from", SENDER, "--to", "kept@example.com"))
            self.assertIsNotNone(qid)
            time.sleep(1.5)
            m = next(m for m in relay.queue()["messages"] if m["id"] == qid)
            self.assertEqual(m["recipients"][0]["state"], "pending")
            self.assertNotIn("event=delivery", relay.read_log())
        finally:
            relay.cleanup()


class DiskTest(unittest.TestCase):
    def test_write_error_gives_452_and_leaves_nothing(self):
        # The daemon may write at most 64 KiB to any one file: a bigger
        # message fails to reach the disk, exactly like a full file system.
        relay = h.Relay(prlimit_fsize=65536)
        try:
            relay.start()
            out = relay.swaks("--from", SENDER, "--to", "bob@example.com",
                              "--body", relay.body_file(("z" * 900 + "\n") * 100))
            self.assertIn("452 4.3.1", out)
            self.assertEqual(relay.queue()["messages"], [])
            self.assertEqual(os.listdir(os.path.join(relay.spool, "tmp")), [])
            # and the next, smaller message is fine
            out = relay.swaks("--from", SENDER, "--to", "bob@example.com")
            self.assertIsNotNone(h.queued_id(out), out)
        finally:
            relay.cleanup()


class RestartTest(unittest.TestCase):
    def test_queue_survives_kill_and_restart(self):
        relay = h.Relay()
        try:
            relay.start()
            ids = set()
            for i in range(5):
                out = relay.swaks("--from", SENDER, "--to", f"r{i}@example.com")
                ids.add(h.queued_id(out))
            os.kill(relay.proc.pid, signal.SIGKILL)
            relay.proc.wait(timeout=10)
            relay.proc = None
            relay.logfile.close()
            # debris a crash could leave
            with open(os.path.join(relay.spool, "tmp", "0000000000000A"), "w") as f:
                f.write("half")
            starts = relay.read_log().count("event=recovered")
            relay.start()
            self.assertEqual({m["id"] for m in relay.queue()["messages"]}, ids)
            # The relay listens first and reads its queue after: this start's
            # event=recovered, not the first start's.
            deadline = time.monotonic() + 30
            while (relay.read_log().count("event=recovered") <= starts
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            self.assertIn("event=recovered", relay.read_log())
            self.assertIn("queued=5", relay.read_log())
            # our debris, and possibly a state file the scheduler was writing when killed
            removed = re.findall(r"event=recovered .* debris_removed=(\d+)", relay.read_log())
            self.assertGreaterEqual(int(removed[-1]), 1)
            out = relay.swaks("--from", SENDER, "--to", "after@example.com")
            new = h.queued_id(out)
            self.assertGreater(new, max(ids))  # IDs stay in arrival order
        finally:
            relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
