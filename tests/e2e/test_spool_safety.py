"""End-to-end: nothing in the spool stays unscheduled (issue 13).

A message put into a running daemon's spool behind its back (here: copied
from another relay's spool, as a commit whose session was gone would leave
it) is found by the sweep, on `danectl queue flush --all` and by itself every
limits.queue_sweep_interval seconds, logged as event=swept, and delivered. A
message whose content was damaged on disk (one flipped byte, which the
envelope alone does not show) is quarantined with a .why, at the first load
and at recovery, and counted in `status` and `queue summary`; never deleted,
never left listed as a normal message that nothing will ever retry. The lab
is the real one: NSD, Unbound, Postfix receiving MTAs."""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import relayharness as h  # noqa: E402
import test_danectl as tc  # noqa: E402
import test_delivery as td  # noqa: E402

SENDER = td.SENDER
wait_until = td.wait_until
MX = {"mx1.secure.test": True, "mx2.secure.test": True}


def setUpModule():
    td.LAB = dnslab.DnsLab().build().start()


def tearDownModule():
    td.LAB.cleanup()


class Donor:
    """A relay that accepts and delivers nothing: the source of spool files."""

    def __init__(self):
        self.relay = h.Relay()
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["delivery"] = {"enabled": False}
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)
        self.relay.start()

    def message(self, to):
        out = self.relay.swaks("--from", SENDER, "--to", to, "--header", "Subject: swept")
        qid = h.queued_id(out)
        assert qid, out
        return qid, self.relay.message_file(qid)

    def close(self):
        self.relay.cleanup()


def drop(relay, qid, data, flip=False):
    """Put a message file into relay's msg/ the way a commit does (tmp/, then
    rename), without telling the daemon. flip: damage one content byte."""
    if flip:
        data = data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]
    tmp = os.path.join(relay.spool, "tmp", qid + ".dropped")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(relay.spool, "msg", qid))


class SpoolSafetyTest(tc.CtlCase):
    def setUp(self):
        self.donor = Donor()
        self.addCleanup(self.donor.close)

    def restart(self, env, **limits):
        env.relay.stop()
        with open(env.relay.config) as f:
            cfg = json.load(f)
        cfg["limits"].update(limits)
        with open(env.relay.config, "w") as f:
            json.dump(cfg, f)
        env.relay.start()

    def log_has(self, env, *parts):
        return [l for l in env.relay.read_log().splitlines() if all(p in l for p in parts)]

    def test_flush_all_sweeps_in_a_dropped_message_and_quarantines_damage(self):
        env = self.env(MX)
        good, data = self.donor.message("alice@secure.test")
        bad, bad_data = self.donor.message("bob@secure.test")
        drop(env.relay, good, data)
        drop(env.relay, bad, bad_data, flip=True)
        # Before the flush the daemon knows neither (the sweep runs every 10 min).
        status = self.ctl_json(env, "status", "status")
        self.assertEqual(status["queue"]["scheduled"], 0, status)

        code, out, err = self.ctl(env, "queue", "flush", "--all")
        self.assertIn(code, (0, 1), out + err)
        got = wait_until(lambda: env.received("alice@secure.test"))
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertTrue(self.log_has(env, "event=swept", f"qid={good}"),
                        env.relay.read_log()[-3000:])

        # The damaged one: set aside with its reason, logged, counted.
        qdir = os.path.join(env.relay.spool, "quarantine")
        self.assertTrue(wait_until(lambda: os.path.exists(os.path.join(qdir, bad + ".why"))),
                        env.relay.read_log()[-3000:])
        self.assertTrue(os.path.exists(os.path.join(qdir, bad)))
        self.assertFalse(os.path.exists(os.path.join(env.relay.spool, "msg", bad)))
        with open(os.path.join(qdir, bad + ".why")) as f:
            self.assertIn("checksum mismatch", f.read())
        self.assertTrue(self.log_has(env, "event=quarantine", f"qid={bad}", "checksum"))
        self.assertEqual(env.received("bob@secure.test"), [])
        status = self.ctl_json(env, "status", "status")
        self.assertEqual(status["queue"]["quarantined"], 1, status)
        self.assertGreaterEqual(status["queue"]["swept"], 2, status)
        conns = status["delivery"]["connections"]
        self.assertEqual((conns["limit"], conns["per_message"]), (100, 20), status)
        self.assertGreaterEqual(conns["peak"], 1, status)  # the delivery to alice took one
        summary = self.ctl_json(env, "queue_summary", "queue", "summary")
        self.assertEqual(summary["quarantined"], 1, summary)
        code, out, err = self.ctl(env, "status")
        self.assertIn("1 QUARANTINED", out)
        code, out, err = self.ctl(env, "queue", "summary")
        self.assertIn("QUARANTINED", out)

    def test_periodic_sweep_and_recovery_check_the_checksum(self):
        env = self.env(MX)
        # Recovery: a flipped content byte used to pass as a normal message.
        bad, bad_data = self.donor.message("carol@secure.test")
        env.relay.stop()
        drop(env.relay, bad, bad_data, flip=True)
        starts = len(self.log_has(env, "event=recovered"))
        self.restart(env, queue_sweep_interval=2)
        # The relay listens first and reads its queue after: this start's
        # event=recovered, not the first start's.
        self.assertTrue(wait_until(lambda: len(self.log_has(env, "event=recovered")) > starts,
                                   timeout=30), env.relay.read_log()[-3000:])
        qdir = os.path.join(env.relay.spool, "quarantine")
        self.assertTrue(os.path.exists(os.path.join(qdir, bad + ".why")),
                        env.relay.read_log()[-3000:])
        self.assertTrue(self.log_has(env, "event=quarantine", "checksum mismatch"))
        self.assertTrue(self.log_has(env, "event=recovered", "quarantined=1"))

        # The periodic sweep: no flush, no restart; found within a few sweeps.
        good, data = self.donor.message("dave@secure.test")
        drop(env.relay, good, data)
        got = wait_until(lambda: env.received("dave@secure.test"), timeout=45)
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertTrue(self.log_has(env, "event=swept", f"qid={good}"))
        self.assertTrue(wait_until(lambda: env.states(good) is None))


if __name__ == "__main__":
    unittest.main(verbosity=2)
