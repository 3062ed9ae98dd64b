"""End-to-end: the lab's receiving MTAs (a private Postfix on the MX host
addresses) are what the delivery tests will rely on: each listener presents
its own certificate from the lab PKI, offers STARTTLS or not as configured,
and what it receives is kept with the receiving host and the TLS version.
And the MTA-STS lab, without the relay: the sts-*.test records through the
validating Unbound, and every policy site of lab/stsweb.py fetched with curl
and Python's ssl, each broken one broken in its own way."""
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import mtalab  # noqa: E402
import stsweb  # noqa: E402


class ReceivingMtaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = dnslab.DnsLab().build()
        cls.mtas = mtalab.ReceivingMtas(cls.lab, {"mx1.secure.test": True,
                                                  "mx2.secure.test": True,
                                                  "mx.insecure.test": False})
        try:
            cls.mtas.start()
        except Exception:
            cls.mtas.cleanup()
            cls.lab.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.mtas.cleanup()
        cls.lab.cleanup()

    def swaks(self, addr, *args):
        return subprocess.run(["swaks", "--server", f"{addr}:25", "--timeout", "20",
                               "--suppress-data", "--from", "lab@inside.test", *args],
                              capture_output=True, text=True, timeout=60).stdout

    def test_each_listener_presents_its_own_certificate(self):
        for host in ("mx1.secure.test", "mx2.secure.test"):
            out = self.swaks(dnslab.HOSTS[host], "-tls", "--quit-after", "TLS")
            self.assertIn(f'TLS peer DN="/CN={host}"', out)

    def test_starttls_not_offered_where_disabled(self):
        out = self.swaks(dnslab.HOSTS["mx.insecure.test"], "--quit-after", "EHLO")
        self.assertNotIn("STARTTLS", out)

    def test_received_mail_is_kept_with_host_and_tls(self):
        self.swaks(dnslab.HOSTS["mx2.secure.test"], "-tls", "--to", "kept@secure.test")
        self.swaks(dnslab.HOSTS["mx.insecure.test"], "--to", "kept@insecure.test")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = {tuple(m["recipients"]): m for m in self.mtas.messages()}
            if ("kept@secure.test",) in got and ("kept@insecure.test",) in got:
                break
            time.sleep(0.2)
        self.assertEqual(got[("kept@secure.test",)]["host"], "mx2.secure.test")
        self.assertRegex(got[("kept@secure.test",)]["tls"], r"^TLSv1\.[23]$")
        self.assertEqual(got[("kept@insecure.test",)]["host"], "mx.insecure.test")
        self.assertIsNone(got[("kept@insecure.test",)]["tls"])


def drill(name, rtype):
    """(flags, [answer RR lines], rcode) from drill through the validating Unbound."""
    out = subprocess.run(["drill", "-D", rtype, name, "@" + dnslab.RESOLVER], capture_output=True,
                         text=True, timeout=30).stdout
    flags = re.search(r";; flags: ([a-z ]*);", out).group(1).split()
    rcode = re.search(r"rcode: (\w+)", out).group(1)
    section = out.split(";; ANSWER SECTION:", 1)[1].split(";;", 1)[0]
    answers = [l.split() for l in section.splitlines() if l.strip() and f"\t{rtype}\t" in l]
    return flags, answers, rcode


class StsLabTest(unittest.TestCase):
    """The MTA-STS lab works, without the relay: what a relay would find."""

    @classmethod
    def setUpClass(cls):
        cls.lab = dnslab.DnsLab().build().start()
        cls.port = 443 if os.geteuid() == 0 else 8443
        try:
            cls.web = stsweb.StsWeb(cls.lab, port=cls.port).start()
        except Exception:
            cls.lab.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.lab.cleanup()

    def curl(self, domain, *extra):
        """GET the policy of DOMAIN as RFC 8461 3.3 says, trusting the lab CA,
        following no redirect: (exit code, status, content type, body)."""
        name = "mta-sts." + domain
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", self.lab.ca_file, "--proto", "=https",
             "--resolve", f"{name}:{self.port}:{dnslab.STS_WEB}",
             "-w", "\n%{http_code} %{content_type}",
             *extra, f"https://{name}:{self.port}/.well-known/mta-sts.txt"],
            capture_output=True, timeout=60)
        body, _, tail = out.stdout.rpartition(b"\n")
        status, _, ctype = tail.decode().partition(" ")
        return out.returncode, int(status or 0), ctype, body, out.stderr.decode()

    def handshake_error(self, domain):
        """The certificate verification error for mta-sts.DOMAIN, or None."""
        ctx = ssl.create_default_context(cafile=self.lab.ca_file)
        try:
            with socket.create_connection((dnslab.STS_WEB, self.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="mta-sts." + domain):
                    return None
        except ssl.SSLCertVerificationError as e:
            return e

    def test_records_through_the_validating_resolver(self):
        for domain, spec in dnslab.STS.items():
            with self.subTest(domain=domain):
                flags, txt, rcode = drill("_mta-sts." + domain, "TXT")
                if spec["txt"] is None:
                    self.assertEqual(txt, [])
                    self.assertEqual(rcode, "NXDOMAIN")
                else:
                    self.assertEqual(" ".join(txt[0][4:]), f'"{spec["txt"]}"')
                    self.assertEqual(len(txt), 1)
                # signed ones validate (AD), the others are insecure (no AD, no SERVFAIL)
                self.assertEqual("ad" in flags, bool(spec.get("signed")), flags)
                _, a, _ = drill("mta-sts." + domain, "A")
                self.assertEqual([r[4] for r in a], [dnslab.STS_WEB])
                _, mx, _ = drill(domain, "MX")
                self.assertEqual(sorted((int(r[4]), r[5]) for r in mx),
                                 sorted((p, f"{h}.{domain}.") for p, h in spec["mx"]))
                for _, h in spec["mx"]:
                    _, a, _ = drill(f"{h}.{domain}", "A")
                    self.assertEqual([r[4] for r in a], [dnslab.HOSTS[f"{h}.{domain}"]])

    def test_tlsa_of_the_dane_domains(self):
        from pki import Pki
        flags, tlsa, _ = drill("_25._tcp.mx.sts-dane.test", "TLSA")
        self.assertIn("ad", flags)
        own = Pki.tlsa(self.lab.certs["mx.sts-dane.test"]["crt"], 3, 1, 1)
        self.assertEqual([" ".join(r[4:]).lower() for r in tlsa], [own])
        flags, tlsa, _ = drill("_25._tcp.mx.sts-danefail.test", "TLSA")
        self.assertIn("ad", flags)
        other = Pki.tlsa(self.lab.certs["mx.sts-danefail.test"]["crt"], 3, 1, 1)
        self.assertEqual(len(tlsa), 1)
        self.assertNotEqual(" ".join(tlsa[0][4:]).lower(), other)

    def test_every_mx_host_has_a_lab_certificate_for_its_name(self):
        for host in dnslab.STS_MX:
            cert = self.lab.certs[host]
            out = subprocess.run(["openssl", "verify", "-CAfile", self.lab.ca_file, "-untrusted",
                                  self.lab.pki.intermediate["crt"], "-verify_hostname", host,
                                  cert["crt"]], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, host + ": " + out.stdout + out.stderr)

    def test_valid_policies_are_served_as_text_plain(self):
        for domain in ("sts-enforce.test", "sts-nomatch.test", "sts-wild.test",
                       "sts-testing.test", "sts-badcert.test", "sts-dane.test",
                       "sts-danefail.test", "sts-none.test", "sts-notxt.test"):
            with self.subTest(domain=domain):
                rc, status, ctype, body, err = self.curl(domain)
                self.assertEqual((rc, status, ctype), (0, 200, "text/plain"), err)
                self.assertEqual(body.decode(), dnslab.STS[domain]["site"]["body"])
                self.assertTrue(body.startswith(b"version: STSv1\r\nmode: "))
                self.assertIsNone(self.handshake_error(domain))

    def test_broken_policies_are_broken_as_intended(self):
        # bad syntax: served fine, but "mode: sometimes" is no mode
        rc, status, ctype, body, err = self.curl("sts-syntax.test")
        self.assertEqual((rc, status, ctype), (0, 200, "text/plain"), err)
        self.assertIn(b"\r\nmode: sometimes\r\n", body)
        # wrong content type, an otherwise valid body
        rc, status, ctype, body, err = self.curl("sts-ctype.test")
        self.assertEqual((rc, status, ctype), (0, 200, "text/html"), err)
        self.assertEqual(body.decode(), dnslab.sts_policy("enforce", "mx.sts-ctype.test"))
        # expired certificate (X509_V_ERR_CERT_HAS_EXPIRED), right name
        e = self.handshake_error("sts-expired.test")
        self.assertIsNotNone(e)
        self.assertEqual(e.verify_code, 10, e.verify_message)
        self.assertEqual(self.curl("sts-expired.test")[0], 60)
        # certificate for another name (X509_V_ERR_HOSTNAME_MISMATCH), valid otherwise
        e = self.handshake_error("sts-wrongname.test")
        self.assertIsNotNone(e)
        self.assertEqual(e.verify_code, 62, e.verify_message)
        self.assertEqual(self.curl("sts-wrongname.test")[0], 60)
        ctx = ssl.create_default_context(cafile=self.lab.ca_file)
        with socket.create_connection((dnslab.STS_WEB, self.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="mta-sts.elsewhere.test") as t:
                self.assertIn(("DNS", "mta-sts.elsewhere.test"), t.getpeercert()["subjectAltName"])
        # a redirect to another URL (not followed by curl without -L)
        rc, status, ctype, body, err = self.curl("sts-redirect.test")
        self.assertEqual((rc, status), (0, 302), err)
        hdrs = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-D", "-", "--max-time", "20", "--cacert",
             self.lab.ca_file, "--resolve",
             f"mta-sts.sts-redirect.test:{self.port}:{dnslab.STS_WEB}",
             f"https://mta-sts.sts-redirect.test:{self.port}/.well-known/mta-sts.txt"],
            capture_output=True, text=True, timeout=60).stdout
        self.assertIn("location: https://mta-sts.sts-enforce.test/.well-known/mta-sts.txt",
                      hdrs.lower())
        # over 64 KiB, text/plain, beginning with a valid policy
        rc, status, ctype, body, err = self.curl("sts-big.test")
        self.assertEqual((rc, status, ctype), (0, 200, "text/plain"), err)
        self.assertGreater(len(body), 64 * 1024)
        self.assertTrue(body.startswith(dnslab.sts_policy("enforce", "mx.sts-big.test")
                                        .encode()))

    def test_server_log_changes_delay_and_stop(self):
        before = len(self.web.requests("mta-sts.sts-wild.test"))
        self.curl("sts-wild.test")
        reqs = self.web.requests("mta-sts.sts-wild.test")
        self.assertEqual(len(reqs), before + 1)
        self.assertEqual(reqs[-1]["sni"], "mta-sts.sts-wild.test")
        self.assertEqual(reqs[-1]["status"], 200)
        self.assertTrue(self.web.contacts("mta-sts.sts-expired.test"))  # refused, still seen
        self.web.set_site("sts-wild.test", body="version: STSv1\r\nmode: none\r\n", delay=2)
        try:
            t0 = time.monotonic()
            rc, status, _, body, _ = self.curl("sts-wild.test")
            self.assertGreaterEqual(time.monotonic() - t0, 2)
            self.assertEqual(body, b"version: STSv1\r\nmode: none\r\n")
        finally:
            self.web.set_site("sts-wild.test", body=dnslab.STS["sts-wild.test"]["site"]["body"],
                              delay=None)
        web2 = stsweb.StsWeb(self.lab, port=self.port + 1).start()
        web2.stop()
        with self.assertRaises(OSError):
            socket.create_connection((dnslab.STS_WEB, self.port + 1), timeout=5).close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
