"""End-to-end: DNS with DNSSEC status, against the lab (NSD with signed zones,
validating and non-validating Unbound), through `danectl probe --json` and the
daemon's start-up probe. Every outcome the delivery decision depends on."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import relayharness as h  # noqa: E402
from forger import ATTACKER_ADDRESS, ATTACKER_MX, Forger  # noqa: E402
from forger import start as start_forger  # noqa: E402

PROBE_NAMES = ["secure.test", "dsmismatch.test"]  # signed / deliberately bogus
# On-path attackers in front of the plain resolver (lab/forger.py): one forges
# TLSA denials, the other a denial of DS (a downgrade to "unsigned").
FORGER = "127.53.0.4"
DS_FORGER = "127.53.0.5"
# One more, started per case: records appended beside a genuine signed answer.
INJECTOR = "127.53.0.7"


def probe(domain, resolver=dnslab.RESOLVER, validation="resolver", anchor=None):
    cmd = [h.DANECTL, "probe", "--json", "--resolver", resolver, "--validation", validation,
           "--probe-names", *PROBE_NAMES, domain]
    if anchor:
        cmd[2:2] = ["--trust-anchor", anchor]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return out.returncode, json.loads(out.stdout)


def verdicts(d):
    """What delivery decides from: every answer's outcome and DNSSEC status."""
    failed = ("servfail", "timeout", "error")

    def outcome(a):
        return "failed" if a["outcome"] in failed else a["outcome"]
    hosts = []
    for x in d["hosts"]:
        t = x["tlsa"]
        hosts.append((x["name"], x.get("address_security"),
                      t and (t["status"], t["answer"]["security"] if t.get("answer") else None)))
    return (outcome(d["mx"]), d["mx"]["security"], d.get("null_mx"), d.get("implicit_mx"),
            tuple(hosts))


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
        resolver_mode = self.lab.relay_dns("resolver")
        for dns, expect in ((resolver_mode, "event=dnssec-probe result=validating"),
                            ({**resolver_mode, "resolvers": [dnslab.PLAIN_RESOLVER]},
                             "event=dnssec-probe-FAILED"),
                            (self.lab.relay_dns("local"), "event=dnssec-probe result=validating")):
            relay = h.Relay(dns=dns)
            try:
                relay.start()
                deadline = time.monotonic() + 15
                while expect not in relay.read_log() and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.assertIn(expect, relay.read_log())
            finally:
                relay.cleanup()

    def test_resolv_conf_default(self):
        """No dns.resolvers: the nameservers of dns.resolv_conf (here a file
        the test writes, naming the lab's plain resolver; never the machine's
        own). The start line, --check-config and danectl status say which
        resolvers are in use and where they came from; the probe passes."""
        relay = h.Relay()
        try:
            conf = os.path.join(relay.dir, "resolv.conf")
            with open(conf, "w") as f:
                f.write(f"# lab\nsearch test\nnameserver {dnslab.PLAIN_RESOLVER}\n"
                        "nameserver fe80::1%lo\n")
            dns = {k: v for k, v in self.lab.relay_dns("local").items() if k != "resolvers"}
            relay.set_dns({**dns, "resolv_conf": conf})
            check = subprocess.run([h.DANERELAYD, "--config", relay.config, "--check-config"],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            self.assertIn(f"resolvers: {dnslab.PLAIN_RESOLVER}:53 from {conf}", check.stdout)
            self.assertIn(f"{conf}:4: nameserver fe80::1%lo", check.stdout)
            relay.start()
            deadline = time.monotonic() + 15
            while ("event=dnssec-probe result=validating" not in relay.read_log()
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            log = relay.read_log()
            self.assertIn("event=dnssec-probe result=validating", log)
            self.assertIn(f"resolvers={dnslab.PLAIN_RESOLVER}:53 resolvers_from={conf}", log)
            self.assertIn("event=resolv-conf-warning", log)
            out = subprocess.run([h.DANECTL, "--config", relay.config, "status"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn(f"resolvers: {dnslab.PLAIN_RESOLVER}:53 from {conf}", out.stdout)
        finally:
            relay.cleanup()


# Every lab name that the delivery decision looks at, NSEC and NSEC3 zones both.
LAB_NAMES = ["secure.test", "nsec3.test", "insecure.test", "bogus.test", "expired.test",
             "dsmismatch.test", "nothere.secure.test", "nothere.nsec3.test", "nomx.test",
             "nullmx.test", "cname.test", "partial.cname.test", "bogustlsa.test", "usage01.test",
             "badlen.test", "notlsa.test", "lame.test", "optout.test", "child.optout.test",
             "any.wild.secure.test", "any.wild.nsec3.test", "mx1.secure.test"]


class LocalValidationTest(unittest.TestCase):
    """dns.validation "local": danerelay validates from the lab's anchor by
    itself, behind a resolver that does not validate, or straight against the
    authoritative server, and must reach the validating resolver's verdicts."""

    @classmethod
    def setUpClass(cls):
        cls.lab = dnslab.DnsLab().build().start()
        # the attacker: NODATA claims for names that exist, "proven" by the
        # real NSEC/NSEC3 records of a sibling that does not
        cls.forgers = [start_forger(address, dnslab.PLAIN_RESOLVER, *swaps)
                       for address, swaps in (
                           (FORGER, ["_25._tcp.mx1.secure.test/TLSA=_25._tcp.mx9.secure.test",
                                     "_25._tcp.mx1.nsec3.test/TLSA=_25._tcp.mx9.nsec3.test"]),
                           (DS_FORGER, ["secure.test/DS=nosuch.test"]))]

    @classmethod
    def tearDownClass(cls):
        for p in cls.forgers:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
        cls.lab.cleanup()

    def local(self, domain, resolver=dnslab.PLAIN_RESOLVER):
        return probe(domain, resolver, "local", self.lab.anchor)

    def test_same_verdicts_as_the_validating_resolver(self):
        for name in LAB_NAMES:
            _, want = probe(name)
            self.assertTrue(want["resolver"]["validating"], want["resolver"])
            for server in (dnslab.PLAIN_RESOLVER, dnslab.NSD):
                with self.subTest(name=name, server=server):
                    _, got = self.local(name, server)
                    self.assertTrue(got["resolver"]["validating"], got["resolver"])
                    self.assertEqual(verdicts(got), verdicts(want), (got, want))

    def test_the_bogus_ones_say_why(self):
        for name, why in (("bogus.test", "bogus.test. MX: Bogus DNSSEC signature"),
                          ("expired.test", "signature has expired"),
                          ("dsmismatch.test", "DS mismatch")):
            with self.subTest(name=name):
                rc, d = self.local(name)
                self.assertEqual((rc, d["mx"]["security"]), (1, "bogus"))
                self.assertIn(why, d["mx"]["detail"])
        _, d = self.local("bogustlsa.test")
        self.assertEqual(d["hosts"][0]["tlsa"]["status"], "failed")
        self.assertIn("TLSA: Bogus DNSSEC signature", d["hosts"][0]["tlsa"]["answer"]["detail"])

    def test_insecure_needs_a_signed_denial_of_ds(self):
        _, d = self.local("insecure.test")
        self.assertEqual(d["mx"]["security"], "insecure")
        self.assertIn("has no DS", d["mx"]["detail"])
        _, d = self.local("child.optout.test")
        self.assertEqual(d["mx"]["security"], "insecure")
        self.assertIn("opt-out", d["mx"]["detail"])

    def test_forged_tlsa_denial_is_bogus_not_absent(self):
        # Honest path first: the TLSA records are there and usable.
        for host, domain in (("mx1.secure.test", "secure.test"), ("mx1.nsec3.test", "nsec3.test")):
            with self.subTest(domain=domain):
                _, d = self.local(domain, dnslab.PLAIN_RESOLVER)
                self.assertEqual(d["hosts"][0]["tlsa"]["status"], "usable")
                _, d = self.local(domain, FORGER)
                t = next(x for x in d["hosts"] if x["name"] == host)["tlsa"]
                self.assertEqual(t["status"], "failed", t)
                self.assertEqual(t["answer"]["security"], "bogus", t)
                self.assertIn("denial of _25._tcp." + host, t["answer"]["detail"])

    def test_forged_ds_denial_does_not_make_a_signed_zone_insecure(self):
        _, d = self.local("secure.test", DS_FORGER)
        self.assertEqual(d["mx"]["security"], "bogus", d["mx"])
        self.assertIn("DS denial for secure.test.", d["mx"]["detail"])

    def test_key_fetches_use_each_resolvers_own_port(self):
        # The first resolver is dead (nothing on 127.0.0.1:1); key fetches
        # move on to the next, on its own port, as the queries do.
        t0 = time.monotonic()
        out = subprocess.run([h.DANECTL, "probe", "--json", "--resolver", "127.0.0.1:1",
                              "--resolver", dnslab.PLAIN_RESOLVER + ":53", "--validation", "local",
                              "--trust-anchor", self.lab.anchor, "--probe-names", *PROBE_NAMES,
                              "secure.test"], capture_output=True, text=True, timeout=60)
        d = json.loads(out.stdout)
        self.assertEqual(d["mx"]["security"], "secure", d["mx"])
        self.assertEqual(d["hosts"][0]["tlsa"]["status"], "usable")
        # the dead one costs a timeout or two (3 s each), not one per key fetch
        self.assertLess(time.monotonic() - t0, 12)

    def test_missing_trust_anchor_stops_the_start(self):
        dns = {**self.lab.relay_dns("local"), "trust_anchor": "/nonexistent/root.key"}
        relay = h.Relay(dns=dns)
        try:
            with self.assertRaises(RuntimeError) as cm:
                relay.start()
            self.assertIn("dns.trust_anchor", str(cm.exception))
            self.assertIn("/nonexistent/root.key", str(cm.exception))
        finally:
            relay.cleanup()


class InjectedRecordsTest(unittest.TestCase):
    """An on-path attacker (lab/forger.py) passes the query on and appends to
    the genuine signed answer records of its own: an unsigned CNAME at the
    query name beside the signed data, with its record at the CNAME's target
    (+cname), or records of the same owner and type in class CH (+ch). The
    answer is built from the RRsets the validator proved and nothing else:
    whatever the attacker appended makes it a failure, never its data, with
    local validation behind the plain resolver and, in resolver mode, behind
    the validating resolver (whose AD bit the forger passes on)."""

    # (forgery, domain probed, which answer it hits, what the refusal says)
    CASES = [
        ("secure.test/MX=+cname", "secure.test", ("mx",), "a CNAME beside the MX RRset"),
        ("secure.test/MX=+ch", "secure.test", ("mx",), "records that no proof covers"),
        ("nsec3.test/MX=+ch", "nsec3.test", ("mx",), "records that no proof covers"),
        ("_25._tcp.mx1.secure.test/TLSA=+cname", "secure.test", ("tlsa", "mx1.secure.test"),
         "a CNAME beside the TLSA RRset"),
        ("_25._tcp.mx1.secure.test/TLSA=+ch", "secure.test", ("tlsa", "mx1.secure.test"),
         "records that no proof covers"),
        ("_25._tcp.mx1.nsec3.test/TLSA=+ch", "nsec3.test", ("tlsa", "mx1.nsec3.test"),
         "records that no proof covers"),
        ("mx1.secure.test/A=+ch", "secure.test", ("a", "mx1.secure.test"),
         "records that no proof covers"),
    ]

    @classmethod
    def setUpClass(cls):
        cls.lab = dnslab.DnsLab().build().start()

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup()

    def probe_through(self, upstream, forgery, domain):
        validation = "local" if upstream == dnslab.PLAIN_RESOLVER else "resolver"
        with Forger(INJECTOR, upstream, forgery) as address:
            rc, d = probe(domain, address, validation,
                          self.lab.anchor if validation == "local" else None)
        self.assertTrue(d["resolver"]["validating"], d["resolver"])
        return rc, d

    def assert_no_attacker_data(self, d):
        hosts = [x["name"] for x in d["hosts"]]
        addresses = [a["address"] for x in d["hosts"] for a in x["addresses"]]
        records = [r["record"] for x in d["hosts"] if x["tlsa"] for r in x["tlsa"]["records"]]
        self.assertNotIn(ATTACKER_MX.rstrip("."), hosts)
        self.assertNotIn(ATTACKER_ADDRESS, addresses)
        self.assertFalse([r for r in records if r.endswith("0" * 64)], records)

    def test_records_beside_a_signed_answer_make_it_a_failure(self):
        for upstream in (dnslab.PLAIN_RESOLVER, dnslab.RESOLVER):
            for forgery, domain, where, why in self.CASES:
                with self.subTest(forgery=forgery, upstream=upstream):
                    rc, d = self.probe_through(upstream, forgery, domain)
                    self.assert_no_attacker_data(d)
                    if where[0] == "mx":
                        self.assertEqual(rc, 1)
                        answer = d["mx"]
                        self.assertEqual(d["hosts"], [])
                    else:
                        host = next(x for x in d["hosts"] if x["name"] == where[1])
                        # the MX itself was left alone: still secure
                        self.assertEqual(d["mx"]["security"], "secure", d["mx"])
                        if where[0] == "tlsa":
                            self.assertEqual(host["tlsa"]["status"], "failed", host)
                            self.assertEqual(host["tlsa"]["records"], [])
                            answer = host["tlsa"]["answer"]
                        else:
                            self.assertEqual(host["addresses"], [])
                            self.assertIn(host["address_security"], ("bogus", "indeterminate"))
                            answer = host["a"]
                    self.assertNotIn(answer["outcome"], ("data", "nodata", "nxdomain"), answer)
                    self.assertIn(answer["security"], ("bogus", "indeterminate"), answer)
                    self.assertIn(why, answer.get("detail", ""), answer)
                    # ... and the decision: defer, or that host skipped, saying why
                    decision = d["decision"]
                    if where[0] == "mx":
                        self.assertEqual(decision["action"], "defer", decision)
                        self.assertIn(why, decision["reason"])
                    else:
                        skipped = next(x for x in decision["hosts"] if x["name"] == where[1])
                        self.assertEqual(skipped["tls"], "skip", skipped)
                        self.assertIn(why, skipped["why"])
                    # the other MX host's answers were not touched
                    for x in d["hosts"]:
                        if where[0] != "mx" and x["name"] != where[1]:
                            self.assertEqual(x["address_security"], "secure", x)
                            self.assertEqual(x["tlsa"]["status"], "usable", x)

    def test_the_forger_passes_everything_else(self):
        # Honest path first, through the same forger: a forgery for one name
        # leaves the others' secure answers and usable TLSA alone.
        for upstream in (dnslab.PLAIN_RESOLVER, dnslab.RESOLVER):
            with self.subTest(upstream=upstream):
                rc, d = self.probe_through(upstream, "nsec3.test/MX=+ch", "secure.test")
                self.assertEqual((rc, d["mx"]["outcome"], d["mx"]["security"]),
                                 (0, "data", "secure"))
                self.assertEqual([x["tlsa"]["status"] for x in d["hosts"]], ["usable", "usable"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
