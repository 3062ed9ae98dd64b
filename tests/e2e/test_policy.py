"""End-to-end: per-destination policy files steering real deliveries in the
lab (NSD + validating Unbound + Postfix MTAs), reload with SIGHUP."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import test_delivery as td  # noqa: E402  (the lab environment)
from test_delivery import Env, wait_until  # noqa: E402

setUpModule = td.setUpModule
tearDownModule = td.tearDownModule


class PolicyTest(td.LabCase):
    def test_dane_only_to_an_insecure_domain_defers(self):
        env = self.env({"mx.insecure.test": True}, policies={"insecure.test": {"level": "dane-only"}})
        qid = env.submit("a@insecure.test")
        self.assert_deferred(env, qid, "a@insecure.test", "4.7.5")
        self.assertEqual(env.received(), [])
        self.assertIn("policy=dane-only@", env.log_lines("a@insecure.test")[-1])

    def test_encrypt_to_a_host_without_starttls_defers(self):
        env = self.env({"mx.insecure.test": False}, policies={"insecure.test": {"level": "encrypt"}})
        qid = env.submit("b@insecure.test")
        self.assert_deferred(env, qid, "b@insecure.test", "STARTTLS not offered")
        self.assertEqual(env.received(), [])

    def test_may_delivers_despite_tlsa_mismatch_only_where_named(self):
        env = self.env({"mx1.secure.test": {"starttls": True, "cert": "mx.insecure.test"},
                        "mx2.secure.test": {"starttls": True, "cert": "mx.insecure.test"},
                        "mx1.nsec3.test": {"starttls": True, "cert": "mx.insecure.test"}},
                       policies={"secure.test": {"level": "may", "reason": "partner's TLSA is stale"}})
        env.submit("c@secure.test")
        q2 = env.submit("c@nsec3.test")
        got = wait_until(lambda: env.received("c@secure.test"))
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertIn("policy=may@", env.log_lines("c@secure.test")[-1])
        # the same mismatch at a domain without the exception: deferred, not sent
        self.assert_deferred(env, q2, "c@nsec3.test", "4.7.5")
        self.assertEqual(env.received("c@nsec3.test"), [])

    def test_next_hop_routes_to_a_literal_and_to_a_dane_host(self):
        env = self.env({"mx.insecure.test": False, "mx1.secure.test": True},
                       policies={"routed.example": {"next_hop": "[127.0.2.1]:25"},
                                 "dane-routed.example": {"next_hop": "mx1.secure.test"}})
        env.submit("d@routed.example")
        env.submit("e@dane-routed.example")
        got = wait_until(lambda: env.received("d@routed.example"))
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertEqual(got[0]["host"], "mx.insecure.test")
        got = wait_until(lambda: env.received("e@dane-routed.example"))
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertEqual(got[0]["host"], "mx1.secure.test")
        self.assertIn('dane="matched', env.log_lines("e@dane-routed.example")[-1])

    def test_report_only_logs_and_delivers(self):
        env = self.env({"mx.insecure.test": True},
                       policies={"insecure.test": {"level": "dane-only", "mode": "report-only"}})
        env.submit("f@insecure.test")
        self.assertTrue(wait_until(lambda: env.received("f@insecure.test")))
        log = env.relay.read_log()
        self.assertIn("event=policy-report", log)
        self.assertIn('result="would defer: 4.7.5', log)

    def test_broken_file_on_reload_keeps_the_old_policy(self):
        env = self.env({"mx.insecure.test": True}, policies={"insecure.test": {"level": "dane-only"}})
        q1 = env.submit("g@insecure.test")
        self.assert_deferred(env, q1, "g@insecure.test", "4.7.5")
        env.write_policy("site.json", '{"policies": {"insecure.test": {"level": "may"}}}')  # no reason
        os.kill(env.relay.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "event=policy-reload-FAILED" in env.relay.read_log()))
        self.assertIn("site.json:1:", env.relay.read_log())
        os.kill(env.relay.proc.pid, signal.SIGUSR1)  # retry now: still dane-only
        time.sleep(2)
        self.assertEqual(env.received(), [])
        env.write_policy("site.json", {"insecure.test": {"level": "may", "reason": "fixed"}})
        os.kill(env.relay.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "event=policy-reload dir=" in env.relay.read_log()))
        os.kill(env.relay.proc.pid, signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: env.received("g@insecure.test")))

    def test_verify_with_the_lab_ca_as_trust_store(self):
        ca = td.LAB.pki.ca["crt"]
        # insecure.test's MX RRset is unsigned, so only a next hop the operator
        # names makes the MX host's name the one checked (else: the domain's,
        # test_hostile_mx.py)
        env = self.env({"mx.insecure.test": True, "mx.notlsa.test": {"starttls": True, "cert": "mx.insecure.test"}},
                       policies={"insecure.test": {"level": "verify", "trust_store": ca,
                                                   "next_hop": "mx.insecure.test"},
                                 "notlsa.test": {"level": "verify", "trust_store": ca}})
        env.submit("h@insecure.test")
        got = wait_until(lambda: env.received("h@insecure.test"))
        self.assertTrue(got, env.relay.read_log()[-3000:])
        self.assertIn('dane="pkix-verified mx.insecure.test"', env.log_lines("h@insecure.test")[-1])
        # a certificate from the right CA, but for another name: deferred
        q = env.submit("i@notlsa.test")
        self.assert_deferred(env, q, "i@notlsa.test", "does not name mx.notlsa.test")
        self.assertEqual(env.received("i@notlsa.test"), [])

    def test_tls_pins(self):
        import base64
        import hashlib
        from pki import Pki
        pin = base64.b64encode(hashlib.sha256(
            Pki.spki_der(td.LAB.certs["mx.insecure.test"]["crt"])).digest()).decode()
        wrong = base64.b64encode(hashlib.sha256(b"another key").digest()).decode()
        env = self.env({"mx.insecure.test": True, "mx.notlsa.test": True},
                       policies={"insecure.test": {"tls_pins": [pin]},
                                 "notlsa.test": {"tls_pins": [wrong]}})
        env.submit("j@insecure.test")
        self.assertTrue(wait_until(lambda: env.received("j@insecure.test")))
        q = env.submit("k@notlsa.test")
        self.assert_deferred(env, q, "k@notlsa.test", "tls_pins")
        self.assertEqual(env.received("k@notlsa.test"), [])

    def test_next_hop_with_implicit_tls_and_auth(self):
        # The upstream is a second danerelayd that relays only for
        # authenticated clients, on its implicit-TLS (465-style) port.
        upstream = td.h.Relay(relay_networks=[], users={"relayuser": "s3cret pass"})
        self.addCleanup(upstream.cleanup)
        upstream.start()
        env = self.env(None, policies={"upstream.example": {
            "next_hop": f"[127.0.0.1]:{upstream.tls_port}", "implicit_tls": True,
            "auth": "upstream-auth.txt", "level": "encrypt"}},
            policy_files={"upstream-auth.txt": "relayuser:s3cret pass\n"})
        env.submit("l@upstream.example")
        msg = wait_until(lambda: next((m for m in upstream.queue()["messages"]
                                       if m["recipients"][0]["address"] == "l@upstream.example"), None))
        self.assertTrue(msg, env.relay.read_log()[-3000:])
        self.assertRegex(msg["tls"], r"^TLS1\.[23]/")
        self.assertIn("event=auth client=127.0.0.1 user=relayuser result=ok", upstream.read_log())

    def test_invalid_policy_stops_the_start(self):
        with self.assertRaises(RuntimeError) as ctx:
            Env(None, policies='{"policies": {\n"x.example": {"level": "sometimes"}}}')
        self.assertIn("site.json:2:", str(ctx.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
