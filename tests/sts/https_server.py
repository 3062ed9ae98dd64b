#!/usr/bin/env python3
"""A small HTTPS server for the MTA-STS fetcher's unit tests (loopback only).

Usage: https_server.py DIR
Makes the lab's PKI in DIR (tests/e2e/lab/pki.py: root CA, intermediate,
one leaf for several mta-sts.* names), listens on 127.0.0.1 on a free port,
prints "PORT CAFILE" on one line once it accepts connections, and serves
until killed (the test stops it by PID). What it answers depends on the
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
  wrongname.example (not in the certificate: the TLS handshake fails the name check)
"""
import http.server
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e", "lab"))
from pki import Pki  # noqa: E402

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.good.example\r\nmax_age: 86400\r\n"
NAMES = ["good", "charset", "redirect", "big", "stream", "html", "notype", "missing", "slow"]


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
        if name == "slow":
            time.sleep(5)
            return self.send(200, POLICY)
        return self.send(404, b"not found\n")


def main():
    pki = Pki(sys.argv[1])
    leaf = pki.leaf("mta-sts", [f"mta-sts.{n}.example" for n in NAMES])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf["chain"], leaf["key"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], pki.ca["crt"], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
