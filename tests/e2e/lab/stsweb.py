#!/usr/bin/env python3
"""The lab's MTA-STS policy server (RFC 8461 3.3): one HTTPS server on one
loopback address (dnslab.STS_WEB, port 443 or another) for every
mta-sts.DOMAIN of the lab. SNI picks the certificate (a lab leaf for that
name, or the expired or wrong-name one a broken site is given; no SNI or an
unknown name gets the wrong-name one); the Host header picks what
/.well-known/mta-sts.txt answers.

    python3 stsweb.py CONFIG PORT LOG     (the tests start it with StsWeb)

CONFIG (JSON, written by DnsLab.build() as sts-web.json, and re-read on
every request, so a test changes a site by rewriting it): {"address",
"default_cert": {"chain", "key"}, "sites": {"mta-sts.DOMAIN": {"cert":
{"chain", "key"}, "body", "ctype" (default text/plain), "status" (default
200), "location", "delay" (seconds before the answer)}}}. Certificates are
read once, at the start.

LOG: one JSON object a line: {"event": "sni", "sni": NAME} for every TLS
ClientHello (also those whose handshake the client then refuses), and
{"event": "request", "sni", "host", "path", "status", "bytes"} for every
request answered. "ready" goes to stdout once it listens. Stopped by its PID
(SIGTERM). Loopback only; threads only; every connection times out.
"""
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

LOG_LOCK = threading.Lock()


def log_event(log_path, **fields):
    with LOG_LOCK, open(log_path, "a") as f:
        f.write(json.dumps({"t": round(time.time(), 3), **fields}) + "\n")


def context(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert["chain"], cert["key"])
    return ctx


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # per connection: a silent client is dropped

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        try:
            with open(srv.config_path) as f:
                sites = json.load(f)["sites"]
        except (OSError, ValueError):
            sites = {}
        site = sites.get(host)
        extra = []
        if self.path != "/.well-known/mta-sts.txt" or site is None:
            status, body, ctype = 404, b"not found\n", "text/plain"
        else:
            time.sleep(min(float(site.get("delay", 0)), 120))
            status = int(site.get("status", 200))
            body = site.get("body", "").encode()
            ctype = site.get("ctype", "text/plain")
            if site.get("location"):
                extra.append(("Location", site["location"]))
        sni = getattr(self.connection, "lab_sni", None)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        finally:
            log_event(srv.log_path, event="request", sni=sni, host=host, path=self.path,
                      status=status, bytes=len(body))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, port, config_path, log_path):
        self.config_path, self.log_path = config_path, log_path
        with open(config_path) as f:
            cfg = json.load(f)
        self.contexts = {name: context(site["cert"]) for name, site in cfg["sites"].items()}
        self.default = context(cfg["default_cert"])
        self.default.sni_callback = self.on_sni
        super().__init__((address, port), Handler)

    def on_sni(self, sock, name, _ctx):
        log_event(self.log_path, event="sni", sni=name)
        sock.lab_sni = name
        sock.context = self.contexts.get((name or "").lower(), self.default)
        return None

    def get_request(self):
        # The handshake happens in the connection's own thread (on its first
        # read), never in the accepting loop: a silent client blocks nothing.
        conn, addr = self.socket.accept()
        conn.settimeout(30)
        return self.default.wrap_socket(conn, server_side=True,
                                        do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass  # refused handshakes and dropped clients are what the lab is for


def main():
    config_path, port, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(config_path) as f:
        address = json.load(f)["address"]
    server = Server(address, port, config_path, log_path)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    print("ready", flush=True)
    server.serve_forever(poll_interval=0.2)


class StsWeb:
    """Runs stsweb.py as a subprocess for a test: started and stopped by its
    PID; its sites changed by rewriting its configuration (a copy of the
    lab's, so tests do not change each other's); its request log read back.

        web = StsWeb(lab).start(); ...; web.requests("mta-sts.sts-enforce.test")
    """

    def __init__(self, lab, port=443, directory=None):
        self.dir = directory or lab.dir
        self.address = None
        self.port = port
        self.config = os.path.join(self.dir, f"sts-web-{os.getpid()}-{time.monotonic_ns()}.json")
        with open(lab.sts_web_config) as f:
            self.cfg = json.load(f)
        self.address = self.cfg["address"]
        self.log = self.config[:-5] + ".log"
        self._write()
        self.proc = None

    def _write(self):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.cfg, f)
        os.replace(tmp, self.config)

    def set_site(self, domain, **changes):
        """Change what mta-sts.DOMAIN answers (body=, ctype=, status=,
        location=, delay=); a value None removes the key. Effective at once."""
        site = self.cfg["sites"]["mta-sts." + domain]
        for k, v in changes.items():
            if v is None:
                site.pop(k, None)
            else:
                site[k] = v
        self._write()

    def start(self, timeout=15):
        self.stderr = open(self.config[:-5] + ".stderr", "ab")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.config,
                                      str(self.port), self.log],
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stderr.close()
                with open(self.config[:-5] + ".stderr", errors="replace") as f:
                    raise RuntimeError("stsweb.py exited at start: " + f.read()[-2000:])
            try:
                with socket.create_connection((self.address, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stsweb.py did not listen on {self.address}:{self.port} in {timeout} s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc:
            self.proc.stdout.close()
            self.stderr.close()
        self.proc = None

    def events(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def requests(self, name=None):
        """Requests answered (optionally for Host name mta-sts.DOMAIN)."""
        return [e for e in self.events() if e["event"] == "request"
                and (name is None or e["host"] == name)]

    def contacts(self, name=None):
        """TLS ClientHellos (optionally with this SNI name)."""
        return [e for e in self.events() if e["event"] == "sni"
                and (name is None or e["sni"] == name)]


if __name__ == "__main__":
    main()
