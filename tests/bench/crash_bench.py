#!/usr/bin/env python3
"""Fault bench (not a test): nothing acknowledged with 250 may be lost.

Several client threads submit mail over SMTP to one danerelayd while the
bench SIGKILLs the daemon at random moments, trial after trial, and restarts
it. Some kills land during start-up, while the spool is being recovered.
Every message carries a unique token (in its Subject, its Message-ID and its
body); every token acknowledged with "250 ... queued as ID" is recorded. At
the end (and every --check-every trials) the spool is counted:

  acknowledged  tokens the relay answered 250 to
  found         of those, present in a message that `danectl queue list`
                lists, with envelope and content intact (byte for byte)
  lost          acknowledged, not found in msg/ (a quarantined one counts
                here and as damaged)
  damaged       files in quarantine/, files danectl lists as damaged, and
                messages whose envelope or content differs from what was sent
  duplicates    tokens present in more than one message
  in doubt      DATA sent, no reply read (the kill came first): may or may
                not be there; never counted as lost
  refused but stored
                answered 4xx, yet in the spool (a commit that failed after its
                rename, when the file system is gone and the unlink fails
                too): the client sends it again, a duplicate, never a loss

--power-cut: the spool is an ext4 file system on a loop device, and the
trial ends with EXT4_IOC_SHUTDOWN (EXT4_GOING_FLAGS_NOLOGFLUSH: nothing more
reaches the disk, the journal is not flushed, as when power fails), then the
daemon is killed, the file system unmounted, mounted again (journal replay)
and the daemon restarted; the trials that kill during start-up cut the power
there too, while recovery may be moving files. Needs root, losetup,
mkfs.ext4 and loop devices.

The relay has no reachable destination: recipients are in *.invalid and its
resolver is a dead port on 127.0.0.1, so nothing is delivered or bounced;
messages stay queued and are retried (deferred) meanwhile.

Usage: tests/bench/crash_bench.py [--trials N] [--build DIR] [--seed S]
           [--clients C] [--rate MSG_PER_S] [--power-cut] [--check-every K]
           [--max-wait SEC] [--recovery-share F] [--max-runtime SEC] [--keep]
(--help says what each does.) Same seed, same kill schedule; the timing of
the daemon and the clients still varies from run to run.
Exit status 0 when nothing was lost, damaged or duplicated, else 1.
Loopback only (free ports on 127.0.0.1); every daemon started and stopped by
its PID; every loop bounded in count and in time.
"""
import argparse
import fcntl
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import relayharness as h  # noqa: E402

# _IOR('X', 125, __u32) from linux/ext4.h (fs/ext4/ext4.h before 6.x)
EXT4_IOC_SHUTDOWN = 0x8004587D
EXT4_GOING_FLAGS_NOLOGFLUSH = 2

SENDER = "bench@inside.test"
TOKEN_RE = re.compile(rb"Message-ID: <(cb[0-9a-f]+-\d+-\d+)@crash-bench\.test>")
QID_RE = re.compile(r"queued as ([0-9A-F]{14})")
TLS_CONTEXT = ssl.create_default_context()
TLS_CONTEXT.check_hostname = False
TLS_CONTEXT.verify_mode = ssl.CERT_NONE  # the harness's self-signed certificate


# ---------------------------------------------------------------- messages

def message_for(token):
    """(recipients, bytes sent after DATA) for a token: deterministic, so the
    spool can be checked byte for byte without keeping what was sent."""
    rnd = random.Random(token)
    rcpts = [f"user{rnd.randrange(1000)}@d{rnd.randrange(50)}.crash-bench.invalid"
             for _ in range(rnd.choice((1, 1, 1, 2, 3)))]
    size = rnd.choice((200, 1000, 4000, 20000, 20000, 150000))
    # about `size` bytes in lines of varying length, cheap to make again
    lines = [f"{token} line {n} " + "x" * (10 + n * 7 % 60)
             for n in range(size // (len(token) + 50) + 1)]
    head = (f"From: <{SENDER}>\r\nTo: <{rcpts[0]}>\r\nSubject: crash-bench {token}\r\n"
            f"Message-ID: <{token}@crash-bench.test>\r\n"
            "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n")
    return rcpts, (head + "\r\n".join(lines) + "\r\n").encode()


class Ledger:
    """What the clients were told, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}      # token -> queue ID from the 250 reply
        self.in_doubt = set()
        self.refused = 0     # 4xx/5xx replies to DATA or before it
        self.refused_data = set()  # tokens whose DATA got 4xx/5xx: must not be stored
        self.conn_errors = 0
        self.unexpected = 0

    def snapshot(self):
        with self.lock:
            return dict(self.acked), set(self.in_doubt)


class Pacer:
    """At most `rate` messages a second over all clients (0: no limit), so
    that the spool, and with it the time a start takes, grows slowly."""

    def __init__(self, rate, stop):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.stop = stop
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def wait(self):
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            self.next = max(self.next + self.interval, now)
            at = self.next
        self.stop.wait(min(5.0, max(0.0, at - time.monotonic())))


class Client(threading.Thread):
    def __init__(self, n, run_id, ledger, port, stop, deadline, seed, pacer):
        super().__init__(daemon=True, name=f"client{n}")
        self.n, self.run_id, self.ledger, self.port = n, run_id, ledger, port
        self.pacer = pacer
        self.stop, self.deadline = stop, deadline
        self.rnd = random.Random(seed)
        self.seq = 0

    def token(self):
        self.seq += 1
        return f"cb{self.run_id}-{self.n}-{self.seq}"

    def run(self):
        # Bounded: by the stop event, by the deadline, and each step by a timeout.
        for _ in range(10_000_000):
            if self.stop.is_set() or time.monotonic() > self.deadline:
                return
            try:
                self.session()
            except (OSError, smtplib.SMTPException, EOFError):
                with self.ledger.lock:
                    self.ledger.conn_errors += 1
            except Exception as e:  # a bench bug: say so, keep the thread alive
                with self.ledger.lock:
                    self.ledger.conn_errors += 1
                    if not self.ledger.unexpected:
                        print(f"{self.name}: unexpected {e!r}", flush=True)
                    self.ledger.unexpected += 1
            else:
                continue
            self.stop.wait(self.rnd.uniform(0.01, 0.05))  # refused: the daemon is down

    def session(self):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        try:
            s.ehlo("client.inside.test")
            if self.rnd.random() < 0.25:  # a quarter of the sessions in STARTTLS
                s.starttls(context=TLS_CONTEXT)
                s.ehlo("client.inside.test")
            for _ in range(self.rnd.randint(1, 8)):
                self.pacer.wait()
                if self.stop.is_set():
                    break
                token = self.token()
                rcpts, data = message_for(token)
                code, _ = s.mail(SENDER)
                if code != 250:
                    self.refuse()
                    break
                if not all(s.rcpt(r)[0] == 250 for r in rcpts):
                    self.refuse()
                    s.rset()
                    continue
                with self.ledger.lock:
                    self.ledger.in_doubt.add(token)
                code, resp = s.data(data)
                with self.ledger.lock:
                    self.ledger.in_doubt.discard(token)
                    if code == 250:
                        m = QID_RE.search(resp.decode(errors="replace"))
                        self.ledger.acked[token] = m.group(1) if m else "?"
                    else:
                        self.ledger.refused += 1
                        self.ledger.refused_data.add(token)
            s.quit()
        finally:
            s.close()

    def refuse(self):
        with self.ledger.lock:
            self.ledger.refused += 1


# ---------------------------------------------------------------- the spool

def scan_spool(spool):
    """Read msg/ and quarantine/ directly: {token: [queue IDs]}, a list of
    (file, problem) for what is not intact, and the IDs without a token."""
    tokens, bad, foreign = {}, [], []
    msgdir = os.path.join(spool, "msg")
    for qid in sorted(os.listdir(msgdir)) if os.path.isdir(msgdir) else []:
        try:
            with open(os.path.join(msgdir, qid), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        except OSError as e:
            bad.append((f"msg/{qid}", str(e)))
            continue
        m = TOKEN_RE.search(data)
        if not m:
            foreign.append(qid)  # not the bench's (a bounce?): reported, not judged
            continue
        tokens.setdefault(m.group(1).decode(), []).append(qid)
        problem = check_message(data)
        if problem:
            bad.append((f"msg/{qid}", problem))
    qdir = os.path.join(spool, "quarantine")
    for name in sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []:
        if name.endswith(".why"):
            with open(os.path.join(qdir, name), errors="replace") as f:
                bad.append((f"quarantine/{name[:-4]}", f.read().strip()))
    return tokens, bad, foreign


def check_message(data):
    """None if the file holds exactly what a client sent, else the problem."""
    nl = data.find(b"\n")
    parts = data[:nl].split() if nl > 0 else []
    if len(parts) != 4 or parts[0] != b"DRQ1":
        return "no valid header line"
    if not (parts[1].isdigit() and parts[2].isdigit()):
        return "malformed header line"
    env_len, content_len = int(parts[1]), int(parts[2])
    if len(data) != nl + 1 + env_len + content_len:
        return f"size {len(data)} does not match its header"
    try:
        env = json.loads(data[nl + 1:nl + 1 + env_len])
    except ValueError:
        return "envelope is not JSON"
    content = data[nl + 1 + env_len:]
    m = TOKEN_RE.search(content)
    if not m:
        return "no token in the content"
    rcpts, sent = message_for(m.group(1).decode())
    if not content.endswith(sent):
        return "content differs from what was sent"
    if env.get("sender") != SENDER:
        return f"envelope sender {env.get('sender')!r}"
    got = [r.get("address") if isinstance(r, dict) else r for r in env.get("recipients", [])]
    if got != rcpts:
        return f"envelope recipients {got!r}, sent {rcpts!r}"
    return None


def danectl_list(spool):
    out = subprocess.run([h.DANECTL, "--spool", spool, "queue", "list", "--json"],
                         capture_output=True, text=True, timeout=300)
    try:
        d = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError(f"danectl queue list: rc {out.returncode}: {out.stderr[-500:]}")
    return {m["id"] for m in d["messages"]}, d["damaged"]


def count(spool, ledger, listed=None, damaged_listed=()):
    acked, in_doubt = ledger.snapshot()
    with ledger.lock:
        refused = set(ledger.refused_data)
    tokens, bad, foreign = scan_spool(spool)
    if listed is None:
        listed = {q for qs in tokens.values() for q in qs}
    damaged_ids = {f[4:] for f, _ in bad if f.startswith("msg/")}
    found = {t for t in acked
             if any(q in listed and q not in damaged_ids for q in tokens.get(t, ()))}
    lost = sorted(t for t in acked if t not in tokens)
    unlisted = sorted(t for t in acked
                      if t in tokens and not any(q in listed for q in tokens[t]))
    wrong_id = sorted(t for t in acked if t in tokens and acked[t] not in tokens[t])
    dups = {t: qs for t, qs in tokens.items() if len(qs) > 1}
    return {
        "acknowledged": len(acked),
        "found": len(found),
        "lost": len(lost),
        "damaged": len({f.split("/")[-1] for f, _ in bad} |
                       {d.get("id") for d in damaged_listed}),
        "duplicates": len(dups),
        "in_doubt": len(in_doubt),
        "in_doubt_found": sum(1 for t in in_doubt if t in tokens),
        "refused_but_stored": sum(1 for t in refused if t in tokens),
        "in_spool": sum(len(q) for q in tokens.values()) + len(foreign),
        "_tokens": tokens, "_lost": lost, "_unlisted": unlisted, "_wrong_id": wrong_id, "_dups": dups,
        "_bad": bad + [(d.get("id"), d.get("error")) for d in damaged_listed],
        "_foreign": foreign,
    }


def figures(c):
    return " ".join(f"{k}={v}" for k, v in c.items() if not k.startswith("_"))


# ---------------------------------------------------------------- the daemon

class Daemon:
    """danerelayd under the bench: started and killed by PID."""

    def __init__(self, relay):
        self.relay = relay
        self.proc = None
        self.logfile = open(relay.log, "ab")
        self.log_offset = 0
        self.start_secs = 0.05  # how long the last start took until it listened

    def spawn(self):
        self.log_offset = os.path.getsize(self.relay.log)
        self.proc = subprocess.Popen([h.DANERELAYD, "--config", self.relay.config],
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        return self.proc

    def wait_listening(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"danerelayd exited ({self.proc.returncode}) at start; "
                                   f"see {self.relay.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.relay.port), timeout=2):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"danerelayd did not listen within {timeout} s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def log_since_spawn(self):
        with open(self.relay.log, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")


class LoopFs:
    """An ext4 image on a loop device, mounted at `mountpoint`."""

    def __init__(self, image, mountpoint):
        self.image, self.mountpoint, self.dev, self.mounted = image, mountpoint, None, False

    def setup(self, size_mb):
        """Image, loop device, mount; cleanup() undoes whatever of it was done."""
        for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
            if not shutil.which(tool):
                raise RuntimeError(f"--power-cut needs {tool} (apt-get install e2fsprogs "
                                   "mount)")
        if os.geteuid() != 0:
            raise RuntimeError("--power-cut needs root (losetup, mount)")
        with open(self.image, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        run(["mkfs.ext4", "-q", "-F", self.image])
        out = subprocess.run(["losetup", "-f", "--show", self.image], capture_output=True,
                             text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError("--power-cut: no loop device in this sandbox? losetup: "
                               + out.stderr.strip())
        self.dev = out.stdout.strip()
        os.makedirs(self.mountpoint, exist_ok=True)
        self.mount()

    def mount(self):
        run(["mount", "-t", "ext4", self.dev, self.mountpoint])
        self.mounted = True

    def shutdown(self):
        fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)

    def umount(self):
        if not self.mounted:
            return
        for _ in range(50):  # bounded: 50 tries, 0.1 s apart
            if subprocess.run(["umount", self.mountpoint], capture_output=True,
                              timeout=60).returncode == 0:
                self.mounted = False
                return
            time.sleep(0.1)
        run(["umount", "-l", self.mountpoint])
        self.mounted = False

    def cleanup(self):
        try:
            self.umount()
        finally:
            if self.dev:
                subprocess.run(["losetup", "-d", self.dev], timeout=30)
                self.dev = None
            if os.path.exists(self.image):
                os.unlink(self.image)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")


# ---------------------------------------------------------------- the bench

def make_relay(args):
    dead = h.free_port()  # nothing listens there: every lookup fails at once
    relay = h.Relay(relay_networks=["127.0.0.1/32"],
                    limits={"max_sessions": 500, "max_sessions_per_client": 500,
                            "command_timeout": 30, "session_timeout": 300},
                    dns={"resolvers": [f"127.0.0.1:{dead}"], "timeout_ms": 300,
                         "attempts": 1})
    with open(relay.config) as f:
        cfg = json.load(f)
    cfg["delivery"] = {"retry_initial": 120, "retry_max": 600}
    with open(relay.config, "w") as f:
        json.dump(cfg, f, indent=2)
    return relay


def trial(args, rnd, daemon, fs, ledger, stats):
    """One trial: a start, a random wait, a fault. Returns what it did."""
    kind = "recovery" if rnd.random() < args.recovery_share else "run"
    t0 = time.monotonic()
    if kind == "recovery":
        # A kill right after the start, before or while recovery runs.
        msgdir = os.path.join(daemon.relay.spool, "msg")
        size = len(os.listdir(msgdir)) if os.path.isdir(msgdir) else 0
        daemon.spawn()
        time.sleep(rnd.uniform(0, 1.2 * daemon.start_secs))
        if fs:
            fs.shutdown()  # power fails while recovery may be moving files
            kind = "recovery-power-cut"
        daemon.kill()
        log = daemon.log_since_spawn()
        phase = ("after_listen" if "event=listen" in log else
                 "after_recovered" if "event=recovered" in log else "before_recovered")
        stats["recovery_kills_" + phase] += 1
        stats["spool_at_last_recovery_kill"] = size
        if fs:
            fs.umount()
            fs.mount()
        return kind, time.monotonic() - t0
    daemon.spawn()
    daemon.wait_listening()
    daemon.start_secs = time.monotonic() - t0
    time.sleep(rnd.uniform(0.02, args.max_wait))
    if fs:
        fs.shutdown()
        time.sleep(rnd.uniform(0, 0.3))  # the daemon meets EIO/EROFS for a while
        daemon.kill()
        fs.umount()
        fs.mount()
        kind = "power-cut"
    else:
        daemon.kill()
    return kind, time.monotonic() - t0


def tail(path, n=65536):
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - n))
        return f.read().decode(errors="replace")


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--power-cut", action="store_true",
                    help="shut the spool's ext4 file system down instead of only SIGKILL")
    ap.add_argument("--check-every", type=int, default=25,
                    help="count the spool every K trials (0: only at the end)")
    ap.add_argument("--max-wait", type=float, default=1.0,
                    help="longest run before a fault, seconds")
    ap.add_argument("--recovery-share", type=float, default=0.2,
                    help="share of trials that kill during start-up and recovery")
    ap.add_argument("--max-runtime", type=float, default=1500,
                    help="stop starting trials after this many seconds")
    ap.add_argument("--rate", type=float, default=50,
                    help="messages a second over all clients (0: as fast as accepted)")
    ap.add_argument("--image-mb", type=int, default=1024)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    # SIGTERM cleans up like ^C: daemon killed, file system unmounted, loop device freed.
    signal.signal(signal.SIGTERM, interrupted)

    h.DANERELAYD = os.path.join(args.build, "relay", "danerelayd")
    h.DANECTL = os.path.join(args.build, "relay", "danectl")
    for b in (h.DANERELAYD, h.DANECTL):
        if not os.access(b, os.X_OK):
            sys.exit(f"no {b}: build first (or --build DIR)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rnd = random.Random(seed)
    run_id = f"{seed:x}"
    print(f"crash_bench: seed={seed} trials={args.trials} clients={args.clients} "
          f"rate={args.rate}/s "
          f"mode={'power-cut' if args.power_cut else 'sigkill'} build={args.build}", flush=True)

    started = time.monotonic()
    relay = make_relay(args)
    fs = daemon = None
    stop = threading.Event()
    clients = []
    ledger = Ledger()
    stats = {"recovery_kills_before_recovered": 0, "recovery_kills_after_recovered": 0,
             "recovery_kills_after_listen": 0}
    kinds = {}
    failed = False
    done = 0
    try:
        if args.power_cut:
            fs = LoopFs(os.path.join(relay.dir, "spool.img"), relay.spool)
            try:
                fs.setup(args.image_mb)
            except RuntimeError as e:
                print(f"crash_bench: {e}", file=sys.stderr)
                return 2
        daemon = Daemon(relay)
        deadline = started + args.max_runtime + 600
        pacer = Pacer(args.rate, stop)
        clients = [Client(i, run_id, ledger, relay.port, stop, deadline, rnd.random(), pacer)
                   for i in range(args.clients)]
        for c in clients:
            c.start()
        for i in range(1, args.trials + 1):
            if time.monotonic() - started > args.max_runtime:
                print(f"max runtime reached after {done} trials", flush=True)
                break
            try:
                kind, secs = trial(args, rnd, daemon, fs, ledger, stats)
            except RuntimeError as e:
                print(f"trial {i}: {e}\n--- log tail ---\n{tail(relay.log, 3000)}", flush=True)
                failed = True
                break
            kinds[kind] = kinds.get(kind, 0) + 1
            done = i
            if args.check_every and i % args.check_every == 0:
                c = count(relay.spool, ledger)
                print(f"trial {i} ({kind}, {secs:.2f}s, start {daemon.start_secs:.2f}s): "
                      f"{figures(c)}", flush=True)
                if c["lost"] or c["duplicates"] or c["damaged"]:
                    report_problems(c, ledger)
        # Last start: recovery runs to the end; then the clients stop and the
        # daemon stops cleanly, and the spool is counted.
        if not failed:
            daemon.spawn()
            daemon.wait_listening()
            time.sleep(1.0)
        stop.set()
        for c in clients:
            c.join(timeout=30)
        daemon.stop()
        listed, damaged_listed = danectl_list(relay.spool)
        c = count(relay.spool, ledger, listed, damaged_listed)
        runtime = time.monotonic() - started
        print(f"RESULT trials={done} {' '.join(f'{k}={v}' for k, v in sorted(kinds.items()))} "
              f"{figures(c)} listed={len(listed)} refused={ledger.refused} "
              f"failed_sessions={ledger.conn_errors} "
              f"{' '.join(f'{k}={v}' for k, v in stats.items())} "
              f"runtime={runtime:.0f}s seed={seed}", flush=True)
        if c["lost"] or c["duplicates"] or c["damaged"] or c["_unlisted"] or c["_wrong_id"]:
            report_problems(c, ledger)
            failed = True
        elif failed:
            report_problems(c, ledger)
        if c["_foreign"]:
            print(f"messages without a bench token (bounces?): {c['_foreign'][:10]}")
    finally:
        stop.set()
        if daemon:
            daemon.kill()
        for c in clients:
            c.join(timeout=30)
        if fs:
            fs.cleanup()
        if args.keep or failed:
            print(f"work directory kept: {relay.dir}")
        else:
            shutil.rmtree(relay.dir, ignore_errors=True)
    return 1 if failed else 0


def report_problems(c, ledger):
    acked, _ = ledger.snapshot()
    for t in c["_lost"][:20]:
        print(f"  LOST {t} acknowledged as {acked[t]}")
    for t in c["_unlisted"][:20]:
        print(f"  NOT LISTED by danectl: {t}, in msg/ as {c['_tokens'].get(t)}")
    for t in c["_wrong_id"][:20]:
        print(f"  WRONG ID {t} acknowledged as {acked[t]}, found in the spool under another")
    for t, qs in list(c["_dups"].items())[:20]:
        print(f"  DUPLICATE {t} in {qs}")
    for f, why in c["_bad"][:20]:
        print(f"  DAMAGED {f}: {why}")


if __name__ == "__main__":
    sys.exit(main())
