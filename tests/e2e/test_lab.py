"""End-to-end: the lab's receiving MTAs (a private Postfix on the MX host
addresses) are what the delivery tests will rely on: each listener presents
its own certificate from the lab PKI, offers STARTTLS or not as configured,
and what it receives is kept with the receiving host and the TLS version."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
import dnslab  # noqa: E402
import mtalab  # noqa: E402


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
