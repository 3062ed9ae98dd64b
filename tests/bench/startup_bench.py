#!/usr/bin/env python3
"""Benchmark (not a test): start-up with a large queue.

For each queue size, a spool is filled with that many 2 KiB messages to a
DANE-secure lab domain (build/tests/spool_fill: the spool's own commit, so
the files are the daemon's), then danerelayd starts on it in the DNSSEC lab
and the bench prints the time from exec to the SMTP greeting (listening), to
event=recovered (every queued message read, verified and indexed), and to
the first message stored at the lab's MX (the first delivery), with the
daemon's peak RSS. Recovery runs while the relay serves, so listening does
not wait for it.

Usage: tests/bench/startup_bench.py [--counts 10000,100000] [--size BYTES]
Loopback only; every server is stopped by its PID.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e", "lab"))
import benchlib as b  # noqa: E402
import dnslab  # noqa: E402
import mtalab  # noqa: E402
import relayharness as h  # noqa: E402

SPOOL_FILL = os.path.join(h.BUILD, "tests", "spool_fill")


def held(mtas):
    n = 0
    for _, _, files in os.walk(os.path.join(mtas.pf.queue, "hold")):
        n += len(files)
    return n


def greets(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            ok = s.recv(512).startswith(b"220")
            s.sendall(b"QUIT\r\n")
            return ok
    except OSError:
        return False


def one(n, size, lab, mtas):
    relay = h.Relay(relay_networks=["127.0.0.0/8"], dns=lab.relay_dns("local"))
    try:
        t = time.monotonic()
        subprocess.run([SPOOL_FILL, relay.spool, str(n), str(size), "sink@secure.test"],
                       check=True, capture_output=True, timeout=1800)
        fill = time.monotonic() - t
        h.give_to_run_user(relay.spool)
        base = held(mtas)
        log = open(relay.log, "ab")
        t0 = time.monotonic()
        proc = subprocess.Popen([h.DANERELAYD, "--config", relay.config], stdout=log,
                                stderr=subprocess.STDOUT)
        listen = recovered = first = None
        deadline = t0 + 1800
        try:
            while time.monotonic() < deadline and None in (listen, recovered, first):
                if proc.poll() is not None:
                    raise RuntimeError("danerelayd exited:\n" + relay.read_log()[-3000:])
                now = time.monotonic() - t0
                if listen is None and greets(relay.port):
                    listen = now
                if recovered is None and "event=recovered" in relay.read_log():
                    recovered = now
                if first is None and held(mtas) > base:
                    first = now
                time.sleep(0.01)
            rss = b.status_kib(proc.pid, "VmHWM")
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()

        def fmt(x):
            return "never" if x is None else f"{x:6.2f} s"
        print(f"{n:7d} queued ({fill:.0f} s to fill): listening {fmt(listen)}, "
              f"recovered {fmt(recovered)}, first delivery {fmt(first)}, "
              f"peak RSS {rss / 1024:.0f} MiB", flush=True)
    finally:
        relay.cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--counts", default="10000,100000")
    p.add_argument("--size", type=int, default=2048)
    args = p.parse_args()
    lab = dnslab.DnsLab().build().start()
    mtas = mtalab.ReceivingMtas(lab, {"mx1.secure.test": True, "mx2.secure.test": True})
    try:
        mtas.start()
        print(f"start-up with a queue of {args.size}-byte messages to secure.test (DANE), "
              "local DNSSEC validation", flush=True)
        for n in (int(c) for c in args.counts.split(",")):
            one(n, args.size, lab, mtas)
    finally:
        mtas.cleanup()
        lab.cleanup()


if __name__ == "__main__":
    main()
