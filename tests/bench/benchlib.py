"""Helpers of the delivery benchmarks (not tests): the benchmark sink
(smtp_sink, built with the tests), the CPU and peak memory of a process tree
from /proc, and a paced SMTP submitter that records the time of each 250.

Loopback only; every server is started and stopped by its PID; every wait
is bounded."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import relayharness as h  # tests/e2e, on the path of every bench that uses this

CLK_TCK = os.sysconf("SC_CLK_TCK")


def build_dir():
    return os.environ.get("DANERELAY_BUILD",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build"))


class Sink:
    """One smtp_sink: listens on ADDR:25 for each address given, with the
    lab certificate of its MX host name (so DANE 3 1 1 verifies)."""

    def __init__(self, addresses, cert, hostname, port=25, receipts=True):
        self.dir = tempfile.mkdtemp(prefix="danerelay-sink-")
        self.stats_path = os.path.join(self.dir, "stats.json")
        self.receipts_path = os.path.join(self.dir, "receipts.txt") if receipts else None
        self.cmd = [os.path.join(build_dir(), "tests", "smtp_sink"), "--cert", cert["chain"],
                    "--key", cert["key"], "--stats", self.stats_path, "--hostname", hostname]
        for a in addresses:
            self.cmd += ["--listen", f"{a}:{port}"]
        if receipts:
            self.cmd += ["--receipts", self.receipts_path]
        self.addresses, self.port = list(addresses), port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("smtp_sink exited: " + open(
                    os.path.join(self.dir, "stderr")).read())
            try:
                with socket.create_connection((self.addresses[0], self.port), timeout=2) as s:
                    s.recv(128)
                    s.sendall(b"QUIT\r\n")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp_sink did not listen")

    def stats(self):
        for _ in range(20):  # the file is replaced by rename: a read never sees half of it
            try:
                with open(self.stats_path) as f:
                    return json.load(f)
            except (OSError, ValueError):
                time.sleep(0.01)
        return {"messages": 0, "last_receipt": 0, "domains": {}}

    def wait_for(self, count, timeout=600, stall=20):
        """The stats once `count` messages have arrived, at the deadline, or
        when none has arrived for `stall` seconds (messages deferred by the
        relay would wait for its retry)."""
        deadline = time.monotonic() + timeout
        st = self.stats()
        seen, since = st["messages"], time.monotonic()
        while st["messages"] < count and time.monotonic() < deadline:
            time.sleep(0.05)
            st = self.stats()
            if st["messages"] != seen:
                seen, since = st["messages"], time.monotonic()
            elif time.monotonic() - since > stall:
                break
        return st

    def receipts(self):
        os.kill(self.proc.pid, signal.SIGUSR1)  # stats now; receipts are flushed every tick
        time.sleep(0.3)
        out = {}
        with open(self.receipts_path) as f:
            for line in f:
                mid, _, t = line.rstrip("\n").partition("\t")
                out[mid] = float(t)
        return out

    def stop(self):
        h.stop_process(self.proc)
        self.proc = None

    def cleanup(self):
        self.stop()
        subprocess.run(["rm", "-rf", self.dir], check=False, timeout=60)


def drive(address, port, messages, clients, per_session, tls, size=2048):
    """sink_drive's output line (the sink's own capacity)."""
    cmd = [os.path.join(build_dir(), "tests", "sink_drive"), "--connect", f"{address}:{port}",
           "--messages", str(messages), "--clients", str(clients), "--per-session",
           str(per_session), "--size", str(size)] + (["--tls"] if tls else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return out.stdout.strip() or out.stderr.strip()


# ------------------------------------------------------------ /proc

def _stat(pid):
    """(ppid, utime+stime, cutime+cstime) in ticks, or None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def tree(root):
    """root and every live descendant."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                children.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo and len(out) < 100000:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(root):
    """CPU of the whole tree: every live process's own time and the time of
    the children it has reaped (a Postfix master's cutime/cstime holds every
    smtp, smtpd, cleanup... that has exited)."""
    total = 0
    for p in tree(root):
        st = _stat(p)
        if st:
            total += st[1] + st[2]
    return total / CLK_TCK


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples the tree every 0.5 s: the largest VmHWM of any one process
    (the kernel's own peak, exact for a single-process relay), and the largest
    sum of PSS over the live processes (shared pages counted once, so a
    many-process relay is not charged its libraries once per process)."""

    def __init__(self, root):
        self.root, self.hwm_kib, self.pss_kib, self.procs = root, 0, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.5)

    def sample(self):
        procs = tree(self.root)
        self.procs = max(self.procs, len(procs))
        self.hwm_kib = max([self.hwm_kib] + [status_kib(p, "VmHWM") for p in procs])
        self.pss_kib = max(self.pss_kib, sum(_pss_kib(p) for p in procs))

    def stop(self):
        """(largest VmHWM, peak summed PSS) in MiB, and the most processes seen."""
        self._stop.set()
        self._t.join(timeout=5)
        self.sample()
        return self.hwm_kib / 1024, self.pss_kib / 1024, self.procs


# ------------------------------------------------------------ paced submission

def paced_submit(port, count, rate, recipients, size=2048, threads=8, tag="lat"):
    """`count` messages submitted to 127.0.0.1:port at `rate` a second (message
    i is due at t0 + i/rate), over `threads` sessions, each MAIL/RCPT/DATA
    pipelined; returns {Message-ID: time of its 250} (time.time()) and the
    number of messages that failed."""
    body_pad = ("x" * 76 + "\r\n") * max(0, (size - 200) // 78)
    sent, failed = {}, [0]
    lock = threading.Lock()
    nxt = [0]
    t0 = time.time() + 0.2

    def session():
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline(4096)
                if not line:
                    raise OSError("closed")
                if line[3:4] != b"-":
                    return int(line[:3])
        if reply() != 220:
            raise OSError("greeting")
        s.sendall(b"EHLO bench.test\r\n")
        if reply() != 250:
            raise OSError("EHLO")
        return s, reply

    def worker():
        conn = None
        for _ in range(count + 100):
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= count:
                break
            delay = t0 + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            mid = f"<{tag}.{i}.{os.getpid()}@bench.test>"
            rcpt = recipients[i % len(recipients)]
            try:
                if conn is None:
                    conn = session()
                s, reply = conn
                s.sendall(f"MAIL FROM:<bench@inside.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
                          .encode())
                if (reply(), reply(), reply()) != (250, 250, 354):
                    raise OSError("envelope refused")
                s.sendall(f"From: bench@inside.test\r\nTo: {rcpt}\r\nMessage-ID: {mid}\r\n"
                          f"Subject: latency {i}\r\n\r\n{body_pad}.\r\n".encode())
                if reply() != 250:
                    raise OSError("data refused")
                t = time.time()
                with lock:
                    sent[mid] = t
            except OSError:
                with lock:
                    failed[0] += 1
                if conn:
                    conn[0].close()
                conn = None
        if conn:
            try:
                conn[0].sendall(b"QUIT\r\n")
            except OSError:
                pass
            conn[0].close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=count / rate + 300)
    return sent, failed[0]


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]
