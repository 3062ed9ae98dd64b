"""An on-path DNS attacker for the lab: a UDP proxy that passes queries to a
resolver and forges chosen answers, to prove that DNSSEC validation (local,
or a validating resolver's AD bit) calls a forgery bogus, never data.

    python3 forger.py LISTEN_IP UPSTREAM_IP QNAME[/TYPE]=ACTION ...

QNAME[/TYPE] picks the queries (of TYPE, a number or one of A AAAA MX DS
DNSKEY TLSA CNAME; any type without it); ACTION is one of:

  DECOY   the query is sent upstream as DECOY instead (a name of the same
          label lengths that does not exist, so the upstream answer is a
          real, correctly signed NXDOMAIN for DECOY); the reply gets QNAME
          back in its question and rcode NOERROR: a NODATA claim for QNAME
          whose NSEC/NSEC3 proof is genuine but proves something else.
  -       the query is dropped (a key server that never answers).
  +cname  the query goes upstream untouched; to the genuine (signed) answer
          section are appended an unsigned CNAME at QNAME to the attacker's
          name evil.example. and, at that name, the attacker's record of the
          query's type (below): a CNAME beside the signed data.
  +ch     the query goes upstream untouched; to the genuine answer section
          is appended the attacker's record of QNAME and the query's type in
          class CH (3): records beside the answer that no signature covers.

The attacker's records: A 127.0.2.66 (ATTACKER_ADDRESS), AAAA
::ffff:127.0.2.66 (the same host, IPv4-mapped), MX 0 mx.evil.example., TLSA
3 1 1 and 32 zero octets. The appended records carry uncompressed
names; ANCOUNT is fixed, and compression pointers in the authority and
additional sections that point past the insertion are moved with it.

Names at or under evil.example. (the attacker's own domain) are answered by
the forger itself, never sent upstream: A 127.0.2.66 for any of them (the
attacker's MX host mx.evil.example), NODATA for other types; unsigned, and
outside the lab's trust anchor test., so insecure. Every other query passes
untouched. Loopback only; one datagram at a time, each upstream wait bounded
(2 s); the test starts and stops it by PID.
"""
import os
import select
import signal
import socket
import struct
import subprocess
import sys

TYPES = {"A": 1, "CNAME": 5, "MX": 15, "AAAA": 28, "DS": 43, "DNSKEY": 48, "TLSA": 52}
CLASS_CH = 3
ATTACKER_DOMAIN = "evil.example."
ATTACKER_MX = "mx.evil.example."
ATTACKER_ADDRESS = "127.0.2.66"
ACTIONS = ("+cname", "+ch")


def encode(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def attacker_rdata(qtype):
    """The attacker's record data for qtype, or None for a type it has none of."""
    if qtype == TYPES["A"]:
        return socket.inet_aton(ATTACKER_ADDRESS)
    if qtype == TYPES["AAAA"]:
        return socket.inet_pton(socket.AF_INET6, "::ffff:" + ATTACKER_ADDRESS)
    if qtype == TYPES["MX"]:
        return struct.pack("!H", 0) + encode(ATTACKER_MX)
    if qtype == TYPES["TLSA"]:
        return bytes([3, 1, 1]) + b"\x00" * 32
    return None


def rr(owner, qtype, rclass, rdata, ttl=300):
    """One resource record, owner uncompressed (wire form)."""
    return owner + struct.pack("!HHIH", qtype, rclass, ttl, len(rdata)) + rdata


def skip_name(buf, i):
    """Offset after the (possibly compressed) name at i."""
    while True:
        n = buf[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def move_pointers(buf, i, at, delta):
    """Move every compression pointer of the name at i that points at or past
    `at` by delta (buf is a bytearray); returns the offset after the name."""
    while True:
        n = buf[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            target = struct.unpack("!H", buf[i:i + 2])[0] & 0x3FFF
            if target >= at:
                buf[i:i + 2] = struct.pack("!H", 0xC000 | (target + delta))
            return i + 2
        i += 1 + n


def append_to_answer(reply, records):
    """reply with `records` (wire RRs) appended to its answer section."""
    qd, an, ns, ar = struct.unpack("!HHHH", reply[4:12])
    i = 12
    for _ in range(qd):
        i = skip_name(reply, i) + 4
    for _ in range(an):
        i = skip_name(reply, i)
        i += 10 + struct.unpack("!H", reply[i + 8:i + 10])[0]
    at, extra = i, b"".join(records)
    out = bytearray(reply[:at] + extra + reply[at:])
    out[6:8] = struct.pack("!H", an + len(records))
    # Names in the authority and additional sections may point into
    # themselves (past the insertion): move those pointers with the bytes.
    j = at + len(extra)
    for _ in range(ns + ar):
        j = move_pointers(out, j, at, len(extra))
        rtype, _, _, rdlen = struct.unpack("!HHIH", out[j:j + 10])
        rd = j + 10
        if rtype in (2, 5, 12):  # NS, CNAME, PTR
            move_pointers(out, rd, at, len(extra))
        elif rtype == 15:  # MX
            move_pointers(out, rd + 2, at, len(extra))
        elif rtype == 6:  # SOA: MNAME, RNAME
            move_pointers(out, move_pointers(out, rd, at, len(extra)), at, len(extra))
        j = rd + rdlen
    return bytes(out)


def forge(action, reply, qname, qtype):
    """The genuine reply with the attacker's records appended (`action`)."""
    if len(reply) < 12 or reply[2] & 0x02:  # truncated: left alone
        return reply
    data = attacker_rdata(qtype)
    if action == "+cname":
        target = encode(ATTACKER_DOMAIN)
        records = [rr(qname, TYPES["CNAME"], 1, target)]
        if data is not None:
            records.append(rr(target, qtype, 1, data))
    else:
        records = [rr(qname, qtype, CLASS_CH, data)] if data is not None else []
    return append_to_answer(reply, records) if records else reply


def under(name, domain):
    """Is the wire name `name` at or below the wire name `domain`?"""
    i = 0
    while i < len(name) - len(domain):
        i += 1 + name[i]
    return name[i:] == domain


def own_answer(query, end, qtype):
    """The attacker's own server for evil.example.: A ATTACKER_ADDRESS, else NODATA."""
    flags = struct.pack("!H", 0x8080 | (struct.unpack("!H", query[2:4])[0] & 0x0100))
    question = query[12:end + 4]
    answers = [rr(b"\xc0\x0c", qtype, 1, socket.inet_aton(ATTACKER_ADDRESS))] if qtype == 1 else []
    return query[:2] + flags + struct.pack("!HHHH", 1, len(answers), 0, 0) + question + \
        b"".join(answers)


def main():
    listen, upstream = sys.argv[1], sys.argv[2]
    swaps = {}
    for arg in sys.argv[3:]:
        real, decoy = arg.split("=")
        real, _, qtype = real.partition("/")
        qtype = int(TYPES.get(qtype, qtype)) if qtype else None
        if decoy == "-" or decoy in ACTIONS:
            swaps[(encode(real.lower()), qtype)] = decoy
            continue
        assert not decoy.startswith("+"), "unknown action " + decoy
        r, d = encode(real.lower()), encode(decoy.lower())
        assert len(r) == len(d) and [len(x) for x in real.split(".")] == \
            [len(x) for x in decoy.split(".")], "the decoy must have the same label lengths"
        swaps[(r, qtype)] = d
    assert listen.startswith("127.") and upstream.startswith("127."), "loopback only"
    own = encode(ATTACKER_DOMAIN)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((listen, 53))
    # Bound: say so (start() waits for this line rather than guessing with a sleep).
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    while True:
        query, client = srv.recvfrom(4096)
        if len(query) < 12:
            continue
        end = query.find(b"\x00", 12) + 1
        qname = query[12:end]  # as asked, case and all
        if end == 0 or len(query) < end + 4:
            continue
        qtype = struct.unpack("!H", query[end:end + 2])[0]
        if under(qname.lower(), own):
            srv.sendto(own_answer(query, end, qtype), client)
            continue
        key = (qname.lower(), qtype) if (qname.lower(), qtype) in swaps else (qname.lower(), None)
        action = swaps.get(key)
        if key in swaps and action == "-":
            continue  # dropped: the asker times out
        decoy = action if isinstance(action, bytes) else None
        if decoy:
            query = query[:12] + decoy + query[12 + len(decoy):]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(2)
            try:
                up.sendto(query, (upstream, 53))
                reply = up.recv(65535)
            except OSError:
                continue
        if decoy and len(reply) > 12 + len(decoy):
            flags = bytearray(reply[2:4])
            flags[1] &= 0xF0  # rcode NOERROR: "the name exists, the type does not"
            reply = reply[:2] + bytes(flags) + reply[4:12] + qname + reply[12 + len(qname):]
        elif action in ACTIONS:
            try:
                reply = forge(action, reply, qname, qtype)
            except (IndexError, struct.error):
                pass  # a reply it cannot walk goes out as it came
        srv.sendto(reply, client)


def start(listen, upstream, *actions, timeout=15):
    """Starts a forger as a child process and returns it once it has bound
    its socket (it prints "ready"), at most `timeout` seconds; stop it by its PID."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), listen, upstream,
                             *actions], stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if line.strip() != b"ready":
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        raise RuntimeError(f"forger.py {listen} {' '.join(actions)} did not start")
    return proc


class Forger:
    """For the tests: a forger as a child process, stopped by its PID.

        with Forger("127.53.0.7", upstream, "secure.test/MX=+ch") as address: ...
    """

    def __init__(self, listen, upstream, *actions):
        self.listen, self.upstream, self.actions = listen, upstream, actions
        self.proc = None

    def __enter__(self):
        self.proc = start(self.listen, self.upstream, *self.actions)
        return self.listen

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        if self.proc:
            self.proc.wait(timeout=10)
        return False


if __name__ == "__main__":
    main()
