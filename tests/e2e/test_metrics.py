"""End-to-end: the Prometheus endpoint (issue 16, first slice).

A relay with metrics.listen on loopback answers GET /metrics with the text
exposition format: every family has HELP and TYPE before its samples, every
sample line parses, the process_ metrics and danerelay_build_info are there
with real values, the queue gauge follows the queue; other paths are 404;
with promtool installed (Debian's prometheus package) `promtool check
metrics` passes on the scrape. A metrics.listen that is an SMTP listener's
address is a configuration error naming the key. Loopback only; the daemon
is stopped by its PID; every request has a timeout."""
import json
import os
import re
import shutil
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import relayharness as h  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                    r'(-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')


def parse(text):
    """{family: {"help":..., "type":..., "samples": [(name, labels, value)]}};
    raises AssertionError on a line out of format."""
    families, current = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            current = families.setdefault(name, {"samples": []})
            current["help"] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in families and "type" not in families[name], line
            families[name]["type"] = kind
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample line: " + line
            name = m.group(1)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            fam = families.get(name) or families.get(base)
            assert fam is not None and "type" in fam, "sample before HELP/TYPE: " + line
            fam["samples"].append((name, m.group(2) or "", float(m.group(5))))
    return families


class MetricsTest(unittest.TestCase):
    def setUp(self):
        self.relay = h.Relay()
        self.port = h.free_port()
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["metrics"] = {"listen": f"127.0.0.1:{self.port}"}
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)

    def tearDown(self):
        self.relay.cleanup()

    def scrape(self, path="/metrics"):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()

    def test_scrape_is_well_formed_and_real(self):
        self.relay.start()
        status, ctype, text = self.scrape()
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        fams = parse(text)
        for name in ("process_open_fds", "process_resident_memory_bytes",
                     "process_cpu_seconds_total", "process_start_time_seconds",
                     "danerelay_build_info", "danerelay_queue_messages",
                     "danerelay_dnssec_probe_ok"):
            self.assertIn(name, fams, text)
        self.assertGreater(fams["process_open_fds"]["samples"][0][2], 3)
        self.assertGreater(fams["process_resident_memory_bytes"]["samples"][0][2], 1e6)
        info = fams["danerelay_build_info"]["samples"][0][1]
        self.assertRegex(info, r'version="\d+\.\d+\.\d+"')
        self.assertIn('gnutls="3.', info)
        self.assertEqual(fams["danerelay_queue_messages"]["samples"][0][2], 0)

        # The queue gauge follows the queue (no resolver here: it stays queued).
        out = self.relay.swaks("--to", "someone@example.org", "--from", "a@example.org")
        self.assertTrue(h.queued_id(out), out)
        fams = parse(self.scrape()[2])
        self.assertEqual(fams["danerelay_queue_messages"]["samples"][0][2], 1)

        promtool = shutil.which("promtool")
        if promtool:
            check = subprocess.run([promtool, "check", "metrics"], input=self.scrape()[2],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_other_paths_are_not_found(self):
        self.relay.start()
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.scrape("/")
        self.assertEqual(cm.exception.code, 404)

    def test_other_methods_and_oversized_requests_are_refused(self):
        self.relay.start()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics", data=b"x",
                                     method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertIn(cm.exception.code, (405, 413))
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics",
                                     headers={"X-Big": "a" * 20000})
        with self.assertRaises((urllib.error.HTTPError, ConnectionError)):
            urllib.request.urlopen(req, timeout=10)
        # and the endpoint still answers
        self.assertEqual(self.scrape()[0], 200)

    def test_metrics_on_an_smtp_listener_address_is_refused(self):
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["metrics"] = {"listen": f"127.0.0.1:{self.relay.port}"}
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)
        out = subprocess.run([h.DANERELAYD, "--config", self.relay.config, "--check-config"],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("metrics.listen", out.stderr)
        self.assertIn(self.relay.config, out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
