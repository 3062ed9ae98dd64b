"""End-to-end: danectl against a running danerelayd in the lab. Queue actions
go over the control socket; every --json output is checked against its
documented shape in docs/danectl.schema.json. The receiving MTAs are real
Postfix instances; DNS is NSD with signed zones behind a validating Unbound."""
import json
import os
import signal
import stat
import subprocess
import sys
import time
import unittest

import jsonschema

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import relayharness as h  # noqa: E402
import test_delivery as td  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "docs", "danectl.schema.json")) as f:
    SCHEMA = json.load(f)
SENDER = td.SENDER
wait_until = td.wait_until


def setUpModule():
    td.LAB = dnslab.DnsLab().build().start()


def tearDownModule():
    td.LAB.cleanup()


def assert_shape(doc, definition):
    schema = {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
              "$ref": f"#/$defs/{definition}"}
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


class CtlCase(td.LabCase):
    def ctl(self, env, *args, timeout=120):
        r = subprocess.run([h.DANECTL, "--spool", env.relay.spool, *args],
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def ctl_json(self, env, shape, *args, rc=0):
        code, out, err = self.ctl(env, *args, "--json")
        self.assertEqual(code, rc, out + err)
        doc = json.loads(out)
        assert_shape(doc, shape)
        return doc

    def recipient(self, env, qid, rcpt):
        shown = self.ctl_json(env, "queue_show", "queue", "show", qid)
        return next(r for r in shown["recipients"] if r["address"] == rcpt)

    def submit_burst(self, env, rcpts):
        """One pipelined session; returns {recipient: queue id}."""
        c = env.relay.connect()
        c.reply()
        c.command("EHLO burst.test")
        batch = b""
        for r in rcpts:
            batch += (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{r}>\r\nDATA\r\n"
                      f"Subject: to {r}\r\n\r\nx\r\n.\r\n").encode()
        c.send(batch + b"QUIT\r\n")
        ids = {}
        for r in rcpts:
            for _ in range(4):  # MAIL, RCPT, DATA, end of data
                code, lines = c.reply()
                self.assertIn(code, (250, 354), lines)
            ids[r] = h.queued_id(lines[-1])
            self.assertTrue(ids[r], lines)
        c.close()
        return ids


class QueueActionsTest(CtlCase):
    def test_hold_release_fix_the_lab_flush_delivers(self):
        # MX hosts down, retries an hour apart: only an operator moves it now.
        env = self.env({"mx1.secure.test": True, "mx2.secure.test": True}, start_mtas=False,
                       delivery={"retry_initial": 3600, "retry_max": 7200})
        qid = env.submit("alice@secure.test", subject="held one")
        self.assert_deferred(env, qid, "alice@secure.test", "")
        doc = self.ctl_json(env, "queue_action", "queue", "hold", qid)
        self.assertEqual((doc["matched"], doc["counts"]["done"]), (1, 1), doc)
        self.assertEqual(env.states(qid)["alice@secure.test"][0], "held")

        env.mtas.start()  # the lab is fixed, but the message is on hold
        doc = self.ctl_json(env, "queue_action", "queue", "flush", "--all")
        self.assertEqual(doc["results"][0]["result"], "unchanged", doc)
        os.kill(env.relay.proc.pid, signal.SIGUSR1)
        time.sleep(3)
        self.assertEqual(env.received(), [])
        self.assertEqual(env.states(qid)["alice@secure.test"][0], "held")

        # Released: back to deferred with its retry time, an hour away.
        doc = self.ctl_json(env, "queue_action", "queue", "release", "--state", "held")
        self.assertEqual([r["id"] for r in doc["results"]], [qid])
        time.sleep(2)
        self.assertEqual(env.received(), [])
        self.assertEqual(env.states(qid)["alice@secure.test"][0], "deferred")

        code, out, _ = self.ctl(env, "queue", "flush", qid)
        self.assertEqual(code, 0, out)
        got = wait_until(lambda: env.received("alice@secure.test"))
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertTrue(wait_until(lambda: env.states(qid) is None))
        log = env.relay.read_log()
        self.assertIn(f"event=operator-hold qid={qid} result=done", log)
        self.assertIn(f"event=operator-release qid={qid} result=done", log)

    def test_delete_bounce_requeue_status_reload_and_shapes(self):
        # DSNs come back through mx.insecure.test; secure.test's MX hosts are down.
        env = self.env({"mx.insecure.test": True}, policies={},
                       delivery={"retry_initial": 3600, "retry_max": 7200})
        q1 = env.submit("del@secure.test", subject="delete me")
        q2 = env.submit("bnc@secure.test", subject="bounce me")
        q3 = env.submit("req@secure.test", subject="requeue me")
        for q, r in ((q1, "del@secure.test"), (q2, "bnc@secure.test"), (q3, "req@secure.test")):
            self.assert_deferred(env, q, r, "")

        sock = os.path.join(env.relay.spool, "control.sock")
        mode = os.stat(sock).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        # The daemon's user and group; the peer's credentials decide the rest.
        self.assertEqual(stat.S_IMODE(mode), 0o660)

        # Read-only views, with each attempt's MX host and reply.
        listed = self.ctl_json(env, "queue_list", "queue", "list")
        self.assertEqual({m["id"] for m in listed["messages"]}, {q1, q2, q3})
        r = self.recipient(env, q1, "del@secure.test")
        self.assertGreaterEqual(len(r["history"]), 1)
        self.assertIn(r["history"][0]["mx"], ("mx1.secure.test", "mx2.secure.test"))
        self.ctl_json(env, "queue_summary", "queue", "summary")

        # delete: gone from the spool for good; a second delete finds nothing.
        doc = self.ctl_json(env, "queue_action", "queue", "delete", q1)
        self.assertEqual(doc["results"][0]["result"], "done")
        self.assertFalse(os.path.exists(os.path.join(env.relay.spool, "msg", q1)))
        doc = self.ctl_json(env, "queue_action", "queue", "delete", q1, rc=1)
        self.assertEqual(doc["results"][0]["result"], "not-found")

        # bounce: fails now, and the sender gets a DSN saying why.
        doc = self.ctl_json(env, "queue_action", "queue", "bounce", q2)
        self.assertEqual(doc["counts"]["done"], 1, doc)
        dsn = wait_until(lambda: env.received(SENDER))
        self.assertTrue(dsn, env.relay.read_log()[-3000:])
        self.assertIn("Final-Recipient: rfc822; bnc@secure.test", dsn[0]["text"])
        self.assertIn("bounced by the operator", dsn[0]["text"])
        self.assertIn("Subject: bounce me", dsn[0]["text"])
        self.assertTrue(wait_until(lambda: env.states(q2) is None))

        # requeue: the backoff starts over and the retry is now.
        before = self.recipient(env, q3, "req@secure.test")
        self.assertGreaterEqual(before["attempts"], 1)
        self.ctl_json(env, "queue_action", "queue", "requeue", "--domain", "secure.test")
        after = wait_until(lambda: (lambda r: r["attempts"] >= 1 and
                                    len(r["history"]) > len(before["history"]) and r)(
            self.recipient(env, q3, "req@secure.test")))
        self.assertTrue(after, "requeued message was not retried")
        self.assertEqual(after["attempts"], 1)  # counted again from zero

        status = self.ctl_json(env, "status", "status")
        self.assertTrue(status["dnssec"]["validating"], status)
        self.assertEqual(status["dnssec"]["mode"], "local")  # the default, in the lab
        self.assertEqual(status["dnssec"]["trust_anchor"], td.LAB.anchor)
        self.assertEqual(status["queue"]["messages"], 1)
        self.assertEqual(status["queue"]["recipients_by_state"]["deferred"], 1)
        self.assertEqual(status["daemon"]["pid"], env.relay.proc.pid)
        code, text, _ = self.ctl(env, "status")
        self.assertEqual(code, 0)
        self.assertIn("validating", text)
        reloaded = self.ctl_json(env, "reload", "reload")
        self.assertEqual(reloaded["policy"]["files"], 1)
        env.write_policy("site.json", "{ broken")
        failed = self.ctl_json(env, "error", "reload", rc=1)
        self.assertIn("site.json:1:", failed["error"])
        # Usage errors are 2; a filter that matches nothing is 1.
        self.assertEqual(self.ctl(env, "queue", "hold")[0], 2)
        self.assertEqual(self.ctl(env, "queue", "hold", "not-an-id")[0], 2)
        self.assertEqual(self.ctl(env, "queue", "hold", "--state", "sleeping")[0], 2)
        self.assertEqual(self.ctl(env, "queue", "hold", "--domain", "nowhere.example")[0], 1)

        # With the daemon down: actions fail clearly, list still reads the spool.
        env.relay.stop()
        code, _, err = self.ctl(env, "status")
        self.assertEqual(code, 1)
        self.assertIn("is danerelayd running?", err)
        self.ctl_json(env, "error", "queue", "hold", q3, rc=1)
        self.assertEqual({m["id"] for m in self.ctl_json(env, "queue_list", "queue", "list")
                          ["messages"]}, {q3})

    def test_other_verbs_json_shapes(self):
        env = self.env(None)
        for args, shape in (
                (["--config", env.relay.config, "probe", "secure.test"], "probe"),
                (["policy", "check", os.path.join(ROOT, "etc", "policy")], "policy_check")):
            r = subprocess.run([h.DANECTL, *args, "--json"], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            assert_shape(json.loads(r.stdout), shape)
            if shape == "probe":
                # No _mta-sts record at secure.test: proven absent (NSEC), so
                # nothing fetched, and DANE authenticates.
                sts = json.loads(r.stdout)["mta_sts"]
                self.assertEqual((sts["record"], sts["dnssec"], sts["fetched"], sts["decides"]),
                                 ("absent", "secure", None, "dane"), sts)
        r = subprocess.run([h.DANECTL, "passwd", "--json"], input="secret\n",
                           capture_output=True, text=True, timeout=60)
        assert_shape(json.loads(r.stdout), "passwd")

    def test_delete_while_deliveries_run_leaves_a_consistent_spool(self):
        # Deliveries two at a time, each on a new connection: slow enough that
        # the deletes overlap them.
        env = self.env({"mx1.secure.test": True, "mx2.secure.test": True}, start_mtas=False,
                       delivery={"retry_initial": 3600, "retry_max": 7200, "max_concurrent": 2,
                                 "connection_reuse_time": 0})
        rcpts = [f"race{i}@secure.test" for i in range(150)]
        ids = self.submit_burst(env, rcpts)
        self.assertTrue(wait_until(
            lambda: (lambda q: len(q["messages"]) == len(rcpts) and all(
                r["state"] == "deferred" for m in q["messages"] for r in m["recipients"]))(
                env.relay.queue()), timeout=60), env.relay.read_log()[-2000:])

        env.mtas.start()
        # Deliveries start; the deletes run among them.
        _, flushed, _ = self.ctl(env, "queue", "flush", "--all", "--json")
        self.assertEqual(json.loads(flushed)["counts"]["done"], len(rcpts))
        time.sleep(0.2)
        _, out, _ = self.ctl(env, "queue", "delete", "--all", "--json")
        doc = json.loads(out)
        assert_shape(doc, "queue_action")
        deleted = {r["id"] for r in doc["results"] if r["result"] == "done"}
        self.assertEqual(doc["counts"]["error"], 0, doc)
        self.assertTrue(wait_until(lambda: env.relay.queue()["messages"] == [], timeout=60))
        time.sleep(1)
        got = env.received()
        delivered = [r for m in got for r in m["recipients"]]
        self.assertEqual(len(delivered), len(set(delivered)), "a recipient got two copies")
        delivered_ids = {ids[r] for r in delivered}
        self.assertEqual(deleted & delivered_ids, set(), "deleted yet delivered")
        self.assertEqual(deleted | delivered_ids, set(ids.values()), "lost: neither")
        self.assertTrue(deleted and delivered_ids, "the deletes did not overlap the deliveries")
        print(f"race: {len(deleted)} deleted, {len(delivered_ids)} delivered", file=sys.stderr)

        # Nothing damaged, nothing left half-done: a restart finds a clean spool.
        starts = env.relay.read_log().count("event=recovered")
        env.relay.stop()
        env.relay.start()
        # This start's event=recovered (the relay reads its queue after listening).
        self.assertTrue(wait_until(lambda: env.relay.read_log().count("event=recovered") > starts))
        recovered = [l for l in env.relay.read_log().splitlines() if "event=recovered" in l][-1]
        self.assertIn("queued=0 quarantined=0", recovered)
        self.assertEqual(os.listdir(os.path.join(env.relay.spool, "quarantine")), [])


class HelpAndNotFoundTest(CtlCase):
    VERBS = (["status"], ["reload"], ["queue"], ["queue", "list"], ["queue", "show"],
             ["queue", "summary"], ["queue", "hold"], ["queue", "release"], ["queue", "delete"],
             ["queue", "flush"], ["queue", "bounce"], ["queue", "requeue"], ["probe"],
             ["policy", "check"], ["passwd"])

    def test_help_is_usage_on_stdout_and_success(self):
        def run(*args):
            return subprocess.run([h.DANECTL, *args], capture_output=True, text=True,
                                  timeout=30, stdin=subprocess.DEVNULL)
        for args in (["--help"], ["-h"], ["--spool", "/nonexistent", "--help"]):
            r = run(*args)
            self.assertEqual((r.returncode, r.stderr), (0, ""), args)
            self.assertTrue(r.stdout.startswith("usage: danectl"), r.stdout)
            self.assertIn("queue show ID", r.stdout)
            self.assertIn("passwd", r.stdout)
        for verb in self.VERBS:
            for flag in ("--help", "-h"):
                r = run(*verb, flag)
                self.assertEqual((r.returncode, r.stderr), (0, ""), (verb, flag))
                self.assertTrue(r.stdout.startswith("usage: danectl"), (verb, r.stdout))
                self.assertIn(" ".join(verb[:1]), r.stdout)
        # The verb's own lines only.
        self.assertNotIn("passwd", run("queue", "show", "--help").stdout)
        # An unknown verb is still a usage error.
        r = run("frobnicate", "--help")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown verb", r.stderr)

    def test_action_on_unknown_id_says_not_found(self):
        env = self.env(None)
        missing = "0123456789ABCD"
        for action in ("hold", "release", "delete", "flush", "bounce", "requeue"):
            code, out, err = self.ctl(env, "queue", action, missing)
            self.assertEqual(code, 1, out + err)
            self.assertIn(f"danectl: {action}: not found: {missing}", err)
            self.assertNotIn("partly", err)


class ControlSocketTest(CtlCase):
    def request(self, sock_path, line):
        import socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(sock_path)
            s.sendall(line)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def test_version_is_compared_not_truncated(self):
        env = self.env(None)
        sock = os.path.join(env.relay.spool, "control.sock")
        self.assertTrue(self.request(sock, b'{"version": 1, "verb": "status"}\n')["ok"])
        for v in (b"4294967297", b"-4294967295", b"1.0", b'"1"', b"2"):
            reply = self.request(sock, b'{"version": ' + v + b', "verb": "status"}\n')
            self.assertFalse(reply["ok"], (v, reply))
            self.assertIn("unsupported protocol version", reply["error"], v)

    @unittest.skipUnless(os.geteuid() == 0 and os.path.exists("/usr/bin/setpriv"),
                         "needs root and setpriv to act as another uid")
    def test_other_uid_gets_a_readable_refusal(self):
        env = self.env(None)
        sock = os.path.join(env.relay.spool, "control.sock")
        # Let nobody reach the socket: the peer-credential check is what
        # must refuse it then, with words rather than a reset connection.
        for d in (env.relay.dir, env.relay.spool):
            os.chmod(d, 0o711)
        os.chmod(sock, 0o666)
        # 65533: not the daemon's user (the harness runs it as nobody), not in its group.
        as_nobody = ["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups"]
        for _ in range(5):  # the reset was a race: try it a few times
            r = subprocess.run([*as_nobody, h.DANECTL, "--spool", env.relay.spool, "status"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("permission denied: uid 65533", r.stderr)
            self.assertNotIn("reset", r.stderr)
            r = subprocess.run([*as_nobody, h.DANECTL, "--spool", env.relay.spool, "status", "--json"],
                               capture_output=True, text=True, timeout=60)
            doc = json.loads(r.stdout)
            assert_shape(doc, "error")
            self.assertIn("permission denied", doc["error"])
        self.assertIn("event=control-refused", env.relay.read_log())
        # root is still answered.
        self.assertEqual(self.ctl(env, "status")[0], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
