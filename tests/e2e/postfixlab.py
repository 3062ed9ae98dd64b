"""A private Postfix instance on loopback, for benchmarks and (later) as a
receiving MTA in the DNSSEC lab.

It has its own config, queue and data directories under a temporary
directory, listens only on the 127.x address and port given, and is started
and stopped by the PID of its master process. It never touches the system's
Postfix configuration.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class PostfixInstance:
    def __init__(self, listen, extra_main=None, extra_master=None, name="pf",
                 probe_address=None, resolver=None):
        self.listen = listen  # "127.0.0.1:2626", or None when extra_master has the listeners
        self.probe_address = probe_address or listen
        self.dir = tempfile.mkdtemp(prefix=f"danerelay-{name}-")
        os.chmod(self.dir, 0o755)  # the postfix user must reach data/ and queue/
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "maillog")
        for d in (self.conf, self.queue, self.data):
            os.makedirs(d)
        shutil.chown(self.data, "postfix")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": listen.rsplit(":", 1)[0] if listen else "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": f"{name}.lab.test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "maillog_file": self.log,
            "maillog_file_prefixes": "/tmp",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_peername_lookup": "no",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "default_process_limit": "200",
            "biff": "no",
            "shlib_directory": "/usr/lib/postfix",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "meta_directory": "/etc/postfix",
        }
        main.update(extra_main or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write(f"{k} = {v}\n")
        services = ([f"{listen} inet n - n - - smtpd"] if listen else []) + [
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
        ] + list(extra_master or [])
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(services) + "\n")
        self.master_pid = None
        # Postfix resolves with the C library, which reads /etc/resolv.conf:
        # give this instance its own, in a private mount namespace.
        self.resolver = resolver

    def _make_queue(self):
        # What postfix-script's set-permissions would do. The postfix(1)
        # wrapper is not used: on Debian it insists on /etc/postfix/main.cf,
        # which a test must not create.
        for d in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                  "incoming", "private", "saved", "trace", "pid"):
            path = os.path.join(self.queue, d)
            os.makedirs(path, exist_ok=True)
            if d != "pid":
                shutil.chown(path, "postfix", "root")
                os.chmod(path, 0o700)
        for d, mode in (("public", 0o710), ("maildrop", 0o730)):
            path = os.path.join(self.queue, d)
            os.makedirs(path, exist_ok=True)
            shutil.chown(path, "postfix", "postdrop")
            os.chmod(path, mode)

    def start(self):
        self._make_queue()
        cmd = ["/usr/lib/postfix/sbin/master", "-d", "-c", self.conf]
        if self.resolver:
            resolv = os.path.join(self.dir, "resolv.conf")
            with open(resolv, "w") as f:
                f.write(f"nameserver {self.resolver}\noptions edns0 trust-ad\n")
            cmd = ["unshare", "-m", "sh", "-c",
                   f"mount --bind {resolv} /etc/resolv.conf && exec " + " ".join(cmd)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.master_pid = self.proc.pid
        host, port = self.probe_address.rsplit(":", 1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postfix master exited; log:\n" + self.read_log())
            try:
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.recv(512)
                    s.sendall(b"QUIT\r\n")
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not listen; log:\n" + self.read_log())

    def stop(self):
        if self.master_pid:
            os.kill(self.master_pid, signal.SIGTERM)  # master stops its children
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.master_pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
            self.master_pid = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def count_queue_files(self, *queues):
        n = 0
        for q in queues:
            for _, _, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n
