#!/usr/bin/env python3
"""Benchmark (not a test): messages accepted per second, danerelay beside
Postfix's smtpd, on this machine, in the same run, with the same client.

Both servers fsync every accepted message before answering 250. The client
for both is Postfix's smtp-source. Postfix puts what it accepts on hold (so
its queue manager does no delivery work), and danerelay runs with
"delivery": {"enabled": false}: this measures acceptance alone.

Then memory: N_QUEUED messages are queued into one danerelayd and its
resident set size is printed.

Usage: tests/bench/accept_bench.py [--messages N] [--sessions C] [--size BYTES]
                                   [--queued N_QUEUED]
Prints one line per measurement; loopback only; every server stopped by PID.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import postfixlab  # noqa: E402
import relayharness as h  # noqa: E402


def smtp_source(port, messages, sessions, size):
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", "bench@inside.test", "-t", "sink@example.org", f"127.0.0.1:{port}"]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    elapsed = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {out.stderr[-2000:]}")
    return elapsed


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def no_delivery(relay):
    with open(relay.config) as f:
        cfg = json.load(f)
    cfg["delivery"] = {"enabled": False}
    with open(relay.config, "w") as f:
        json.dump(cfg, f)


def bench_danerelay(args):
    relay = h.Relay(relay_networks=["127.0.0.0/8"],
                    limits={"max_sessions": 1000, "max_sessions_per_client": 1000})
    no_delivery(relay)
    try:
        relay.start()
        smtp_source(relay.port, min(200, args.messages), args.sessions, args.size)  # warm-up
        elapsed = smtp_source(relay.port, args.messages, args.sessions, args.size)
        queued = len(os.listdir(os.path.join(relay.spool, "msg")))
        return args.messages / elapsed, queued
    finally:
        relay.cleanup()


def bench_postfix(args):
    port = h.free_port()
    pf = postfixlab.PostfixInstance(
        f"127.0.0.1:{port}", name="bench",
        extra_main={"smtpd_client_restrictions": "static:hold",
                    "default_process_limit": str(max(100, args.sessions * 2))})
    try:
        pf.start()
        smtp_source(port, min(200, args.messages), args.sessions, args.size)
        elapsed = smtp_source(port, args.messages, args.sessions, args.size)
        time.sleep(1)
        held = pf.count_queue_files("hold")
        return args.messages / elapsed, held
    finally:
        pf.cleanup()


def bench_memory(args):
    relay = h.Relay(relay_networks=["127.0.0.0/8"],
                    limits={"max_sessions": 1000, "max_sessions_per_client": 1000})
    no_delivery(relay)
    try:
        relay.start()
        pid = relay.proc.pid
        start_rss = rss_kib(pid)
        done = 0
        step = max(1, args.queued // 4)
        points = []
        while done < args.queued:
            n = min(step, args.queued - done)
            smtp_source(relay.port, n, args.sessions, args.size)
            done += n
            points.append((done, rss_kib(pid)))
        # and after a restart, with the whole queue recovered
        relay.stop()
        relay.start()
        recovered_rss = rss_kib(relay.proc.pid)
        return start_rss, points, recovered_rss
    finally:
        relay.cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--queued", type=int, default=100000)
    args = p.parse_args()

    print(f"workload: {args.messages} messages of {args.size} bytes, {args.sessions} concurrent "
          f"sessions, one message per connection, smtp-source as client; fsync on", flush=True)
    dr_rate, dr_count = bench_danerelay(args)
    print(f"danerelay accepted: {dr_rate:8.0f} msg/s  ({dr_count} in spool)", flush=True)
    pf_rate, pf_count = bench_postfix(args)
    print(f"postfix   accepted: {pf_rate:8.0f} msg/s  ({pf_count} in hold queue)", flush=True)
    print(f"ratio danerelay/postfix: {dr_rate / pf_rate:.2f}", flush=True)
    if args.queued > 0:
        start, points, recovered = bench_memory(args)
        print(f"memory: RSS at start {start / 1024:.1f} MiB", flush=True)
        for n, rss in points:
            print(f"memory: RSS with {n:7d} messages queued {rss / 1024:.1f} MiB", flush=True)
        print(f"memory: RSS after restart, {points[-1][0]} recovered {recovered / 1024:.1f} MiB",
              flush=True)


if __name__ == "__main__":
    main()
