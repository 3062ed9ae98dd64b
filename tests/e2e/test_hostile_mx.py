"""End-to-end: hostile or odd receiving MTAs on the lab's MX addresses (a
scripted SMTP stub, lab/smtpstub.py, in place of Postfix). What an active
attacker on the path can make an MX say before the mail transaction must
cost a delay, never a bounce; the TLS mode actually required is logged; SNI
is sent in every TLS mode; and policy "verify" checks the next-hop domain,
not an MX name an attacker could choose."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import test_delivery as td  # noqa: E402  (the lab environment)
from dnslab import HOSTS  # noqa: E402
from smtpstub import SmtpStub  # noqa: E402
from test_delivery import wait_until  # noqa: E402

setUpModule = td.setUpModule
tearDownModule = td.tearDownModule


class HostileMxTest(td.LabCase):
    def stub(self, host, **kw):
        s = SmtpStub(HOSTS[host], name=host, **kw).start()
        self.addCleanup(s.stop)
        return s

    def deferred_after_both_hosts(self, env, qid, rcpt):
        """Deferred, after an attempt that reached both MX hosts."""
        def settled():
            st = (env.states(qid) or {}).get(rcpt)
            lines = env.log_lines(rcpt)
            tried = {h for h in ("mx1.secure.test", "mx2.secure.test")
                     if any(f"mx={h}" in l for l in lines)}
            return st and st[0] == "deferred" and len(tried) == 2 and st
        st = wait_until(settled, timeout=40)
        self.assertTrue(st, env.relay.read_log()[-4000:])
        return st

    def test_5xx_greeting_and_ehlo_defer_a_dane_destination_never_bounce(self):
        mx1 = self.stub("mx1.secure.test", greeting="554 go away")
        mx2 = self.stub("mx2.secure.test", replies={"EHLO": "550 5.7.1 EHLO refused",
                                                    "HELO": "550 5.7.1 HELO refused"})
        env = self.env(None)
        qid = env.submit("alice@secure.test")
        state, error = self.deferred_after_both_hosts(env, qid, "alice@secure.test")
        self.assertRegex(error, r"^4\.\d+\.\d+ ")
        self.assertTrue(error.endswith("mx2.secure.test[127.0.1.2]: EHLO: 550 5.7.1 EHLO refused"),
                        error)
        log = env.relay.read_log()
        self.assertNotIn("event=bounce", log)
        self.assertNotIn("outcome=bounced", log)
        lines = env.log_lines("alice@secure.test")
        # per host, its own reason, and the TLS mode that was required
        self.assertTrue(any("mx=mx1.secure.test" in l and "greeting: 554 go away" in l
                            and "tls_required=dane" in l and "outcome=retry-next-host" in l
                            for l in lines), lines)
        self.assertTrue(any("mx=mx2.secure.test" in l and "EHLO: 550 5.7.1 EHLO refused" in l
                            and "tls_required=dane" in l for l in lines), lines)
        final = [l for l in lines if "outcome=deferred" in l]
        self.assertTrue(final and "tls_required=dane" in final[-1], lines)
        # never a HELO fallback (nor anything else) after a refused EHLO under DANE
        self.assertFalse(any(c.upper().startswith(("HELO", "MAIL")) for _, c in mx2.commands),
                         mx2.commands)
        self.assertFalse(any(c.upper().startswith("MAIL") for _, c in mx1.commands))
        # still queued, and retried: the next attempt is deferred again, not bounced
        self.assertTrue(wait_until(lambda: mx1.connections >= 2, timeout=30))
        self.assertEqual((env.states(qid) or {}).get("alice@secure.test", ("",))[0], "deferred")

    def test_5xx_to_rcpt_from_an_authenticated_dane_server_bounces(self):
        # The rule's other half: the same relay still bounces a real 550 to
        # RCPT from a server that passed DANE.
        self.stub("mx1.secure.test", cert=td.LAB.certs["mx1.secure.test"],
                  replies={"RCPT": "550 5.1.1 no such user",
                           "DATA": "554 5.5.1 no valid recipients"})
        env = self.env(None)
        qid = env.submit("nobody@secure.test")
        ok = wait_until(lambda: env.states(qid) is None or
                        (env.states(qid) or {}).get("nobody@secure.test", ("",))[0] == "bounced")
        self.assertTrue(ok, env.relay.read_log()[-3000:])
        line = [l for l in env.log_lines("nobody@secure.test") if "outcome=bounced" in l]
        self.assertTrue(line, env.relay.read_log()[-3000:])
        self.assertIn('dane="matched 3 ', line[-1])
        self.assertIn("tls_required=dane", line[-1])

    def test_sni_is_sent_in_every_tls_mode(self):
        ca = td.LAB.pki.ca["crt"]
        stubs = {h: self.stub(h, cert=td.LAB.certs[h]) for h in
                 ("mx1.secure.test", "mx.notlsa.test", "mx.usage01.test", "mx.insecure.test",
                  "mx1.nsec3.test")}
        env = self.env(None, policies={
            "insecure.test": {"level": "verify", "trust_store": ca},
            "usage01.test": {"level": "encrypt"},
            "nsec3.test": {"level": "may", "reason": "test"},
        })
        expect = {  # recipient domain: (MX stub, mode, SNI)
            "secure.test": ("mx1.secure.test", "dane", "mx1.secure.test"),
            "notlsa.test": ("mx.notlsa.test", "opportunistic", "mx.notlsa.test"),
            "usage01.test": ("mx.usage01.test", "mandatory-unauthenticated", "mx.usage01.test"),
            # the MX RRset of insecure.test is not signed: the name checked,
            # and sent, is the next-hop domain
            "insecure.test": ("mx.insecure.test", "verify", "insecure.test"),
            "nsec3.test": ("mx1.nsec3.test", "opportunistic", "mx1.nsec3.test"),
        }
        for domain in expect:
            env.submit(f"sni@{domain}")
        for domain, (host, mode, sni) in expect.items():
            got = wait_until(lambda: stubs[host].sni and env.log_lines(f"sni@{domain}"))
            self.assertTrue(got, f"{domain}: " + env.relay.read_log()[-3000:])
            self.assertEqual(stubs[host].sni[0], sni, domain)
            line = env.log_lines(f"sni@{domain}")[-1]
            self.assertIn(f"tls_required={mode}", line)

    def test_verify_with_an_insecure_mx_checks_the_domain_not_the_mx_name(self):
        # An attacker who rewrites the unsigned MX RRset to a host of theirs
        # with a valid certificate for that host's name gets a deferral.
        ca = td.LAB.pki.ca["crt"]
        stub = self.stub("mx.insecure.test", cert=td.LAB.certs["mx.insecure.test"])
        env = self.env(None, policies={"insecure.test": {"level": "verify", "trust_store": ca}})
        qid = env.submit("v@insecure.test")
        self.assert_deferred(env, qid, "v@insecure.test", "does not name insecure.test")
        self.assertEqual(stub.messages, 0)
        self.assertFalse(any(c.upper().startswith("MAIL") for _, c in stub.commands))


if __name__ == "__main__":
    unittest.main(verbosity=2)
