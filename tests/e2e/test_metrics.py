"""End-to-end: the Prometheus endpoint (issue 16).

A relay with metrics.listen on loopback answers GET /metrics with the text
exposition format: every family has HELP and TYPE before its samples, every
sample line parses, the process_ metrics and danerelay_build_info are there
with real values, the queue gauge follows the queue; other paths are 404;
`promtool check metrics` (Debian's prometheus package, installed by
scripts/install-deps.sh: required, not skipped) passes on the scrape. A
metrics.listen that is an SMTP listener's address is a configuration error
naming the key.

In the DNSSEC lab (LabMetricsTest), the counters move as the relay delivers
(DANE to secure.test, named in a policy file; plaintext to insecure.test),
defers (bogus.test: dnssec-invalid) and bounces (nullmx.test, with its DSN
delivered), refuses a relay attempt, and the queue census sees the deferred
recipient. Loopback only; every daemon is stopped by its PID; every request
and wait has a timeout."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lab"))
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


def promtool_check(test, text):
    promtool = shutil.which("promtool")
    test.assertTrue(promtool, "promtool missing: run scripts/install-deps.sh (Debian's prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
    test.assertEqual(check.returncode, 0, check.stdout + check.stderr)


def value(fams, name, **labels):
    """The sample's value (summed over the samples whose labels include
    these), 0 if none."""
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    total = 0.0
    for sname, text, v in fams.get(base, fams.get(name, {"samples": []}))["samples"]:
        if sname == name and all(f'{k}="{val}"' in text for k, val in labels.items()):
            total += v
    return total


def wait_until(pred, timeout=30, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    return pred()


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

        promtool_check(self, self.scrape()[2])

    def test_draining_shows_as_not_accepting(self):
        self.relay.start()

        def accepting():
            return parse(self.scrape()[2])["danerelay_smtp_accepting"]["samples"][0][2]
        self.assertEqual(accepting(), 1)
        for verb, want in (("drain", 0), ("resume", 1)):
            r = subprocess.run([h.DANECTL, "--config", self.relay.config, verb],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(accepting(), want, verb)

    def test_inbound_refusals_and_sessions_are_counted_by_kind(self):
        self.relay.start()
        fams = parse(self.scrape()[2])
        self.assertEqual(value(fams, "danerelay_inbound_refused_total", reason="smuggling"), 0)
        c = self.relay.connect()
        self.assertEqual(c.reply()[0], 220)
        self.assertEqual(c.command("EHLO client.test")[0], 250)
        self.assertEqual(c.command("MAIL FROM:<a@example.org> SIZE=999999999999")[0], 552)
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(c.command("RCPT TO:<b@example.org>")[0], 250)
        self.assertEqual(c.command("DATA")[0], 354)
        c.send(b"Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@outside.test>\r\n.\r\n")
        self.assertEqual(c.reply()[0], 550)
        c.command("QUIT")
        c.close()
        c = self.relay.connect(source="127.0.0.2")  # outside relay_networks
        c.reply()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@example.org>")
        self.assertEqual(c.command("RCPT TO:<b@example.org>")[0], 554)
        c.command("QUIT")
        c.close()

        def counted():
            f = parse(self.scrape()[2])
            return f if value(f, "danerelay_inbound_sessions_total", tls="none") >= 3 else None
        fams = wait_until(counted, timeout=10)
        self.assertTrue(fams)
        self.assertEqual(value(fams, "danerelay_inbound_refused_total", reason="smuggling"), 1)
        self.assertEqual(value(fams, "danerelay_inbound_refused_total", reason="too_big"), 1)
        self.assertEqual(value(fams, "danerelay_inbound_refused_total", reason="relay_denied"), 1)
        self.assertEqual(value(fams, "danerelay_inbound_refused_total", reason="bad_data"), 0)
        self.assertEqual(value(fams, "danerelay_inbound_messages_accepted_total"), 0)

    def test_dashboard_and_alerts_query_only_exported_metrics(self):
        """Every metric name etc/grafana/danerelay.json and
        etc/prometheus/alerts.yml query is one this relay exports (its
        families are all registered at start, series or not)."""
        self.relay.start()
        exported = set(parse(self.scrape()[2]))
        src = os.environ.get("DANERELAY_SOURCE",
                             os.path.join(os.path.dirname(__file__), "..", ".."))
        with open(os.path.join(src, "etc", "grafana", "danerelay.json")) as f:
            dash = json.load(f)  # valid JSON, or this fails
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        exprs.append(dash["templating"]["list"][1]["definition"])
        with open(os.path.join(src, "etc", "prometheus", "alerts.yml")) as f:
            exprs.append(f.read())
        names = set()
        for e in exprs:
            names.update(re.findall(r"\b((?:danerelay|process)_[a-z0-9_]+)", e))
        self.assertGreater(len(names), 20, names)
        for n in sorted(names):
            base = re.sub(r"_(bucket|sum|count)$", "", n)
            self.assertTrue(n in exported or base in exported, f"{n}: not exported")
        # and the dashboard shows every family the relay has, but for build info
        shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
        missing = {n for n in exported - shown
                   if n not in ("danerelay_build_info", "process_cpu_seconds_total",
                                "process_start_time_seconds", "process_max_fds",
                                "danerelay_queue_census_timestamp_seconds",
                                "danerelay_queue_census_truncated",
                                "danerelay_queue_deliveries_running")}
        self.assertEqual(missing, set())

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


SENDER = "sender@insecure.test"  # its DSN comes back through mx.insecure.test


class LabMetricsTest(unittest.TestCase):
    """Counters moving as the lab delivers, defers and bounces."""

    @classmethod
    def setUpClass(cls):
        import dnslab
        import mtalab
        cls.lab = dnslab.DnsLab().build().start()
        try:
            cls.mtas = mtalab.ReceivingMtas(cls.lab, {"mx1.secure.test": True,
                                                      "mx2.secure.test": True,
                                                      "mx.insecure.test": False})
            cls.mtas.start()
        except Exception:
            cls.lab.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.mtas.cleanup()
        cls.lab.cleanup()

    def setUp(self):
        self.relay = h.Relay(dns=self.lab.relay_dns("local"))
        self.addCleanup(self.relay.cleanup)
        self.port = h.free_port()
        policy_dir = os.path.join(self.relay.dir, "policy")
        os.makedirs(policy_dir)
        with open(os.path.join(policy_dir, "site.json"), "w") as f:
            json.dump({"policies": {"secure.test": {"level": "dane"}}}, f)
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["metrics"] = {"listen": f"127.0.0.1:{self.port}"}
        cfg["policy_dir"] = policy_dir
        cfg["delivery"] = {"retry_initial": 1, "retry_max": 2, "connect_timeout": 5,
                           "command_timeout": 15, "data_timeout": 15}
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)
        self.relay.start()

    def scrape(self):
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return parse(r.read().decode())

    def test_counters_follow_delivered_deferred_bounced(self):
        before = self.scrape()
        self.assertEqual(value(before, "danerelay_delivery_attempts_total"), 0)
        self.assertEqual(value(before, "danerelay_inbound_messages_accepted_total"), 0)
        out = self.relay.swaks("--from", SENDER, "--to", "alice@secure.test")
        self.assertTrue(h.queued_id(out), out)
        out = self.relay.swaks("--from", SENDER,
                               "--to", "ned@insecure.test,ola@bogus.test,pat@nullmx.test")
        self.assertTrue(h.queued_id(out), out)
        # Outside relay_networks (127.0.0.1/32): refused at RCPT.
        out = self.relay.swaks("--from", SENDER, "--to", "x@secure.test",
                               "--local-interface", "127.0.0.2")
        self.assertIn("Relay access denied", out)

        def moved():
            f = self.scrape()
            return f if (value(f, "danerelay_delivery_attempts_total", outcome="delivered") >= 3
                         and value(f, "danerelay_delivery_attempts_total", outcome="deferred") >= 1
                         and value(f, "danerelay_delivery_attempts_total", outcome="bounced") >= 1
                         and value(f, "danerelay_queue_recipients", state="deferred") >= 1) \
                else None
        fams = wait_until(moved, timeout=45, step=1)
        self.assertTrue(fams, self.relay.read_log()[-3000:])
        v = lambda name, **kw: value(fams, name, **kw)  # noqa: E731
        # alice over DANE; ned in plaintext (mx.insecure.test offers no
        # STARTTLS); the DSN for pat to sender@insecure.test.
        self.assertGreaterEqual(v("danerelay_delivery_attempts_total", outcome="delivered",
                                  tls="dane"), 1)
        self.assertGreaterEqual(v("danerelay_delivery_attempts_total", outcome="delivered",
                                  tls="none"), 2)
        self.assertGreaterEqual(v("danerelay_destination_attempts_total",
                                  destination="secure.test", outcome="delivered"), 1)
        self.assertGreaterEqual(v("danerelay_destination_attempts_total", destination="other",
                                  outcome="bounced"), 1)
        self.assertGreaterEqual(v("danerelay_tls_results_total", destination="secure.test",
                                  result="success"), 1)
        self.assertGreaterEqual(v("danerelay_tls_results_total", destination="other",
                                  result="dnssec-invalid"), 1)
        self.assertGreaterEqual(v("danerelay_delivery_latency_seconds_count"), 3)
        self.assertGreaterEqual(v("danerelay_outbound_sessions_total", connection="new"), 1)
        self.assertGreaterEqual(v("danerelay_outbound_tls_handshakes_total", result="ok"), 1)
        # Inbound: two accepted and the DSN (ours, through the committer only).
        self.assertEqual(v("danerelay_inbound_messages_accepted_total"), 2)
        self.assertGreater(v("danerelay_inbound_accepted_bytes_total"), 200)
        self.assertGreaterEqual(v("danerelay_inbound_refused_total", reason="relay_denied"), 1)
        self.assertGreaterEqual(v("danerelay_inbound_sessions_total", tls="none"), 3)
        self.assertGreaterEqual(v("danerelay_spool_commit_batch_messages_count"), 3)  # + the DSN
        self.assertGreaterEqual(v("danerelay_spool_commit_duration_seconds_count"), 3)
        self.assertEqual(v("danerelay_spool_commit_errors_total"), 0)
        # DNS: validated locally; bogus.test is bogus for a reason of its own.
        self.assertGreater(v("danerelay_dns_queries_total"), 0)
        self.assertGreater(v("danerelay_dns_answers_total", dnssec="secure"), 0)
        self.assertGreaterEqual(v("danerelay_dns_bogus_total"), 1)
        self.assertEqual(v("danerelay_dns_bogus_total", kind="resolver"), 0)
        self.assertGreater(v("danerelay_dns_validation_seconds_count"), 0)
        self.assertGreater(v("danerelay_dns_cache_entries"), 0)
        self.assertEqual(v("danerelay_dnssec_probe_ok"), 1)
        self.assertGreater(v("danerelay_dnssec_probe_last_success_timestamp_seconds"),
                           time.time() - 300)
        # Queue: ola waits; her message is the only one left.
        self.assertEqual(v("danerelay_queue_messages"), 1)
        self.assertEqual(v("danerelay_queue_messages_by_state", state="deferred"), 1)
        self.assertGreater(v("danerelay_spool_bytes"), 0)
        self.assertGreater(v("danerelay_queue_census_timestamp_seconds"), 0)
        self.assertGreaterEqual(v("danerelay_queue_oldest_message_age_seconds"), 0)
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            promtool_check(self, r.read().decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
