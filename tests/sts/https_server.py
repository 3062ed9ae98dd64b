#!/usr/bin/env python3
"""A small HTTPS server for the MTA-STS fetcher's unit tests (loopback only).

Usage: https_server.py DIR
Makes the lab's PKI in DIR (tests/e2e/lab/pki.py: root CA, intermediate,
one leaf for several mta-sts.* names), listens on 127.0.0.1 on a free port,
prints "PORT CAFILE EXPIRED_PORT" on one line once it accepts connections,
and serves until killed (the test stops it by PID). EXPIRED_PORT serves the
same answers with an expired certificate for mta-sts.expired.example. What it answers depends on the
Host header's name, mta-sts.NAME:

  good.example      200 text/plain, a valid policy
  charset.example   200 "Text/Plain; charset=utf-8", a valid policy
  redirect.example  301 to https://mta-sts.good.example/.well-known/mta-sts.txt
  big.example       200 text/plain, 100 KiB with Content-Length
  stream.example    200 text/plain, 100 KiB without Content-Length (read to close)
  html.example      200 text/html
  notype.example    200 without Content-Type
  missing.example   404
  slow.example      waits 5 s before answering
  short.example     200 text/plain, Content-Length 200 but 68 bytes, then closes
  wrongname.example (not in the certificate: the TLS handshake fails the name check)
"""
import http.server
import os
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e", "lab"))
from pki import Pki  # noqa: E402

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.good.example\r\nmax_age: 86400\r\n"
NAMES = ["good", "charset", "redirect", "big", "stream", "html", "notype", "missing", "slow",
         "short"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body, ctype="text/plain", length=True, extra=()):
        self.send_response(code)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        name = host.removeprefix("mta-sts.").removesuffix(".example")
        if self.path != "/.well-known/mta-sts.txt":
            return self.send(404, b"no such path\n")
        if name == "good":
            return self.send(200, POLICY)
        if name == "charset":
            return self.send(200, POLICY, "Text/Plain; charset=utf-8")
        if name == "redirect":
            return self.send(301, b"", extra=[(
                "Location", "https://mta-sts.good.example/.well-known/mta-sts.txt")])
        if name == "big":
            return self.send(200, POLICY + b"x" * (100 * 1024))
        if name == "stream":
            return self.send(200, POLICY + b"x" * (100 * 1024), length=False)
        if name == "html":
            return self.send(200, b"<html>" + POLICY, "text/html")
        if name == "notype":
            return self.send(200, POLICY, None)
        if name == "short":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "200")
            self.end_headers()
            self.wfile.write(POLICY)
            self.close_connection = True
            return None
        if name == "slow":
            time.sleep(5)
            return self.send(200, POLICY)
        return self.send(404, b"not found\n")


def serve(leaf):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf["chain"], leaf["key"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def main():
    pki = Pki(sys.argv[1])
    port = serve(pki.leaf("mta-sts", [f"mta-sts.{n}.example" for n in NAMES]))
    expired = serve(pki.leaf("expired", ["mta-sts.expired.example"], expired=True))
    print(port, pki.ca["crt"], expired, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
