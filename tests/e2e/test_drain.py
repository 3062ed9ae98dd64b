"""End-to-end: draining one relay of two, and the fleet view across them.

Two real danerelayd (relayharness; as nobody when the test runs as root)
point at the lab's DNS (NSD with signed zones behind Unbound); the receiving
MTAs are real Postfix instances. `danectl drain` on relay A: a new TCP
connection to either of its SMTP ports is refused (ECONNREFUSED: the
listening sockets leave LISTEN, so a load balancer's health check fails),
a session opened before the drain still finishes and queues its message,
status shows draining with the queue count, the queue is still delivered,
`drain --wait` is bounded and says what is left, and `resume` accepts
again. The fleet view prints both nodes and a total, and a node that is
stopped (or stopped answering) is a line of its own with exit 1, within the
timeout, while the other is still shown. Every --json output is checked
against docs/danectl.schema.json."""
import json
import os
import signal
import socket
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
RCPT = "drain@secure.test"
wait_until = td.wait_until


def setUpModule():
    td.LAB = dnslab.DnsLab().build().start()


def tearDownModule():
    td.LAB.cleanup()


def assert_shape(doc, definition):
    schema = {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
              "$ref": f"#/$defs/{definition}"}
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def ctl(*args, timeout=60):
    r = subprocess.run([h.DANECTL, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def refused(port):
    """True if a TCP connect to port is refused; False if it connects."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


class DrainTest(td.LabCase):
    def setUp(self):
        # A: MX hosts down at first, so its queue has something to deliver
        # while it drains; B: a second relay of the fleet, nothing to deliver.
        self.a = self.env({"mx1.secure.test": True, "mx2.secure.test": True},
                          start_mtas=False)
        self.b = self.env(None)
        self.cfg_a, self.cfg_b = self.a.relay.config, self.b.relay.config

    def ctl_json(self, shape, *args, rc=0):
        code, out, err = ctl(*args, "--json")
        self.assertEqual(code, rc, out + err)
        doc = json.loads(out)
        assert_shape(doc, shape)
        return doc

    def open_session(self):
        """A session on A up to RCPT, its message not yet sent."""
        c = self.a.relay.connect()
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.command("EHLO client.inside.test")[0], 250)
        self.assertEqual(c.command(f"MAIL FROM:<{td.SENDER}>")[0], 250)
        self.assertEqual(c.command(f"RCPT TO:<{RCPT}>")[0], 250)
        return c

    def finish_session(self, c):
        self.assertEqual(c.command("DATA")[0], 354)
        code, lines = c.command("Subject: sent while draining\r\n\r\nhello\r\n.")
        self.assertEqual(code, 250, lines)
        c.command("QUIT")
        c.close()
        return h.queued_id(lines[-1])

    def test_drain_refuses_new_sessions_finishes_old_delivers_and_resumes(self):
        relay = self.a.relay
        c = self.open_session()
        code, out, err = ctl("--config", self.cfg_a, "drain")
        self.assertEqual(code, 0, out + err)
        self.assertIn("draining: not accepting SMTP sessions", out)
        # Refused, not accepted and closed: no listener is left on either port.
        self.assertTrue(refused(relay.port), "STARTTLS port still accepts while draining")
        self.assertTrue(refused(relay.tls_port), "implicit-TLS port still accepts while draining")
        # The session opened before the drain finishes and queues its message.
        qid = self.finish_session(c)
        self.assertTrue(qid)
        st = self.ctl_json("status", "--config", self.cfg_a, "status")
        self.assertTrue(st["draining"])
        self.assertIsInstance(st["draining_since"], int)
        self.assertGreaterEqual(st["queue"]["messages"], 1)
        code, out, _ = ctl("--config", self.cfg_a, "status")
        self.assertIn("accepting: NO: draining since", out)
        again = self.ctl_json("drain", "--config", self.cfg_a, "drain")
        self.assertFalse(again["changed"])
        # The MX hosts are down: a bounded wait ends with exit 1 and what is left.
        t0 = time.monotonic()
        left = self.ctl_json("drain", "--config", self.cfg_a, "drain", "--wait", "--timeout",
                             "2", rc=1)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertFalse(left["wait"]["empty"])
        self.assertGreaterEqual(left["wait"]["messages"], 1)
        code, out, _ = ctl("--config", self.cfg_a, "drain", "--wait", "--timeout", "1")
        self.assertEqual(code, 1)
        self.assertRegex(out, r"still 1 message\(s\) in the queue \(recipients: 1 (deferred|pending)")
        # The queue is still delivered while draining.
        self.a.mtas.start()
        self.assertTrue(wait_until(lambda: self.a.received(RCPT), timeout=60),
                        relay.read_log()[-3000:])
        done = self.ctl_json("drain", "--config", self.cfg_a, "drain", "--wait", "--timeout",
                             "60")
        self.assertTrue(done["wait"]["empty"])
        self.assertTrue(refused(relay.port))  # still draining after the queue emptied
        # Resume: new sessions are served again, and mail is queued.
        r = self.ctl_json("drain", "--config", self.cfg_a, "resume")
        self.assertTrue(r["changed"])
        self.assertFalse(r["draining"])
        self.assertFalse(refused(relay.port))
        self.assertIn("Ok: queued as", relay.swaks("--from", td.SENDER, "--to", RCPT))
        self.assertFalse(self.ctl_json("status", "--config", self.cfg_a, "status")["draining"])
        log = relay.read_log()
        self.assertIn("event=drain", log)
        self.assertIn("event=resume", log)

    def test_fleet_status_and_summary_name_every_node_and_a_lost_one(self):
        self.a.submit(RCPT)  # MX down: one message waits in A's queue
        self.assertEqual(ctl("--config", self.cfg_b, "drain")[0], 0)
        code, out, err = ctl("--config", self.cfg_a, "--config", self.cfg_b, "status")
        self.assertEqual(code, 0, out + err)
        lines = out.splitlines()
        line_a = next(l for l in lines if l.startswith(self.cfg_a))
        line_b = next(l for l in lines if l.startswith(self.cfg_b))
        self.assertRegex(line_a, r" yes +1 ")
        self.assertIn("DRAINING", line_b)
        self.assertIn("total: 2 of 2 nodes answer, 1 draining", lines[-1])
        self.assertIn("1 messages", lines[-1])
        fleet = self.ctl_json("fleet_status", "--config", self.cfg_a, "--config", self.cfg_b,
                              "status")
        self.assertEqual([n["node"] for n in fleet["nodes"]], [self.cfg_a, self.cfg_b])
        self.assertEqual(fleet["total"]["messages"], 1)
        self.assertEqual(fleet["total"]["draining"], 1)
        # The --fleet file form, and the queue summary across nodes.
        fleet_file = os.path.join(self.a.relay.dir, "fleet")
        with open(fleet_file, "w") as f:
            f.write(f"# the lab's two relays\nrelay-a {self.cfg_a}\n\nrelay-b {self.cfg_b}\n")
        summary = self.ctl_json("fleet_queue_summary", "--fleet", fleet_file, "queue", "summary")
        self.assertEqual([n["node"] for n in summary["nodes"]], ["relay-a", "relay-b"])
        self.assertEqual(summary["total"]["messages"], 1)
        self.assertEqual(summary["total"]["oldest"]["node"], "relay-a")
        code, out, _ = ctl("--fleet", fleet_file, "queue", "summary")
        self.assertEqual(code, 0)
        self.assertRegex(out, r"(?m)^relay-a +1 ")
        self.assertRegex(out, r"(?m)^relay-b +0 ")
        # A node that stopped answering (SIGSTOP): bounded by --timeout.
        os.kill(self.b.relay.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            code, out, err = ctl("--timeout", "2", "--fleet", fleet_file, "status")
            self.assertLess(time.monotonic() - t0, 10)
        finally:
            os.kill(self.b.relay.proc.pid, signal.SIGCONT)
        self.assertEqual(code, 1, out + err)
        self.assertRegex(out, r"(?m)^relay-b +UNREACHABLE: .*2 seconds")
        self.assertRegex(out, r"(?m)^relay-a +yes ")
        # A stopped node: a line saying so, exit 1, the other still shown.
        self.b.relay.stop()
        code, out, err = ctl("--fleet", fleet_file, "status")
        self.assertEqual(code, 1, out + err)
        self.assertRegex(out, r"(?m)^relay-a +yes +1 ")
        self.assertRegex(out, r"(?m)^relay-b +UNREACHABLE: ")
        self.assertIn("total: 1 of 2 nodes answer", out)
        self.assertIn("relay-b: ", err)
        lost = self.ctl_json("fleet_status", "--fleet", fleet_file, "status", rc=1)
        self.assertFalse(lost["ok"])
        self.assertEqual([n["ok"] for n in lost["nodes"]], [True, False])
        self.assertEqual(lost["total"]["answering"], 1)
        # Only status and queue summary have a fleet view.
        self.assertEqual(ctl("--fleet", fleet_file, "reload")[0], 2)


if __name__ == "__main__":
    unittest.main()
