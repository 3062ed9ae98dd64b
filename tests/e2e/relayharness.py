"""Start and stop a real danerelayd for end-to-end tests, and talk to it.

Everything listens on 127.0.0.0/8 only. Every server started here is stopped
by its PID (SIGTERM, then SIGKILL after a bound). Every client call has a
timeout. Usable by hand:  python3 -c 'import relayharness as h; r=h.Relay(); r.start(); input()'
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BUILD = os.environ.get("DANERELAY_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
DANERELAYD = os.path.join(BUILD, "relay", "danerelayd")
DANECTL = os.path.join(BUILD, "relay", "danectl")

_CERT_CACHE = {}


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_cert(directory, name="danerelay.test"):
    """A self-signed ECDSA certificate made with GnuTLS's certtool."""
    key, crt, tmpl = (os.path.join(directory, f) for f in ("relay.key", "relay.crt", "tmpl"))
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", key],
                   check=True, capture_output=True, timeout=30)
    with open(tmpl, "w") as f:
        f.write(f'cn = "{name}"\ndns_name = "{name}"\nexpiration_days = 30\ntls_www_server\n'
                'signing_key\n')
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template",
                    tmpl, "--outfile", crt], check=True, capture_output=True, timeout=30)
    return crt, key


def hash_password(password):
    out = subprocess.run([DANECTL, "passwd"], input=password + "\n", capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout.strip()


# Started as root, the daemon must be told whom to become ("user"): the
# tests give it nobody. Started as anyone else it runs as that user.
RUN_USER = "nobody" if os.geteuid() == 0 else None


def stop_process(proc):
    """SIGTERM to the process by its PID, SIGKILL if it has not gone in 10 s."""
    if proc and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def give_to_run_user(path):
    """A directory tree the test made, handed to the daemon's user (a spool
    seeded before a start); nothing to do when the tests do not run as root."""
    if RUN_USER is None:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        shutil.chown(dirpath, RUN_USER)
        for name in dirnames + filenames:
            shutil.chown(os.path.join(dirpath, name), RUN_USER)


def as_run_user(cmd):
    """cmd run as the daemon's user (to act on the daemon as only its own
    user may, e.g. prlimit without CAP_SYS_RESOURCE)."""
    if RUN_USER is None:
        return cmd
    import pwd
    pw = pwd.getpwnam(RUN_USER)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"] + cmd


class Relay:
    """One danerelayd with its own directory, config, spool and ports."""

    def __init__(self, relay_networks=("127.0.0.1/32",), limits=None, users=None,
                 prlimit_fsize=None, dns=None, env=None, extra_listeners=None, mta_sts=None):
        """extra_listeners: more "listeners" entries (dicts, e.g. with
        proxy_protocol), after the two every relay has. mta_sts: the
        "mta_sts" section ({"enabled", "trust_store": a PEM CA file, "port",
        "fetch_timeout"}; the lab's: DnsLab.relay_mta_sts()), or None."""
        self.dir = tempfile.mkdtemp(prefix="danerelay-e2e-")
        self.port = free_port()
        self.tls_port = free_port()
        self.spool = os.path.join(self.dir, "spool")
        self.log = os.path.join(self.dir, "danerelayd.log")
        self.proc = None
        self.prlimit_fsize = prlimit_fsize
        self.env = dict(os.environ, **(env or {}))
        crt, key = make_cert(self.dir)
        cfg = {
            "hostname": "relay.e2e.test",
            "spool_dir": "spool",
            "listeners": [
                {"address": f"127.0.0.1:{self.port}", "tls": "starttls"},
                {"address": f"127.0.0.1:{self.tls_port}", "tls": "implicit"},
            ] + list(extra_listeners or []),
            "tls": {"certificate": crt, "key": key},
            "relay_networks": list(relay_networks),
            "limits": {"command_timeout": 30, "session_timeout": 120, **(limits or {})},
        }
        if RUN_USER:
            cfg["user"] = RUN_USER
            os.chmod(self.dir, 0o755)  # the daemon's user reaches its spool in here
        # Never the machine's own resolv.conf: without resolvers of its own a
        # test relay asks 127.0.0.1:53, named in a resolv.conf of its own.
        cfg["dns"] = self.with_resolvers(dns or {})
        if mta_sts is not None:
            cfg["mta_sts"] = dict(mta_sts)
        if users:
            path = os.path.join(self.dir, "credentials")
            with open(path, "w") as f:
                for user, password in users.items():
                    f.write(f"{user}:{hash_password(password)}\n")
            cfg["auth"] = {"credentials": path}
        self.config = os.path.join(self.dir, "danerelay.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)

    def with_resolvers(self, dns):
        if "resolvers" in dns or "resolv_conf" in dns:
            return dns
        conf = os.path.join(self.dir, "resolv.conf")
        with open(conf, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        return {**dns, "resolv_conf": conf}

    def set_dns(self, dns):
        """Replace the "dns" section of the configuration (before start)."""
        with open(self.config) as f:
            cfg = json.load(f)
        cfg["dns"] = self.with_resolvers(dns)
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)

    def start(self):
        cmd = [DANERELAYD, "--config", self.config]
        if self.prlimit_fsize is not None:
            cmd = ["prlimit", f"--fsize={self.prlimit_fsize}", "--"] + cmd
        self.logfile = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     env=self.env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("danerelayd exited at start:\n" + self.read_log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.recv(512)
                    s.sendall(b"QUIT\r\n")
                    while s.recv(512):  # until the server has closed: the session is gone
                        pass
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("danerelayd did not listen within 15 s")

    def stop(self):
        stop_process(self.proc)
        if self.proc:
            self.logfile.close()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def queue(self):
        out = subprocess.run([DANECTL, "--spool", self.spool, "queue", "list", "--json"],
                             capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout)

    def message_file(self, qid):
        with open(os.path.join(self.spool, "msg", qid), "rb") as f:
            return f.read()

    def swaks(self, *args, port=None, timeout=60):
        cmd = ["swaks", "--server", f"127.0.0.1:{port or self.port}", "--timeout", "20",
               "--suppress-data"]
        cmd += list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return out.stdout + out.stderr

    def body_file(self, text):
        """A file for swaks' --body/--data @FILE (long bodies overflow argv)."""
        path = os.path.join(self.dir, f"body-{time.monotonic_ns()}.txt")
        with open(path, "w" if isinstance(text, str) else "wb") as f:
            f.write(text)
        return "@" + path

    def connect(self, port=None, source="127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", port or self.port), timeout=20,
                                     source_address=(source, 0))
        return SmtpConn(s)


def replies(swaks_output):
    """The server's reply lines from swaks' transcript: [(code, text), ...]."""
    out = []
    for line in swaks_output.splitlines():
        m = re.match(r"^<(?:~|\*\*|-)?\s+(\d{3})[ -](.*)$", line)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def queued_id(swaks_output):
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-F]{14})", swaks_output)
    return m.group(1) if m else None


class SmtpConn:
    """A raw SMTP connection for what swaks cannot send (pipelined STARTTLS)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [lines])."""
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                lines.append(line.decode(errors="replace"))
                if len(line) >= 4 and line[3:4] == b" ":
                    return int(line[:3]), lines
            chunk = self.sock.recv(65536)
            if not chunk:
                return None, lines
            self.buf += chunk
        raise TimeoutError("no reply")

    def command(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()
