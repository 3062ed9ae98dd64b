"""A tiny scripted SMTP server for the lab: stands on an MX host's loopback
address (port 25) and answers as a test tells it to, to play the hostile or
odd receiving MTA that a real Postfix will not be. It records every command
it reads and, after STARTTLS, the SNI name the client sent.

    stub = SmtpStub("127.0.1.1", greeting="554 go away").start()
    ...
    stub.stop(); stub.commands, stub.sni

replies: {"EHLO": "550 no", "MAIL": ..., "RCPT": ..., "DATA": ..., ".": ...}
override the defaults (a multi-line reply is a list of lines). cert: a lab
PKI entry {"key", "chain"} to offer STARTTLS with; without it, no STARTTLS.
tls_extensions: EHLO keywords offered only after STARTTLS (["REQUIRETLS"]).
Threads only; stop() closes the listener and every connection.
"""
import socket
import ssl
import threading


class SmtpStub:
    def __init__(self, address, port=25, greeting="220 stub.test ESMTP", replies=None, cert=None,
                 name="stub.test", tls_extensions=()):
        self.address, self.port = address, port
        self.greeting = greeting
        self.replies = replies or {}
        self.cert = cert
        self.name = name
        self.tls_extensions = list(tls_extensions)
        self.commands = []  # (connection number, line)
        self.sni = []  # server names sent by clients (None: no SNI)
        self.connections = 0
        self.messages = 0
        self._stop = threading.Event()
        self._threads = []
        self._socks = []
        self._lock = threading.Lock()

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.address, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._listener = s
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            for c in self._socks:
                try:
                    c.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=5)
        self._listener.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                n = self.connections
                self._socks.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, n), daemon=True)
            t.start()
            self._threads.append(t)

    def _reply(self, f, key, default):
        r = self.replies.get(key, default)
        lines = r if isinstance(r, list) else [r]
        out = "".join(f"{l[:3]}-{l[4:]}\r\n" for l in lines[:-1]) + lines[-1] + "\r\n"
        f.write(out.encode())
        f.flush()
        return lines[-1][:1]

    def _serve(self, conn, n):
        conn.settimeout(30)
        try:
            f = conn.makefile("rwb")
            if self._reply(f, "greeting", self.greeting) != "2":
                # a refusing server still reads what comes and answers 503 (RFC 5321 3.1)
                for line in f:
                    self.commands.append((n, line.decode(errors="replace").rstrip()))
                    cmd = line.decode(errors="replace").strip().upper()
                    f.write(b"221 bye\r\n" if cmd == "QUIT" else b"503 5.5.1 go away\r\n")
                    f.flush()
                    if cmd == "QUIT":
                        return
                return
            tls = False
            while True:
                line = f.readline()
                if not line:
                    return
                text = line.decode(errors="replace").rstrip("\r\n")
                self.commands.append((n, text))
                verb = text.split(" ", 1)[0].split(":", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    ext = ["250-" + self.name, "250-PIPELINING"]
                    if self.cert and not tls:
                        ext.append("250-STARTTLS")
                    if tls:
                        ext += ["250-" + e for e in self.tls_extensions]
                    ext.append("250 8BITMIME")
                    self._reply(f, verb, ext if verb == "EHLO" else "250 " + self.name)
                elif verb == "STARTTLS" and self.cert and not tls:
                    f.write(b"220 2.0.0 go ahead\r\n")
                    f.flush()
                    conn, f = self._starttls(conn)
                    tls = True
                elif verb == "MAIL":
                    self._reply(f, "MAIL", "250 2.1.0 ok")
                elif verb == "RCPT":
                    self._reply(f, "RCPT", "250 2.1.5 ok")
                elif verb == "DATA":
                    if self._reply(f, "DATA", "354 go ahead") != "3":
                        continue
                    for body in f:
                        if body in (b".\r\n", b".\n"):
                            break
                    with self._lock:
                        self.messages += 1
                    self._reply(f, ".", "250 2.0.0 stored")
                elif verb == "QUIT":
                    f.write(b"221 2.0.0 bye\r\n")
                    f.flush()
                    return
                else:
                    f.write(b"250 2.0.0 ok\r\n" if verb in ("RSET", "NOOP") else
                            b"502 5.5.2 not here\r\n")
                    f.flush()
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _starttls(self, conn):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert["chain"], self.cert["key"])
        seen = []

        def on_sni(sock, server_name, context):
            seen.append(server_name)

        ctx.sni_callback = on_sni
        tconn = ctx.wrap_socket(conn, server_side=True)
        self.sni.append(seen[0] if seen else None)
        with self._lock:
            self._socks.append(tconn)
        return tconn, tconn.makefile("rwb")
