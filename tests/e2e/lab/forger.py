"""An on-path DNS attacker for the lab: a UDP proxy that passes queries to a
resolver and forges chosen answers, to prove that local DNSSEC validation
calls a forged denial bogus, not absent.

    python3 forger.py LISTEN_IP UPSTREAM_IP QNAME[/TYPE]=DECOY ...

A query for QNAME (of TYPE, a number or one of A MX DS TLSA; any type
without it) is sent upstream as DECOY instead (a name of the
same label lengths that does not exist, so the upstream answer is a real,
correctly signed NXDOMAIN for DECOY); the reply gets QNAME back in its
question and rcode NOERROR: a NODATA claim for QNAME whose NSEC/NSEC3 proof is
genuine but proves something else. QNAME[/TYPE]=- drops the query instead
(a key server that never answers). Every other query passes untouched.
Loopback only; one datagram at a time, each upstream wait bounded (2 s); the
test starts and stops it by PID.
"""
import socket
import struct
import sys

TYPES = {"A": 1, "MX": 15, "DS": 43, "DNSKEY": 48, "TLSA": 52}


def encode(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def main():
    listen, upstream = sys.argv[1], sys.argv[2]
    swaps = {}
    for arg in sys.argv[3:]:
        real, decoy = arg.split("=")
        real, _, qtype = real.partition("/")
        qtype = int(TYPES.get(qtype, qtype)) if qtype else None
        if decoy == "-":
            swaps[(encode(real.lower()), qtype)] = None
            continue
        r, d = encode(real.lower()), encode(decoy.lower())
        assert len(r) == len(d) and [len(x) for x in real.split(".")] == \
            [len(x) for x in decoy.split(".")], "the decoy must have the same label lengths"
        swaps[(r, qtype)] = d
    assert listen.startswith("127.") and upstream.startswith("127."), "loopback only"
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((listen, 53))
    while True:
        query, client = srv.recvfrom(4096)
        if len(query) < 12:
            continue
        end = query.find(b"\x00", 12) + 1
        qname = query[12:end]  # as asked, case and all
        if end == 0 or len(query) < end + 2:
            continue
        qtype = struct.unpack("!H", query[end:end + 2])[0]
        key = (qname.lower(), qtype) if (qname.lower(), qtype) in swaps else (qname.lower(), None)
        if key in swaps and swaps[key] is None:
            continue  # dropped: the asker times out
        decoy = swaps.get(key)
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
        srv.sendto(reply, client)


if __name__ == "__main__":
    main()
