"""End-to-end: MTA-STS (RFC 8461) on the way out, in the lab (issue 18).

The relay is the real danerelayd with "mta_sts" on and the lab's CA as its
trust store; DNS is the lab (NSD + Unbound): the sts-*.test domains, most of
them unsigned (MTA-STS is for domains without DANE), each with an _mta-sts
TXT record and mta-sts.DOMAIN at lab/stsweb.py's address (dnslab.STS_WEB),
which serves each domain's policy, or a broken one (dnslab.STS). The MX
hosts are lab/smtpstub.py stubs with the lab's certificates, so a test sees
every connection and command. What is asserted:

- enforce: delivered only to an MX host the policy names, over TLS whose
  certificate is PKIX-valid for that host's name (not another name the
  policy lists; a failing one gives way to the next matching MX); a
  non-matching MX, a bad certificate or a stripped STARTTLS defers with
  4.7.5 (never a downgrade); every delivery line says sts= beside dane=.
- testing: delivered, sts=testing, and an event=sts-report line.
- DANE decides where the domain is DANE-secure, in both directions.
- a policy that cannot be had (bad syntax, wrong type, expired or wrong-name
  certificate, redirect, over 64 KiB) is no policy: opportunistic, sts=none,
  event=sts-fetch-failed; mode none and a domain without the TXT likewise.
- first contact waits for the fetch; a cached policy is not fetched per
  message, and is enforced after the HTTPS server is gone and the relay
  restarted, also when an on-path attacker hides the _mta-sts TXT record.
- REQUIRETLS goes over MTA-STS enforce, not over testing.
- policy files: level "sts" requires a policy; "mta_sts": false ignores one.
Loopback only; every server started and stopped by its PID."""
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import relayharness as h  # noqa: E402
import test_delivery as td  # noqa: E402  (the lab environment)
import test_requiretls as trt  # noqa: E402  (its REQUIRETLS submission)
from dnslab import HOSTS, PLAIN_RESOLVER, STS_WEB, sts_policy  # noqa: E402
from forger import Forger  # noqa: E402
from smtpstub import SmtpStub  # noqa: E402
from stsweb import StsWeb  # noqa: E402
from test_delivery import wait_until  # noqa: E402

setUpModule = td.setUpModule
tearDownModule = td.tearDownModule

# The policy servers' port: 443 as root (the tests' normal case), else any.
PORT = 443 if os.geteuid() == 0 else h.free_port(STS_WEB)
STS_NOMATCH_BODY = sts_policy("enforce", "*.elsewhere.test")
FORGER = "127.53.0.8"  # lab/forger.py, on-path in front of the non-validating Unbound
# each broken site, and a word its fetch error must name (why it is broken)
BROKEN = {"sts-syntax.test": "sometimes", "sts-ctype.test": "text/html",
          "sts-expired.test": "certificate", "sts-wrongname.test": "mta-sts.elsewhere.test",
          "sts-redirect.test": "302", "sts-big.test": "65536"}


def txt_answer_count(server, name, timeout=4):
    """ANCOUNT of a TXT query for name at server:53 (UDP), None without a
    reply within timeout: what the relay's resolver path says."""
    q = bytes.fromhex("5a5a01000001000000000000") + b"".join(
        bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00\x00\x10\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(q, (server, 53))
            reply = sock.recv(4096)
        except OSError:
            return None
    return int.from_bytes(reply[6:8], "big") if len(reply) >= 12 and reply[:2] == q[:2] else None


class StsCase(td.LabCase):
    def web(self, **sites):
        """The lab's policy server, started; sites: {domain: {changes}}
        (StsWeb.set_site), e.g. {"sts-nomatch.test": {"delay": 3}}."""
        w = StsWeb(td.LAB, port=PORT)
        for domain, changes in sites.items():
            w.set_site(domain, **changes)
        w.start()
        self.addCleanup(w.stop)
        return w

    def sts_env(self, **kw):
        return self.env(None, mta_sts=td.LAB.relay_mta_sts(port=PORT, fetch_timeout=20), **kw)

    def stub(self, host, cert_of=None, starttls=True, **kw):
        """An SMTP stub on HOST's address, with HOST's lab certificate (or
        cert_of's: a valid lab certificate for another name), or without
        STARTTLS."""
        cert = td.LAB.certs[cert_of or host] if starttls else None
        s = SmtpStub(HOSTS[host], name=host, cert=cert, **kw).start()
        self.addCleanup(s.stop)
        return s

    @staticmethod
    def mails(stub):
        return [c for _, c in stub.commands if c.upper().startswith("MAIL")]

    def log(self, env):
        return env.relay.read_log()[-4000:]

    def delivered_line(self, env, qid, rcpt, timeout=40):
        """Waits until qid has left the queue; the rcpt's delivered line."""
        self.assertTrue(wait_until(lambda: env.states(qid) is None, timeout=timeout),
                        f"{rcpt}: {(env.states(qid) or {}).get(rcpt)}\n" + self.log(env))
        lines = [l for l in env.log_lines(rcpt) if "outcome=delivered" in l]
        self.assertTrue(lines, self.log(env))
        return lines[-1]

    def assert_sts_deferred(self, env, qid, rcpt, text="MTA-STS", status="4.7.5 ", timeout=45):
        """Deferred with text in the reason (given time to settle, as
        LabCase.assert_deferred); fails at once if the recipient is final."""
        def settled():
            st = env.states(qid)
            if st is None or st.get(rcpt, ("",))[0] in ("delivered", "bounced"):
                return "final"
            state, error = st.get(rcpt, ("", ""))
            return state == "deferred" and text in error and "deferred"
        got = wait_until(settled, timeout=timeout)
        self.assertEqual(got, "deferred",
                         f"{rcpt}: {(env.states(qid) or {}).get(rcpt)}\n" + self.log(env))
        state, error = env.states(qid)[rcpt]
        self.assertEqual(state, "deferred")
        self.assertTrue(error.startswith(status), error)
        return error

    def assert_lines_say(self, env, rcpt, sts):
        """Every event=delivery line of rcpt names the mechanism: the
        attempts at a host, and the deferral lines without one (mx=-): the
        policy that decided is the destination's, as tls_policy= is."""
        lines = env.log_lines(rcpt)
        self.assertTrue(lines, self.log(env))
        for line in lines:
            what = "deferral line (mx=-)" if " mx=- " in line else "attempt line"
            self.assertIn(f" sts={sts}", line, f"{what}; all:\n" + "\n".join(lines))
            self.assertRegex(line, r' dane=(?:"[^"]*"|\S+) sts=')


class EnforceTest(StsCase):
    def test_delivered_to_the_matching_mx_never_to_the_other(self):
        web = self.web()
        mx = self.stub("mx.sts-enforce.test")
        # mx2 is preferred (MX 5) and has a valid lab certificate for its
        # own name: only the policy keeps the relay away from it.
        mx2 = self.stub("mx2.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("a@sts-enforce.test")
        line = self.delivered_line(env, qid, "a@sts-enforce.test")
        self.assertIn(" sts=enforced", line)
        self.assertIn('dane="pkix-verified mx.sts-enforce.test"', line)
        self.assertIn("mx=mx.sts-enforce.test", line)
        self.assertEqual(mx.messages, 1)
        self.assertEqual(mx2.connections, 0, mx2.commands)
        self.assertGreaterEqual(len(web.requests("mta-sts.sts-enforce.test")), 1)
        self.assertEqual(web.requests("mta-sts.sts-enforce.test")[0]["sni"],
                         "mta-sts.sts-enforce.test")
        self.assert_lines_say(env, "a@sts-enforce.test", "enforced")

    def test_probe_shows_the_record_the_policies_and_what_decides(self):
        # danectl probe with the relay's configuration: the record, a policy
        # fetched now, the daemon's cached one once a delivery stored it,
        # and which mechanism authenticates, through the daemon's own plan.
        import json
        import subprocess
        self.web()
        self.stub("mx.sts-enforce.test")
        env = self.sts_env()

        def probe(domain):
            r = subprocess.run([h.DANECTL, "--config", env.relay.config, "probe", domain,
                                "--json"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)

        first = probe("sts-enforce.test")
        sts = first["mta_sts"]
        self.assertEqual((sts["record"], sts["cached"], sts["decides"]),
                         ("found", None, "mta-sts"), sts)
        self.assertEqual(sts["fetched"]["mode"], "enforce")
        self.assertEqual(sts["fetched"]["mx"], ["mx.sts-enforce.test"])
        hosts = {x["name"]: x for x in first["decision"]["hosts"]}
        self.assertEqual(hosts["mx.sts-enforce.test"]["mta_sts"], "enforced")
        self.assertEqual(hosts["mx2.sts-enforce.test"]["tls"], "skip")
        self.assertIn("MTA-STS", hosts["mx2.sts-enforce.test"]["why"])
        qid = env.submit("p@sts-enforce.test")
        self.delivered_line(env, qid, "p@sts-enforce.test")
        # any case and a trailing dot: the daemon's cache file is found
        cached = probe("STS-Enforce.test.")["mta_sts"]["cached"]
        self.assertIsNotNone(cached)
        self.assertEqual(cached["mode"], "enforce")
        self.assertEqual(probe("sts-dane.test")["mta_sts"]["decides"], "dane")
        self.assertEqual(probe("sts-nomatch.test")["mta_sts"]["decides"], "no usable host")

    def test_a_wildcard_pattern_matches(self):
        self.web()
        mx = self.stub("mx.sts-wild.test")
        env = self.sts_env()
        qid = env.submit("b@sts-wild.test")
        line = self.delivered_line(env, qid, "b@sts-wild.test")
        self.assertIn(" sts=enforced", line)
        self.assertIn('dane="pkix-verified mx.sts-wild.test"', line)
        self.assertEqual(mx.messages, 1)

    def test_a_non_matching_mx_is_never_connected_to(self):
        web = self.web()
        mx = self.stub("mx.sts-nomatch.test")  # would take the message, TLS and all
        env = self.sts_env()
        qid = env.submit("c@sts-nomatch.test")
        error = self.assert_sts_deferred(env, qid, "c@sts-nomatch.test")
        time.sleep(3)  # a few more retries (every 1-2 s)
        self.assertEqual((env.states(qid) or {}).get("c@sts-nomatch.test", ("gone",))[0],
                         "deferred")
        self.assertEqual(mx.connections, 0, (error, mx.commands))
        self.assertTrue(web.requests("mta-sts.sts-nomatch.test"))
        self.assert_lines_say(env, "c@sts-nomatch.test", "enforced")

    def test_a_certificate_for_another_name_defers(self):
        self.web()
        # a lab certificate, valid, but for mx.sts-enforce.test
        mx = self.stub("mx.sts-badcert.test", cert_of="mx.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("d@sts-badcert.test")
        self.assert_sts_deferred(env, qid, "d@sts-badcert.test")
        self.assertGreaterEqual(mx.connections, 1)  # tried, refused after the handshake
        self.assertEqual(self.mails(mx), [], mx.commands)
        self.assertEqual(mx.messages, 0)
        self.assert_lines_say(env, "d@sts-badcert.test", "enforced")

    def test_a_failing_matching_mx_gives_way_to_the_next_matching_one(self):
        # Both MX hosts in the policy. The preferred mx2 presents a valid lab
        # certificate for mx.sts-enforce.test: a name the policy lists, but
        # not the host connected to. Refused; the next matching MX delivers.
        both = "\r\n".join(["version: STSv1", "mode: enforce", "mx: mx.sts-enforce.test",
                             "mx: mx2.sts-enforce.test", "max_age: 86400", ""])
        self.web(**{"sts-enforce.test": {"body": both}})
        mx2 = self.stub("mx2.sts-enforce.test", cert_of="mx.sts-enforce.test")
        mx = self.stub("mx.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("r@sts-enforce.test")
        line = self.delivered_line(env, qid, "r@sts-enforce.test")
        self.assertIn("mx=mx.sts-enforce.test", line)
        self.assertIn(" sts=enforced", line)
        self.assertEqual(mx.messages, 1)
        self.assertGreaterEqual(mx2.connections, 1)  # tried first (MX 5), refused
        self.assertEqual(self.mails(mx2), [], mx2.commands)
        tried = [l for l in env.log_lines("r@sts-enforce.test") if "mx=mx2.sts-enforce.test" in l]
        self.assertTrue(tried and "outcome=retry-next-host" in tried[0], tried)

    def test_a_stripped_starttls_defers(self):
        self.web()
        mx = self.stub("mx.sts-enforce.test", starttls=False)
        mx2 = self.stub("mx2.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("e@sts-enforce.test")
        self.assert_sts_deferred(env, qid, "e@sts-enforce.test")
        self.assertGreaterEqual(mx.connections, 1)
        self.assertEqual(self.mails(mx), [], mx.commands)
        self.assertEqual(mx.messages + mx2.messages, 0)
        self.assertEqual(mx2.connections, 0)
        self.assert_lines_say(env, "e@sts-enforce.test", "enforced")


class TestingModeTest(StsCase):
    def test_delivered_logged_and_reported(self):
        self.web()
        mx = self.stub("mx.sts-testing.test")
        env = self.sts_env()
        qid = env.submit("f@sts-testing.test")
        line = self.delivered_line(env, qid, "f@sts-testing.test")
        self.assertIn(" sts=testing", line)
        self.assertEqual(mx.messages, 1)
        reports = [l for l in env.relay.read_log().splitlines() if "event=sts-report" in l]
        self.assertTrue(reports, self.log(env))
        self.assertTrue(any(re.search(r"\bdomain=sts-testing\.test(\s|$)", l)
                            and "mx.sts-testing.test" in l for l in reports), reports)

    def test_a_bad_certificate_is_reported_not_refused(self):
        # testing mode, the MX matching now, its certificate for another name
        matching = "\r\n".join(["version: STSv1", "mode: testing", "mx: mx.sts-testing.test",
                                 "max_age: 86400", ""])
        self.web(**{"sts-testing.test": {"body": matching}})
        mx = self.stub("mx.sts-testing.test", cert_of="mx.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("u@sts-testing.test")
        self.assertIn(" sts=testing", self.delivered_line(env, qid, "u@sts-testing.test"))
        self.assertEqual(mx.messages, 1)
        reports = [l for l in env.relay.read_log().splitlines() if "event=sts-report" in l
                   and "domain=sts-testing.test" in l]
        self.assertTrue(reports, self.log(env))
        self.assertIn("certificate", reports[-1])


class DanePrecedenceTest(StsCase):
    def test_dane_decides_where_the_domain_has_it(self):
        # the MTA-STS policy lists *.elsewhere.test: applied, it would defer
        self.web()
        mx = self.stub("mx.sts-dane.test")
        env = self.sts_env()
        qid = env.submit("g@sts-dane.test")
        line = self.delivered_line(env, qid, "g@sts-dane.test")
        self.assertIn('dane="matched 3 1 1', line)
        self.assertIn(" sts=none", line)
        self.assertEqual(mx.messages, 1)

    def test_a_dane_failure_is_not_rescued_by_a_valid_policy(self):
        # the TLSA record does not match; the certificate is PKIX-valid for
        # the MX host, which the (valid, matching) MTA-STS policy names
        self.web()
        mx = self.stub("mx.sts-danefail.test")
        env = self.sts_env()
        qid = env.submit("h@sts-danefail.test")
        self.assert_sts_deferred(env, qid, "h@sts-danefail.test", text="4.7.5")
        time.sleep(3)
        self.assertEqual((env.states(qid) or {}).get("h@sts-danefail.test", ("gone",))[0],
                         "deferred")
        self.assertEqual(self.mails(mx), [], mx.commands)
        self.assertEqual(mx.messages, 0)
        self.assertFalse(any("outcome=delivered" in l
                             for l in env.log_lines("h@sts-danefail.test")))


class NoPolicyTest(StsCase):
    def test_a_broken_policy_is_no_policy(self):
        web = self.web()
        stubs = {d: self.stub("mx." + d) for d in BROKEN}
        env = self.sts_env()
        qids = {d: env.submit(f"i@{d}") for d in BROKEN}
        for d in BROKEN:
            with self.subTest(domain=d):
                line = self.delivered_line(env, qids[d], f"i@{d}", timeout=60)
                self.assertIn(" sts=none", line)
                self.assertEqual(stubs[d].messages, 1)
                want = re.compile(rf"\bdomain={re.escape(d)}(\s|$)")
                fails = [l for l in env.relay.read_log().splitlines()
                         if "event=sts-fetch-failed" in l and want.search(l)]
                self.assertTrue(fails, self.log(env))
                self.assertRegex(fails[0], r"\berror=\S")
                self.assertIn(BROKEN[d], fails[0].split("error=", 1)[-1])
                # the fetch was tried (a TLS ClientHello for its name)
                self.assertTrue(web.contacts("mta-sts." + d), web.events()[-20:])
        # no certificate refused was ever asked for a policy
        self.assertEqual(web.requests("mta-sts.sts-expired.test"), [])
        self.assertEqual(web.requests("mta-sts.sts-wrongname.test"), [])
        # the redirect was not followed
        self.assertEqual(web.contacts("mta-sts.sts-enforce.test"), [])

    def test_mode_none_and_no_txt_record(self):
        web = self.web()
        none = self.stub("mx.sts-none.test")
        notxt = self.stub("mx.sts-notxt.test")
        env = self.sts_env()
        q1 = env.submit("j@sts-none.test")
        q2 = env.submit("j@sts-notxt.test")
        self.assertIn(" sts=none", self.delivered_line(env, q1, "j@sts-none.test"))
        self.assertIn(" sts=none", self.delivered_line(env, q2, "j@sts-notxt.test"))
        self.assertEqual(none.messages + notxt.messages, 2)
        # without the TXT record there is nothing to discover: never fetched
        self.assertEqual(web.contacts("mta-sts.sts-notxt.test"), [])
        self.assertEqual(web.requests("mta-sts.sts-notxt.test"), [])


class FetchAndCacheTest(StsCase):
    def test_first_contact_waits_for_the_policy(self):
        web = self.web(**{"sts-nomatch.test": {"delay": 3}})
        mx = self.stub("mx.sts-nomatch.test")
        env = self.sts_env()
        t0 = time.monotonic()
        qid = env.submit("k@sts-nomatch.test")
        # the policy arrives after 3 s; meanwhile nothing may leave
        answered = wait_until(lambda: web.requests("mta-sts.sts-nomatch.test"), timeout=30)
        self.assertTrue(answered, self.log(env))
        self.assertGreaterEqual(time.monotonic() - t0, 2.5)
        self.assert_sts_deferred(env, qid, "k@sts-nomatch.test")
        self.assertEqual(mx.connections, 0, mx.commands)
        self.assertFalse(any("outcome=delivered" in l for l in env.log_lines("k@sts-nomatch.test")))

    def test_first_contact_waits_then_enforces(self):
        # a slow policy server: without waiting, the preferred mx2 (not in
        # the policy) would have had the message opportunistically
        web = self.web(**{"sts-enforce.test": {"delay": 3}})
        mx = self.stub("mx.sts-enforce.test")
        mx2 = self.stub("mx2.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("w@sts-enforce.test")
        line = self.delivered_line(env, qid, "w@sts-enforce.test")
        self.assertIn(" sts=enforced", line)
        self.assertIn("mx=mx.sts-enforce.test", line)
        self.assertEqual((mx.messages, mx2.connections), (1, 0), mx2.commands)
        self.assertEqual(len(web.requests("mta-sts.sts-enforce.test")), 1)

    def test_a_cached_policy_is_not_fetched_again_for_each_message(self):
        # the id in the TXT record is unchanged and max_age is a day: the
        # second message uses the cached policy, even if the server now
        # serves another one (RFC 8461 3.3, 5.1)
        web = self.web()
        mx = self.stub("mx.sts-enforce.test")
        env = self.sts_env()
        q1 = env.submit("v1@sts-enforce.test")
        self.assertIn(" sts=enforced", self.delivered_line(env, q1, "v1@sts-enforce.test"))
        self.assertEqual(len(web.requests("mta-sts.sts-enforce.test")), 1)
        web.set_site("sts-enforce.test", body=STS_NOMATCH_BODY)
        q2 = env.submit("v2@sts-enforce.test")
        self.assertIn(" sts=enforced", self.delivered_line(env, q2, "v2@sts-enforce.test"))
        self.assertEqual(mx.messages, 2)
        self.assertEqual(len(web.requests("mta-sts.sts-enforce.test")), 1, web.requests())

    def test_a_cached_policy_is_enforced_without_its_server_after_a_restart(self):
        web = self.web()
        mx = self.stub("mx.sts-enforce.test")
        env = self.sts_env()
        qid = env.submit("l@sts-enforce.test")
        self.assertIn(" sts=enforced", self.delivered_line(env, qid, "l@sts-enforce.test"))
        self.assertEqual(mx.messages, 1)
        cache = os.path.join(env.relay.spool, "sts")
        self.assertTrue(os.path.isdir(cache) and os.listdir(cache), cache)
        fetched = len(web.requests("mta-sts.sts-enforce.test"))
        # the server goes, the relay restarts, and an attacker's MX answers
        # with a valid certificate for another name
        web.stop()
        mx.stop()
        env.relay.stop()
        evil = self.stub("mx.sts-enforce.test", cert_of="mx.sts-nomatch.test")
        env.relay.start()
        q2 = env.submit("m@sts-enforce.test")
        self.assert_sts_deferred(env, q2, "m@sts-enforce.test")
        self.assertEqual(self.mails(evil), [], evil.commands)
        self.assertEqual(evil.messages, 0)
        self.assert_lines_say(env, "m@sts-enforce.test", "enforced")
        self.assertEqual(len(web.requests("mta-sts.sts-enforce.test")), fetched)

    def test_an_attacker_hiding_the_txt_record_gains_nothing(self):
        # On the path (lab/forger.py in front of the resolver): first
        # honest; then, with the policy cached, it drops the _mta-sts TXT
        # queries, or forges their absence (an unsigned zone: a NODATA is
        # believable), blocks mta-sts.sts-enforce.test's address, and an MX
        # with a valid certificate for another name answers. The cached
        # policy still decides: deferred, never delivered.
        web = self.web()
        mx = self.stub("mx.sts-enforce.test")
        dns = {**td.LAB.relay_dns("local"), "resolvers": [FORGER]}
        with Forger(FORGER, PLAIN_RESOLVER, "nothing.sts-enforce.test/A=-"):  # honest
            self.assertEqual(txt_answer_count(FORGER, "_mta-sts.sts-enforce.test"), 1)
            env = self.sts_env(dns=dns)
            qid = env.submit("s@sts-enforce.test")
            self.assertIn(" sts=enforced", self.delivered_line(env, qid, "s@sts-enforce.test"))
            env.relay.stop()  # before its resolver goes
        web.stop()
        mx.stop()
        evil = self.stub("mx.sts-enforce.test", cert_of="mx.sts-nomatch.test")
        txt = "_mta-sts.sts-enforce.test/16="  # TXT
        for n, (hide, status, seen) in enumerate((
                (txt + "-", "4.", None),  # dropped: any 4.x deferral
                (txt + "_mta-stx.sts-enforce.test", "4.7.5 ", 0))):  # forged NODATA
            with self.subTest(hide=hide):
                with Forger(FORGER, PLAIN_RESOLVER, hide, "mta-sts.sts-enforce.test=-"):
                    # the premise: the record is hidden on the relay's path
                    self.assertEqual(txt_answer_count(FORGER, "_mta-sts.sts-enforce.test",
                                                      timeout=2), seen)
                    env.relay.start()
                    try:
                        q = env.submit(f"t{n}@sts-enforce.test")
                        self.assert_sts_deferred(env, q, f"t{n}@sts-enforce.test", status=status)
                        self.assertEqual(self.mails(evil), [], evil.commands)
                        self.assertEqual(evil.messages, 0)
                    finally:
                        env.relay.stop()


class RequireTlsOverStsTest(StsCase):
    submit_requiretls = trt.RequireTlsTest.submit_requiretls

    def test_delivered_over_enforce_with_the_parameter(self):
        self.web()
        mx = self.stub("mx.sts-enforce.test", tls_extensions=["REQUIRETLS"])
        self.stub("mx2.sts-enforce.test", tls_extensions=["REQUIRETLS"])
        env = self.sts_env()
        qid = self.submit_requiretls(env, "n@sts-enforce.test")
        line = self.delivered_line(env, qid, "n@sts-enforce.test")
        self.assertIn(" sts=enforced", line)
        mail = self.mails(mx)
        self.assertEqual(len(mail), 1, mx.commands)
        self.assertTrue(mail[0].endswith(" REQUIRETLS"), mail)

    def test_testing_mode_is_not_enough(self):
        self.web()
        mx = self.stub("mx.sts-testing.test", tls_extensions=["REQUIRETLS"])
        env = self.sts_env()
        qid = self.submit_requiretls(env, "o@sts-testing.test")
        self.assert_sts_deferred(env, qid, "o@sts-testing.test", text="REQUIRETLS",
                                 status="4.7.30 ")
        self.assertEqual(self.mails(mx), [], mx.commands)
        self.assertEqual(mx.messages, 0)


class PolicyFileTest(StsCase):
    def test_level_sts_requires_a_policy(self):
        self.web()
        none = self.stub("mx.sts-none.test")
        insecure = self.stub("mx.insecure.test")
        good = self.stub("mx.sts-enforce.test")
        env = self.sts_env(policies={"sts-none.test": {"level": "sts"},
                                     "insecure.test": {"level": "sts"},
                                     "sts-enforce.test": {"level": "sts"}})
        q1 = env.submit("p@sts-none.test")
        q2 = env.submit("p@insecure.test")
        q3 = env.submit("p@sts-enforce.test")
        self.assertIn(" sts=enforced", self.delivered_line(env, q3, "p@sts-enforce.test"))
        self.assertEqual(good.messages, 1)
        self.assert_sts_deferred(env, q1, "p@sts-none.test")
        self.assert_sts_deferred(env, q2, "p@insecure.test")
        self.assertEqual(self.mails(none) + self.mails(insecure), [])
        self.assertEqual(none.messages + insecure.messages, 0)

    def test_mta_sts_false_ignores_the_policy(self):
        self.web()
        mx = self.stub("mx.sts-nomatch.test")
        env = self.sts_env(policies={"sts-nomatch.test": {
            "mta_sts": False, "reason": "the partner's policy still names its old MX"}})
        qid = env.submit("q@sts-nomatch.test")
        line = self.delivered_line(env, qid, "q@sts-nomatch.test")
        self.assertIn(" sts=none", line)
        self.assertEqual(mx.messages, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
