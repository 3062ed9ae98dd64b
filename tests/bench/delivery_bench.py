#!/usr/bin/env python3
"""Benchmark (not a test): end-to-end delivery throughput in the DNSSEC lab.

N messages are submitted to a DANE-secure domain (secure.test, TLSA 3 1 1 on
its MX) whose MX is a lab Postfix; the clock runs from the first submission
until the last message is stored at the MX. The same run measures Postfix
configured as a DANE relay (smtp_tls_security_level = dane, same lab, same
resolver, same MX) beside danerelay, which runs twice: with its own DNSSEC
validation behind the non-validating lab resolver (the default), and trusting
the validating resolver's AD bit, as Postfix does.

Usage: tests/bench/delivery_bench.py [--messages N] [--sessions C] [--size BYTES]
Loopback only; every server is stopped by its PID.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lab"))
import dnslab  # noqa: E402
import mtalab  # noqa: E402
import postfixlab  # noqa: E402
import relayharness as h  # noqa: E402


def held(mtas):
    n = 0
    for _, _, files in os.walk(os.path.join(mtas.pf.queue, "hold")):
        n += len(files)
    return n


def run_load(port, n, sessions, size, mtas, base):
    t0 = time.monotonic()
    subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size),
                    "-f", "bench@inside.test", "-t", "sink@secure.test", f"127.0.0.1:{port}"],
                   check=True, capture_output=True, timeout=3600)
    deadline = time.monotonic() + 600
    while held(mtas) < base + n and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    return held(mtas) - base, elapsed


def bench_danerelay(args, mtas, lab, validation):
    relay = h.Relay(relay_networks=["127.0.0.0/8"],
                    limits={"max_sessions": 1000, "max_sessions_per_client": 1000},
                    dns=lab.relay_dns(validation))
    with open(relay.config) as f:
        cfg = json.load(f)
    cfg["delivery"] = {"max_concurrent": args.concurrency}
    with open(relay.config, "w") as f:
        json.dump(cfg, f)
    try:
        relay.start()
        time.sleep(1)  # the DNSSEC probe
        base = held(mtas)
        got, elapsed = run_load(relay.port, args.messages, args.sessions, args.size, mtas, base)
        log = relay.read_log()
        return got, elapsed, log.count('dane="matched')
    finally:
        relay.cleanup()


def bench_postfix(args, mtas):
    port = h.free_port()
    pf = postfixlab.PostfixInstance(
        f"127.0.0.1:{port}", name="danerelay-bench",
        resolver=dnslab.RESOLVER,
        extra_main={"smtp_tls_security_level": "dane",
                    "smtp_dns_support_level": "dnssec",
                    "smtp_host_lookup": "dns",
                    "smtp_tls_loglevel": "1",
                    "default_destination_concurrency_limit": str(args.concurrency),
                    "default_process_limit": str(max(100, args.concurrency * 2)),
                    "relayhost": ""})
    try:
        pf.start()
        base = held(mtas)
        got, elapsed = run_load(port, args.messages, args.sessions, args.size, mtas, base)
        log = pf.read_log()
        return got, elapsed, log.count("Verified TLS connection established")
    finally:
        pf.cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--concurrency", type=int, default=20, help="outbound connections at once")
    args = p.parse_args()
    lab = dnslab.DnsLab().build().start()
    mtas = mtalab.ReceivingMtas(lab, {"mx1.secure.test": True, "mx2.secure.test": True})
    try:
        mtas.start()
        print(f"workload: {args.messages} messages of {args.size} bytes to secure.test "
              f"(DANE, TLSA 3 1 1), {args.sessions} submitting sessions, "
              f"{args.concurrency} outbound connections at most", flush=True)
        rates = {}
        for validation in ("local", "resolver"):
            got, el, dane = bench_danerelay(args, mtas, lab, validation)
            rates[validation] = got / el
            print(f"danerelay ({validation:8} validation) delivered: {got} in {el:.1f} s = "
                  f"{got / el:7.0f} msg/s ({dane} DANE-verified sessions)", flush=True)
        dr = rates["local"]
        got, el, dane = bench_postfix(args, mtas)
        pfr = got / el
        print(f"postfix (validating resolver) delivered: {got} in {el:.1f} s = {pfr:7.0f} msg/s "
              f"({dane} DANE-verified sessions)", flush=True)
        print(f"ratio danerelay (local validation)/postfix: {dr / pfr:.2f}", flush=True)
    finally:
        mtas.cleanup()
        lab.cleanup()


if __name__ == "__main__":
    main()
