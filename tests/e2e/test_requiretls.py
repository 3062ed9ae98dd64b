"""End-to-end: REQUIRETLS (RFC 8689) on the way out, in the DNSSEC lab.

A message submitted over TLS with MAIL FROM ... REQUIRETLS goes only to an
MX host whose TLS was authenticated by DANE and that offers REQUIRETLS, and
is passed on with the parameter. A DANE-verified host that does not offer
REQUIRETLS, and a host of a domain without TLSA (opportunistic TLS) that
does, never see the message's MAIL FROM: the recipient is deferred with
4.7.30. A message without REQUIRETLS to the same non-offering host is
delivered as before. The MX hosts are lab/smtpstub.py stubs with the lab's
certificates (TLSA 3 1 1 for mx1.secure.test). Loopback only."""
import os
import socket
import ssl
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import relayharness as h  # noqa: E402
import test_delivery as td  # noqa: E402  (the lab environment)
from dnslab import HOSTS  # noqa: E402
from smtpstub import SmtpStub  # noqa: E402
from test_delivery import wait_until  # noqa: E402

setUpModule = td.setUpModule
tearDownModule = td.tearDownModule


def submit_over_tls(test, env, rcpt, mail_params, content):
    """One message over implicit TLS to the relay (MAIL FROM with
    mail_params, content ending in CRLF); its queue id."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", env.relay.tls_port), timeout=20)
    c = h.SmtpConn(ctx.wrap_socket(raw))
    test.assertEqual(c.reply()[0], 220)
    test.assertEqual(c.command("EHLO client.inside.test")[0], 250)
    test.assertEqual(c.command(f"MAIL FROM:<{td.SENDER}>{mail_params}")[0], 250)
    test.assertEqual(c.command(f"RCPT TO:<{rcpt}>")[0], 250)
    test.assertEqual(c.command("DATA")[0], 354)
    code, lines = c.command(content + ".")
    test.assertEqual(code, 250, lines)
    c.command("QUIT")
    c.close()
    return h.queued_id(lines[-1])


class RequireTlsTest(td.LabCase):
    def stub(self, host, **kw):
        s = SmtpStub(HOSTS[host], name=host, cert=td.LAB.certs[host], **kw).start()
        self.addCleanup(s.stop)
        return s

    def submit_requiretls(self, env, rcpt):
        """Over implicit TLS to the relay, MAIL FROM ... REQUIRETLS."""
        return submit_over_tls(self, env, rcpt, " REQUIRETLS",
                               "Subject: requiretls\r\n\r\nfor authenticated TLS only\r\n")

    def mails(self, stub):
        return [c for _, c in stub.commands if c.upper().startswith("MAIL")]

    def test_delivered_over_dane_to_a_host_that_offers_it_with_the_parameter(self):
        mx1 = self.stub("mx1.secure.test", tls_extensions=["REQUIRETLS"])
        env = self.env(None)
        qid = self.submit_requiretls(env, "r@secure.test")
        self.assertTrue(wait_until(lambda: env.states(qid) is None, timeout=40),
                        env.relay.read_log()[-3000:])
        self.assertEqual(mx1.messages, 1)
        mail = self.mails(mx1)
        self.assertEqual(len(mail), 1, mx1.commands)
        self.assertTrue(mail[0].endswith(" REQUIRETLS"), mail)
        line = [l for l in env.log_lines("r@secure.test") if "outcome=delivered" in l]
        self.assertTrue(line and 'dane="matched 3 ' in line[-1], env.relay.read_log()[-3000:])

    def test_a_dane_host_without_requiretls_never_gets_the_message(self):
        mx1 = self.stub("mx1.secure.test")  # DANE verifies, REQUIRETLS not offered
        mx2 = self.stub("mx2.secure.test")
        env = self.env(None)
        qid = self.submit_requiretls(env, "r@secure.test")
        self.assert_deferred(env, qid, "r@secure.test", "REQUIRETLS")
        state, error = env.states(qid)["r@secure.test"]
        self.assertTrue(error.startswith("4.7.30 "), error)
        self.assertIn("does not offer REQUIRETLS", error)
        self.assertEqual(self.mails(mx1) + self.mails(mx2), [])
        self.assertEqual(mx1.messages + mx2.messages, 0)
        # The same host takes a message that did not ask for REQUIRETLS.
        plain = env.submit("p@secure.test")
        self.assertTrue(wait_until(lambda: env.states(plain) is None, timeout=40),
                        env.relay.read_log()[-3000:])
        self.assertEqual(mx1.messages + mx2.messages, 1)

    def test_opportunistic_tls_is_not_enough_even_if_offered(self):
        # notlsa.test: signed, no TLSA: TLS without authentication.
        stub = self.stub("mx.notlsa.test", tls_extensions=["REQUIRETLS"])
        env = self.env(None)
        qid = self.submit_requiretls(env, "r@notlsa.test")
        self.assert_deferred(env, qid, "r@notlsa.test", "REQUIRETLS")
        state, error = env.states(qid)["r@notlsa.test"]
        self.assertTrue(error.startswith("4.7.30 "), error)
        self.assertIn("not authenticated by DANE", error)
        self.assertEqual(self.mails(stub), [])
        self.assertEqual(stub.messages, 0)

    def test_no_host_meeting_it_bounces_5_7_30_with_headers_only(self):
        # At the queue lifetime (2 s here) the 4.7.30 deferral becomes a
        # 5.7.30 bounce; the DSN carries the headers, never the content.
        self.stub("mx1.secure.test")
        self.stub("mx2.secure.test")
        env = self.env(None, delivery={"max_queue_lifetime": 2})
        qid = self.submit_requiretls(env, "r@secure.test")
        bounced = wait_until(lambda: "event=bounce" in env.relay.read_log()
                             and env.states(qid) is None, timeout=60)
        self.assertTrue(bounced, env.relay.read_log()[-3000:])
        line = next(l for l in env.relay.read_log().splitlines()
                    if "event=bounce" in l and f"qid={qid}" in l)
        dsn = line.split("dsn_qid=")[1].split()[0]
        with open(os.path.join(env.relay.spool, "msg", dsn), "rb") as f:
            text = f.read().decode(errors="replace")
        self.assertIn("Status: 5.7.30", text)
        self.assertIn("Content-Type: text/rfc822-headers", text)
        self.assertIn("Subject: requiretls", text)
        self.assertNotIn("for authenticated TLS only", text)


class TlsRequiredNoTest(td.LabCase):
    """RFC 8689 5: "TLS-Required: No" asks for delivery despite TLS policy.
    secure.test's mx1 and mx2 here present each other's certificates: DANE
    fails on both, so only the header could get the message through, and
    only where delivery.allow_tls_required_no says so."""

    mails = RequireTlsTest.mails

    def submit_with_header(self, env, rcpt, requiretls=False):
        return submit_over_tls(self, env, rcpt, " REQUIRETLS" if requiretls else "",
                               "Subject: tls-required\r\nTLS-Required: No\r\n\r\n"
                               "please deliver anyway\r\n")

    def wrong_cert_mx1(self):
        """mx1 and mx2 with each other's certificates; returns both."""
        stubs = []
        for name, other in (("mx1.secure.test", "mx2.secure.test"),
                            ("mx2.secure.test", "mx1.secure.test")):
            s = SmtpStub(HOSTS[name], name=name, cert=td.LAB.certs[other]).start()
            self.addCleanup(s.stop)
            stubs.append(s)
        return stubs

    def test_ignored_unless_the_operator_allows_it(self):
        mx1, mx2 = self.wrong_cert_mx1()
        env = self.env(None)
        qid = self.submit_with_header(env, "n@secure.test")
        self.assert_deferred(env, qid, "n@secure.test", "DANE")
        self.assertEqual(env.states(qid)["n@secure.test"][1][:6], "4.7.5 ")
        self.assertEqual(self.mails(mx1) + self.mails(mx2), [])
        self.assertIn("event=tls-required-no", env.relay.read_log())
        self.assertIn("action=ignored", env.relay.read_log())

    def test_honoured_where_allowed_as_policy_may(self):
        mx1, mx2 = self.wrong_cert_mx1()
        env = self.env(None, delivery={"allow_tls_required_no": True})
        qid = self.submit_with_header(env, "y@secure.test")
        self.assertTrue(wait_until(lambda: env.states(qid) is None, timeout=40),
                        env.relay.read_log()[-3000:])
        self.assertEqual(mx1.messages + mx2.messages, 1)
        log = env.relay.read_log()
        self.assertIn("action=honoured", log)
        line = [l for l in env.log_lines("y@secure.test") if "outcome=delivered" in l]
        self.assertTrue(line and "tls_policy=opportunistic" in line[-1], log[-3000:])

    def test_never_beside_requiretls(self):
        mx1, mx2 = self.wrong_cert_mx1()
        env = self.env(None, delivery={"allow_tls_required_no": True})
        qid = self.submit_with_header(env, "b@secure.test", requiretls=True)
        self.assert_deferred(env, qid, "b@secure.test", "DANE")
        self.assertEqual(self.mails(mx1) + self.mails(mx2), [])
        self.assertNotIn("action=honoured", env.relay.read_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
