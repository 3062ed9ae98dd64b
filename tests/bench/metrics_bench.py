#!/usr/bin/env python3
"""Benchmark (not a test): what the metrics endpoint costs in delivery
throughput (issue 16: less than 2%).

The delivery benchmark's workload (tests/bench/delivery_bench.py: N messages
to the DANE-secure secure.test, delivered to the benchmark sink, local DNSSEC
validation) runs twice in the same lab: without metrics.listen, then with it
and a scraper fetching /metrics every second, as Prometheus would (more
often than its usual 15 s). Each run is one sample: on a shared machine,
repeat it before reading anything into a difference of a few percent.

Usage: tests/bench/metrics_bench.py [--messages N] [--sessions C] [--size BYTES]
Run it under the e2e lock (flock /tmp/danerelay-e2e.lock). Loopback only;
every server is stopped by its PID.
"""
import argparse
import os
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lab"))
import delivery_bench as db  # noqa: E402
import benchlib as b  # noqa: E402
import dnslab  # noqa: E402


def scraper(port, stop, counts):
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                r.read()
            counts["scrapes"] += 1
        except OSError:
            counts["errors"] += 1


def run(args, sink, lab, with_metrics):
    relay = db.DaneRelay(args, lab, "local", metrics=with_metrics)
    stop, counts = threading.Event(), {"scrapes": 0, "errors": 0}
    t = (threading.Thread(target=scraper, args=(relay.metrics_port, stop, counts))
         if with_metrics else None)
    try:
        relay.start()
        if t:
            t.start()
        return db.saturate(relay, sink, args, 1), counts
    finally:
        stop.set()
        if t:
            t.join(timeout=10)
        relay.cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--concurrency", type=int, default=20, help="outbound connections at once")
    args = p.parse_args()
    args.perf, args.timeout = None, 600
    lab = dnslab.DnsLab().build().start()
    sink = b.Sink([dnslab.HOSTS["mx1.secure.test"], dnslab.HOSTS["mx2.secure.test"]],
                  lab.certs["mx1.secure.test"], "mx1.secure.test", receipts=False)
    try:
        sink.start()
        rates = {}
        for with_metrics in (False, True):
            r, counts = run(args, sink, lab, with_metrics)
            rates[with_metrics] = r["rate"]
            extra = (f" ({counts['scrapes']} scrapes, {counts['errors']} failed)"
                     if with_metrics else "")
            print(f"danerelay, metrics {'on ' if with_metrics else 'off'}: {r['got']} delivered "
                  f"in {r['elapsed']:.1f} s = {r['rate']:7.1f} msg/s, relay CPU "
                  f"{r['cpu_ms']:.2f} ms/msg{extra}", flush=True)
        diff = (rates[False] - rates[True]) / rates[False] * 100
        print(f"throughput with metrics: {diff:+.1f}% slower than without "
              "(negative: faster; one sample each)", flush=True)
    finally:
        sink.cleanup()
        lab.cleanup()


if __name__ == "__main__":
    main()
