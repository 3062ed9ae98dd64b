"""End-to-end (issue 13): every deferral says why, a bogus address family is
dropped rather than its host, and mail for a domain whose MX is ourselves
bounces instead of looping. The real danerelayd in the DNSSEC lab (NSD,
Unbound, lab/forger.py as the on-path attacker) with real Postfix MX hosts.

Each test checks what `danectl queue show` (and the log) says about the
recipient: the host, the lookup and the DNSSEC failure or timeout, with the
RFC 3463 status (4.7.5 authentication, 4.4.3 lookup failure)."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import relayharness as h  # noqa: E402
import test_delivery  # noqa: E402  (Env and LabCase; its tests are not run here)
from forger import Forger  # noqa: E402
from test_delivery import Env, LabCase, wait_until  # noqa: E402

FORGER = "127.53.0.8"  # lab/forger.py, in front of the non-validating resolver
SENDER = "sender@secure.test"  # DSNs go to mx1/mx2.secure.test, never to a looping MX


def setUpModule():
    test_delivery.LAB = dnslab.DnsLab().build().start()


def tearDownModule():
    test_delivery.LAB.cleanup()


def show(env, qid):
    """`danectl queue show ID` as text (what an operator reads)."""
    r = subprocess.run([h.DANECTL, "--spool", env.relay.spool, "queue", "show", qid],
                       capture_output=True, text=True, timeout=30)
    return r.stdout


class DeferralReasonTest(LabCase):
    HOSTS = {"mx1.secure.test": True, "mx2.secure.test": True}

    def through_forger(self, forgeries, hosts=None):
        """A relay whose only resolver is the forger (local validation)."""
        forger = Forger(FORGER, dnslab.PLAIN_RESOLVER, *forgeries)
        forger.__enter__()
        self.addCleanup(forger.__exit__, None, None, None)
        # Dropped queries time out after 2 x 1 s, so a retry sees the same.
        dns = {**test_delivery.LAB.relay_dns("local"), "resolvers": [FORGER],
               "timeout_ms": 1000, "attempts": 2}
        return self.env(hosts or self.HOSTS, dns=dns)

    def assert_shown(self, env, qid, rcpt, *texts):
        st = env.states(qid)
        self.assertTrue(st and rcpt in st, env.relay.read_log()[-3000:])
        text = show(env, qid)
        for t in texts:
            self.assertIn(t, st[rcpt][1])
            self.assertIn(t, text)
        line = env.log_lines(rcpt)[-1]
        for t in texts:
            self.assertIn(t, line)

    def test_a_bogus_tlsa_names_the_host_the_lookup_and_the_dnssec_failure(self):
        env = self.env({"mx.bogustlsa.test": True})
        qid = env.submit("jill@bogustlsa.test")
        want = ("4.7.5 no usable MX host for bogustlsa.test: mx.bogustlsa.test: TLSA "
                "_25._tcp.mx.bogustlsa.test lookup failed DNSSEC validation: bogus")
        self.assert_deferred(env, qid, "jill@bogustlsa.test", want)
        self.assert_shown(env, qid, "jill@bogustlsa.test", want, "Bogus DNSSEC signature")
        self.assertEqual(env.received(), [])

    def test_tlsa_timeouts_are_4_4_3_and_name_each_host(self):
        env = self.through_forger(["_25._tcp.mx1.secure.test/TLSA=-",
                                   "_25._tcp.mx2.secure.test/TLSA=-"])
        qid = env.submit("kai@secure.test")
        want = "4.4.3 no usable MX host for secure.test: mx1.secure.test: TLSA"
        self.assert_deferred(env, qid, "kai@secure.test", want)
        self.assert_shown(env, qid, "kai@secure.test", want,
                          "mx1.secure.test: TLSA _25._tcp.mx1.secure.test lookup timed out",
                          "; mx2.secure.test: TLSA _25._tcp.mx2.secure.test lookup timed out")
        self.assertEqual(env.received(), [])

    def test_a_forged_address_beside_a_timeout_is_4_7_5_and_both_are_named(self):
        env = self.through_forger(["mx1.secure.test/A=+ch", "_25._tcp.mx2.secure.test/TLSA=-"])
        qid = env.submit("lev@secure.test")
        want = "4.7.5 no usable MX host for secure.test: mx1.secure.test: A lookup failed " \
               "DNSSEC validation: bogus"
        self.assert_deferred(env, qid, "lev@secure.test", want)
        self.assert_shown(env, qid, "lev@secure.test", want, "mx1.secure.test. CH A",
                          "; mx2.secure.test: TLSA _25._tcp.mx2.secure.test lookup timed out")
        self.assertEqual(env.received(), [])


class BogusFamilyTest(LabCase):
    def test_a_forged_aaaa_is_dropped_and_the_host_delivers_with_dane_over_its_a(self):
        # The attacker's AAAA (::ffff:127.0.2.66, class CH) beside mx1's
        # signed NODATA makes mx1's AAAA bogus. Before issue 13 mx1 was
        # skipped whole (and mx2 took the message); now its validated A is
        # used, with DANE, and the dropped AAAA is logged.
        for validation, upstream in (("local", dnslab.PLAIN_RESOLVER),
                                     ("resolver", dnslab.RESOLVER)):
            with self.subTest(validation=validation):
                self.aaaa_forged(validation, upstream)

    def aaaa_forged(self, validation, upstream):
        rcpt = f"mia-{validation}@secure.test"
        with Forger(FORGER, upstream, "mx1.secure.test/AAAA=+ch"):
            dns = {**test_delivery.LAB.relay_dns(validation), "resolvers": [FORGER]}
            env = Env({"mx1.secure.test": True, "mx2.secure.test": True}, dns=dns)
            try:
                env.submit(rcpt)
                got = wait_until(lambda: env.received(rcpt), timeout=45)
                self.assertTrue(got, env.relay.read_log()[-3000:])
                self.assertEqual(got[0]["host"], "mx1.secure.test")
                line = env.log_lines(rcpt)[-1]
                self.assertIn("mx=mx1.secure.test ip=127.0.1.1 ", line)
                self.assertIn('dane="matched 3 ', line)
                dropped = [l for l in env.relay.read_log().splitlines()
                           if "event=addresses-dropped" in l and "mx1.secure.test: AAAA lookup "
                           "failed DNSSEC validation: bogus" in l]
                self.assertTrue(dropped, env.relay.read_log()[-3000:])
                self.assertIn("AAAA addresses dropped", dropped[0])
            finally:
                env.close()


class MailLoopTest(LabCase):
    def test_an_mx_that_is_our_own_listener_bounces_5_4_6_without_connecting(self):
        # mx.insecure.test is 127.0.2.1; the relay gets a listener there, on
        # the port it delivers to: mail for insecure.test would come back to
        # itself. It must bounce at once, never connect to itself.
        relay = h.Relay(dns=test_delivery.LAB.relay_dns("local"), limits={})
        self.addCleanup(relay.cleanup)
        loop_port = h.free_port("127.0.2.1")
        with open(relay.config) as f:
            cfg = json.load(f)
        cfg["listeners"].append({"address": f"127.0.2.1:{loop_port}", "tls": "starttls"})
        cfg["delivery"] = {"port": loop_port, "retry_initial": 1, "retry_max": 2,
                           "connect_timeout": 5, "command_timeout": 15, "data_timeout": 15}
        with open(relay.config, "w") as f:
            json.dump(cfg, f)
        relay.start()
        # danectl probe, reading the same configuration, sees the loop too.
        probe = subprocess.run([h.DANECTL, "--config", relay.config, "probe", "insecure.test"],
                               capture_output=True, text=True, timeout=60)
        self.assertIn("loops back to myself", probe.stdout, probe.stdout + probe.stderr)
        accepts = relay.read_log().count("event=accept")
        out = relay.swaks("--from", SENDER, "--to", "ned@insecure.test", "--header",
                          "Subject: loop")
        qid = h.queued_id(out)
        self.assertTrue(qid, out)

        def bounced():
            return [l for l in relay.read_log().splitlines()
                    if "event=delivery" in l and "rcpt=ned@insecure.test" in l
                    and "outcome=bounced" in l]
        lines = wait_until(bounced, timeout=45)
        self.assertTrue(lines, relay.read_log()[-3000:])
        self.assertIn("5.4.6 mail for insecure.test loops back to myself "
                      f"(mx.insecure.test[127.0.2.1]:{loop_port} is one of our own listeners)",
                      lines[0])
        # The DSN says so (it waits in the queue: the sender's MX is not on
        # the delivery port here).
        dsn = wait_until(lambda: [l for l in relay.read_log().splitlines()
                                  if "event=bounce" in l and f"qid={qid}" in l])
        self.assertTrue(dsn, relay.read_log()[-3000:])
        dsn_id = dsn[0].split("dsn_qid=")[1].split()[0]
        body = subprocess.run([h.DANECTL, "--spool", relay.spool, "queue", "show", dsn_id,
                               "--body"], capture_output=True, text=True, timeout=30).stdout
        self.assertIn("Status: 5.4.6", body)
        self.assertIn("loops back to myself", body)
        self.assertTrue(wait_until(lambda: all(m["id"] != qid
                                               for m in relay.queue()["messages"])))
        # Only the submission itself was ever accepted: no session from ourselves.
        time.sleep(1)
        self.assertEqual(relay.read_log().count("event=accept"), accepts + 1,
                         relay.read_log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
