"""End-to-end: DNS with DNSSEC status, against the lab (NSD with signed zones,
validating and non-validating Unbound), through `danectl probe --json` and the
daemon's start-up probe. Every outcome the delivery decision depends on."""
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

PROBE_NAMES = ["secure.test", "dsmismatch.test"]  # signed / deliberately bogus


def probe(domain, resolver=dnslab.RESOLVER):
    out = subprocess.run([h.DANECTL, "probe", "--json", "--resolver", resolver,
                          "--probe-names", *PROBE_NAMES, domain],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, json.loads(out.stdout)


class DnsLabTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = dnslab.DnsLab().build().start()

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup()

    def host(self, d, name):
        return next(x for x in d["hosts"] if x["name"] == name)

    def test_secure_domain_with_usable_tlsa(self):
        rc, d = probe("secure.test")
        self.assertEqual(rc, 0)
        self.assertTrue(d["resolver"]["validating"], d["resolver"])
        self.assertEqual((d["mx"]["outcome"], d["mx"]["security"]), ("data", "secure"))
        self.assertEqual([(x["preference"], x["name"]) for x in d["hosts"]],
                         [(10, "mx1.secure.test"), (20, "mx2.secure.test")])
        mx1 = self.host(d, "mx1.secure.test")
        self.assertEqual(mx1["addresses"], [{"address": "127.0.1.1", "security": "secure"}])
        self.assertEqual(mx1["tlsa"]["status"], "usable")
        self.assertEqual(sorted(r["record"][:5] for r in mx1["tlsa"]["records"]),
                         ["3 0 1", "3 1 1", "3 1 2"])
        mx2 = self.host(d, "mx2.secure.test")
        self.assertTrue(all(r["usable"] for r in mx2["tlsa"]["records"]))
        self.assertEqual(sorted(r["record"][:5] for r in mx2["tlsa"]["records"]),
                         ["2 0 0", "2 0 1", "2 1 1"])

    def test_nsec3_zone_secure_and_nxdomain(self):
        rc, d = probe("nsec3.test")
        self.assertEqual(d["mx"]["security"], "secure")
        self.assertEqual(self.host(d, "mx1.nsec3.test")["tlsa"]["status"], "usable")
        rc, d = probe("nothere.nsec3.test")
        self.assertEqual(rc, 1)
        self.assertEqual((d["mx"]["outcome"], d["mx"]["security"]), ("nxdomain", "secure"))

    def test_insecure_domain_has_no_dane(self):
        rc, d = probe("insecure.test")
        self.assertEqual(rc, 0)
        self.assertEqual(d["mx"]["security"], "insecure")
        self.assertIsNone(d["hosts"][0]["tlsa"])

    def test_bogus_domains_are_bogus_not_insecure(self):
        for domain in ("bogus.test", "expired.test", "dsmismatch.test"):
            with self.subTest(domain=domain):
                rc, d = probe(domain)
                self.assertEqual(rc, 1)
                self.assertEqual(d["mx"]["security"], "bogus", d["mx"])
                self.assertEqual(d["hosts"], [])  # nothing from a bogus answer is used

    def test_nxdomain_nodata_and_null_mx(self):
        rc, d = probe("nothere.secure.test")
        self.assertEqual((rc, d["mx"]["outcome"], d["mx"]["security"]), (1, "nxdomain", "secure"))
        rc, d = probe("nomx.test")
        self.assertEqual((rc, d["mx"]["outcome"]), (0, "nodata"))
        self.assertTrue(d["implicit_mx"])
        self.assertEqual(d["hosts"][0]["name"], "nomx.test")
        self.assertEqual(d["hosts"][0]["tlsa"]["status"], "usable")
        rc, d = probe("nullmx.test")
        self.assertTrue(d["null_mx"])
        self.assertEqual(d["hosts"], [])

    def test_servfail_is_indeterminate(self):
        rc, d = probe("lame.test")
        self.assertEqual(rc, 1)
        self.assertEqual(d["mx"]["outcome"], "servfail")
        self.assertNotEqual(d["mx"]["security"], "insecure")

    def test_cname_chain_secure_uses_expanded_tlsa_base(self):
        rc, d = probe("cname.test")
        host = d["hosts"][0]
        self.assertEqual(host["name"], "mail.cname.test")
        self.assertEqual(host["a"]["cname_chain"], ["mail.cname.test"])
        self.assertEqual(host["a"]["canonical_name"], "mx1.secure.test")
        self.assertEqual(host["address_security"], "secure")
        self.assertEqual(host["tlsa"]["base_domain"], "mx1.secure.test")
        self.assertEqual(host["tlsa"]["status"], "usable")

    def test_cname_chain_partly_insecure_has_no_dane(self):
        rc, d = probe("partial.cname.test")
        host = d["hosts"][0]
        self.assertEqual(host["a"]["canonical_name"], "mx.insecure.test")
        self.assertEqual(host["address_security"], "insecure")
        self.assertIsNone(host["tlsa"])

    def test_tlsa_present_but_none_usable(self):
        rc, d = probe("usage01.test")
        t = d["hosts"][0]["tlsa"]
        self.assertEqual(t["status"], "none-usable")
        self.assertTrue(all("usage" in r["reason"] for r in t["records"]))
        rc, d = probe("badlen.test")
        t = d["hosts"][0]["tlsa"]
        self.assertEqual(t["status"], "none-usable")
        self.assertTrue(all("octets" in r["reason"] for r in t["records"]), t["records"])

    def test_bogus_tlsa_is_a_failure_not_absence(self):
        rc, d = probe("bogustlsa.test")
        t = d["hosts"][0]["tlsa"]
        self.assertEqual(t["status"], "failed")
        self.assertEqual(t["answer"]["security"], "bogus")

    def test_non_validating_resolver_is_detected(self):
        rc, d = probe("secure.test", resolver=dnslab.PLAIN_RESOLVER)
        self.assertFalse(d["resolver"]["validating"])
        self.assertIn("does not validate", d["resolver"]["detail"])
        self.assertEqual(d["mx"]["security"], "insecure")
        out = subprocess.run([h.DANECTL, "probe", "--resolver", dnslab.PLAIN_RESOLVER,
                              "--probe-names", *PROBE_NAMES, "secure.test"],
                             capture_output=True, text=True, timeout=60).stdout
        self.assertIn("NOT VALIDATING", out)

    def test_daemon_start_up_probe(self):
        for resolver, expect in ((dnslab.RESOLVER, "event=dnssec-probe result=validating"),
                                 (dnslab.PLAIN_RESOLVER, "event=dnssec-probe-FAILED")):
            relay = h.Relay(dns={"resolvers": [resolver],
                                 "probe_secure_name": PROBE_NAMES[0],
                                 "probe_bogus_name": PROBE_NAMES[1]})
            try:
                relay.start()
                deadline = time.monotonic() + 15
                while expect not in relay.read_log() and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.assertIn(expect, relay.read_log())
            finally:
                relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
