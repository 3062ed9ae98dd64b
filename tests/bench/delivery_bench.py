#!/usr/bin/env python3
"""Benchmark (not a test): end-to-end DANE delivery, measuring the relay, not
the receiver.

The MX hosts of secure.test (TLSA 3 1 1 on mx1) are served by the benchmark
sink (tests/bench/smtp_sink.cc, built with the tests: STARTTLS with the lab's
mx1 certificate, PIPELINING, bodies discarded), listening on the lab's MX
addresses (127.0.1.1:25, 127.0.1.2:25); its own capacity (sink_drive) is
printed first. Then, in the same run and through the same lab DNS, each relay
(danerelay validating DNSSEC itself behind the non-validating lab resolver;
with --resolver-mode also trusting the validating resolver's AD bit; Postfix
as a DANE relay, smtp_tls_security_level = dane, behind the validating
resolver) gets:

  saturation: N messages submitted as fast as it takes them (sink_drive as
    the client: C sessions, MAIL/RCPT/DATA pipelined); printed: delivered
    msg/s from the first submission to the last receipt at the sink, the
    relay's CPU per delivered message (utime+stime of every relay process
    from /proc, and cutime/cstime: Postfix's exited children through its
    master), peak RSS (VmHWM, summed over the relay's processes), and the
    sink's own CPU per message beside;
  latency: messages paced at half that relay's own saturation rate, each
    with its Message-ID; p50/p99 from the 250 at submission to its receipt
    at the sink.

With --destinations 1,100,10000 the saturation runs send to that many
distinct DANE-secure domains (dN.dest.test, MX and TLSA through a signed
wildcard, each domain validated on its own) and print, beside msg/s, CPU and
RSS, danerelay's DNS queries per message (from its metrics endpoint).

Usage: tests/bench/delivery_bench.py [--messages N] [--sessions C] [--size BYTES]
         [--concurrency K] [--latency-messages M] [--resolver-mode] [--no-postfix]
         [--destinations LIST] [--sink-only] [--perf FILE] [--tmpdir DIR]
Runs under flock /tmp/danerelay-e2e.lock (README). Loopback only; every server
is stopped by its PID.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lab"))
import benchlib as b  # noqa: E402
import dnslab  # noqa: E402
import postfixlab  # noqa: E402
import relayharness as h  # noqa: E402


class DaneRelay:
    def __init__(self, args, lab, validation, metrics=True):
        """metrics: with metrics.listen (DNS query counts); False for none."""
        self.name = f"danerelay ({validation} validation)"
        self.relay = h.Relay(relay_networks=["127.0.0.0/8"],
                             limits={"max_sessions": 1000, "max_sessions_per_client": 1000},
                             dns=lab.relay_dns(validation))
        self.metrics_port = h.free_port()
        with open(self.relay.config) as f:
            cfg = json.load(f)
        cfg["delivery"] = {"max_concurrent": args.concurrency}
        if metrics:
            cfg["metrics"] = {"listen": f"127.0.0.1:{self.metrics_port}"}
        else:
            self.metrics_port = None
        with open(self.relay.config, "w") as f:
            json.dump(cfg, f)
        self.port = self.relay.port

    def start(self):
        self.relay.start()
        time.sleep(1)  # the DNSSEC probe
        return self

    def pid(self):
        return self.relay.proc.pid

    def verified(self):
        return self.relay.read_log().count('dane="matched')

    def metrics(self):
        """{metric name without labels: summed value} from /metrics."""
        if self.metrics_port is None:
            return {}
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(3))
        return out

    def cleanup(self):
        self.relay.cleanup()


class PostfixRelay:
    def __init__(self, args):
        self.name = "postfix (validating resolver)"
        self.port = h.free_port()
        self.pf = postfixlab.PostfixInstance(
            f"127.0.0.1:{self.port}", name="danerelay-bench", resolver=dnslab.RESOLVER,
            extra_main={"smtp_tls_security_level": "dane",
                        "smtp_dns_support_level": "dnssec",
                        "smtp_host_lookup": "dns",
                        "smtp_tls_loglevel": "1",
                        "default_destination_concurrency_limit": str(args.concurrency),
                        "default_process_limit": str(max(100, args.concurrency * 2)),
                        "relayhost": ""})

    def start(self):
        self.pf.start()
        return self

    def pid(self):
        return self.pf.master_pid

    def verified(self):
        return self.pf.read_log().count("Verified TLS connection established")

    def metrics(self):
        return {}

    def cleanup(self):
        self.pf.cleanup()


def saturate(relay, sink, args, domains):
    """N messages as fast as the relay takes them; the figures of one run.
    With --perf FILE, danerelay's saturation runs are recorded by perf."""
    perf = None
    if args.perf and isinstance(relay, DaneRelay):
        out = f"{args.perf}.{domains}" if domains > 1 else args.perf
        graph = ["--call-graph", "dwarf,16384", "-F", "199"] if args.perf_dwarf else ["-g"]
        perf = subprocess.Popen(["perf", "record", "-F", "499", *graph, "-o", out, "-p",
                                 str(relay.pid())], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1)
    try:
        return _saturate(relay, sink, args, domains)
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)


def _saturate(relay, sink, args, domains):
    s0 = sink.stats()
    base = s0["messages"]
    m0 = relay.metrics()
    cpu0, scpu0 = b.cpu_seconds(relay.pid()), b.cpu_seconds(sink.proc.pid)
    rss = b.PeakRss(relay.pid())
    n = max(args.messages, domains)  # every destination gets a message
    t0 = time.time()
    cmd = [os.path.join(b.build_dir(), "tests", "sink_drive"), "--connect",
           f"127.0.0.1:{relay.port}", "--messages", str(n), "--clients",
           str(args.sessions), "--per-session", "1", "--size", str(args.size)]
    if domains > 1:
        cmd += ["--domains", str(domains)]
    sub = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    st = sink.wait_for(base + n, timeout=args.timeout)
    got = st["messages"] - base
    elapsed = max(1e-6, st["last_receipt"] - t0)
    cpu = b.cpu_seconds(relay.pid()) - cpu0
    scpu = b.cpu_seconds(sink.proc.pid) - scpu0
    m1 = relay.metrics()
    out = {"got": got, "sent": n, "elapsed": elapsed, "rate": got / elapsed,
           "cpu_ms": 1000 * cpu / max(1, got), "sink_cpu_ms": 1000 * scpu / max(1, got),
           "rss": rss.stop(),
           "tls_sessions": st.get("tls_sessions", 0) - s0.get("tls_sessions", 0),
           "submit": sub.stdout.strip() or sub.stderr.strip()}
    if m1:
        q = "danerelay_dns_queries_total"
        out["dns_per_msg"] = (m1.get(q, 0) - m0.get(q, 0)) / max(1, got)
        v = "danerelay_dns_validation_seconds_count"
        out["validations_per_msg"] = (m1.get(v, 0) - m0.get(v, 0)) / max(1, got)
    return out


def latency(relay, sink, args, rate):
    n = args.latency_messages or max(200, min(args.messages, int(rate * 5)))
    sent, failed = b.paced_submit(relay.port, n, rate, ["sink@secure.test"], size=args.size,
                                  tag=f"lat{relay.port}")
    deadline = time.monotonic() + args.timeout
    rec = sink.receipts()
    while len([m for m in sent if m in rec]) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
        rec = sink.receipts()
    lat = [1000 * (rec[m] - t) for m, t in sent.items() if m in rec]
    times = sorted(sent.values())
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"n": n, "rate": rate, "achieved": achieved, "sent": len(sent), "failed": failed, "received": len(lat),
            "p50": b.percentile(lat, 50), "p99": b.percentile(lat, 99)}


def sink_capacity(sink, args):
    a = sink.addresses[0]
    for msgs, per, tls in ((20000, 100, False), (20000, 100, True), (3000, 1, True)):
        print("sink capacity:", b.drive(a, 25, msgs, 8, per, tls, args.size), flush=True)


def report(relay, r):
    missing = f" (of {r['sent']}: the rest deferred)" if r["got"] < r["sent"] else ""
    line = (f"{relay.name}: delivered {r['got']}{missing} in {r['elapsed']:.2f} s = {r['rate']:6.0f} msg/s; "
            f"relay CPU {r['cpu_ms']:.2f} ms/msg; peak RSS {r['rss'][0]:.1f} MiB "
            f"(largest VmHWM; summed PSS {r['rss'][1]:.1f} MiB over up to {r['rss'][2]} "
            f"processes); sink CPU {r['sink_cpu_ms']:.2f} ms/msg, "
            f"{r['tls_sessions']} TLS sessions at the sink")
    if "dns_per_msg" in r:
        line += (f"; DNS queries {r['dns_per_msg']:.3f}/msg, validations "
                 f"{r['validations_per_msg']:.3f}/msg")
    print(line, flush=True)


def run_relay(make, sink, args, domains_list):
    rates = {}
    for domains in domains_list:
        relay = make().start()
        try:
            r = saturate(relay, sink, args, domains)
            if len(domains_list) > 1:
                print(f"  destinations {domains}: ", end="")
            report(relay, r)
            print(f"  ({relay.verified()} DANE-verified sessions; submitted: {r['submit']})",
                  flush=True)
            rates[domains] = r["rate"]
            if domains == 1 and not args.no_latency:
                lat = latency(relay, sink, args, max(1.0, r["rate"] / 2))
                print(f"  paced at {lat['rate']:.0f} msg/s (half its saturation; "
                      f"{lat['achieved']:.0f} achieved), "
                      f"{lat['received']}/{lat['n']} received ({lat['failed']} failed): "
                      f"250-to-receipt p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms",
                      flush=True)
        finally:
            relay.cleanup()
    return rates


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--concurrency", type=int, default=20, help="outbound connections at once")
    p.add_argument("--latency-messages", type=int, default=0,
                   help="paced messages (default: 5 s worth, at least 200)")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--resolver-mode", action="store_true",
                   help="also danerelay trusting the validating resolver's AD bit")
    p.add_argument("--no-postfix", action="store_true")
    p.add_argument("--sink-only", action="store_true", help="the sink's capacity, nothing else")
    p.add_argument("--destinations", default="1",
                   help="comma-separated counts of distinct recipient domains, e.g. 1,100,10000")
    p.add_argument("--perf", metavar="FILE",
                   help="perf record -g danerelay's saturation runs into FILE (FILE.N for N "
                        "destinations); then: perf report -i FILE --no-children")
    p.add_argument("--perf-dwarf", action="store_true",
                   help="with --perf: DWARF call graphs (through libraries built without frame "
                        "pointers), sampled at 199 Hz")
    p.add_argument("--tmpdir", metavar="DIR",
                   help="make the relays' spools (and every other directory of the run) under "
                        "DIR, e.g. a mount of the file system to measure on (default: $TMPDIR "
                        "or /tmp)")
    p.add_argument("--timeout", type=int, default=600, help="seconds to wait for deliveries")
    args = p.parse_args()
    domains_list = [int(x) for x in args.destinations.split(",")]
    for tool in ("smtp_sink", "sink_drive"):
        if not os.access(os.path.join(b.build_dir(), "tests", tool), os.X_OK):
            sys.exit(f"{tool} is not built: cmake --build build --target smtp_sink sink_drive "
                     "(or set DANERELAY_BUILD)")
    if args.tmpdir:
        os.chmod(args.tmpdir, 0o755)  # the relays' users reach their spools in here
        tempfile.tempdir = args.tmpdir
    lab = dnslab.DnsLab(dest_wildcard=max(domains_list) > 1).build().start()
    mx = ["mx1.secure.test", "mx2.secure.test"]
    sink = b.Sink([dnslab.HOSTS[n] for n in mx], lab.certs["mx1.secure.test"],
                  "mx1.secure.test")
    try:
        sink.start()
        print(f"workload: {args.messages} messages of {args.size} bytes, DANE (TLSA 3 1 1), "
              f"{args.sessions} submitting sessions, {args.concurrency} outbound connections "
              f"at most; receiver: smtp_sink on {', '.join(sink.addresses)}:25", flush=True)
        sink_capacity(sink, args)
        if args.sink_only:
            return
        relays = [lambda: DaneRelay(args, lab, "local")]
        if args.resolver_mode:
            relays.append(lambda: DaneRelay(args, lab, "resolver"))
        if not args.no_postfix:
            relays.append(lambda: PostfixRelay(args))
        rates = [run_relay(make, sink, args, domains_list) for make in relays]
        if not args.no_postfix:
            for d in domains_list:
                print(f"ratio danerelay (local validation)/postfix, {d} destination(s): "
                      f"{rates[0][d] / rates[-1][d]:.2f}", flush=True)
    finally:
        sink.cleanup()
        lab.cleanup()


if __name__ == "__main__":
    main()
