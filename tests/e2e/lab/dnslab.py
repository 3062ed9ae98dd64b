"""The DNSSEC lab: a real authoritative server (NSD) serving zones signed at
set-up with ldns-signzone, under the lab's own trust anchor for the TLD
"test.", and two Unbound resolvers in front of it: one validating (with the
lab's anchor) and one that does not validate.

Addresses (loopback only):
  127.53.0.1:53  NSD, authoritative for test. and every lab zone
  127.53.0.2:53  Unbound, validating, trust anchor = the lab's test. key
  127.53.0.3:53  Unbound, not validating ("iterator" only)
  127.0.4.1      mta-sts.* of the sts-*.test domains (lab/stsweb.py serves
                 their policies; the tests start it), MX hosts 127.0.5.x

The zones (see ZONES below) cover: secure (NSEC and NSEC3), insecure (no DS),
bogus (bad RRSIG, expired RRSIGs, DS that does not match), null MX, no MX
(address only), CNAME'd MX hosts (secure and partly insecure), TLSA records of
every usage, selector and matching type, a bogus TLSA RRset, and a lame
delegation (its server, 127.53.0.9, a thread here, REFUSES: SERVFAIL), and
the MTA-STS domains (STS below: policies in each mode, broken ones, DANE and
MTA-STS together). Every server is started and stopped by its PID.

By hand:  python3 tests/e2e/lab/dnslab.py   (builds, starts, waits for Enter)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from pki import Pki  # noqa: E402

NSD = "127.53.0.1"
RESOLVER = "127.53.0.2"
PLAIN_RESOLVER = "127.53.0.3"
LAME_NS = "127.53.0.9"  # answers REFUSED to everything: a lame delegation
# Unbound's cap on a server's retransmit timeout, ms (see _write_configs).
UNBOUND_MAX_RTT_MS = int(os.environ.get("DANERELAY_LAB_MAX_RTT_MS", "2000"))

# MX host addresses (the lab's receiving MTAs listen here in delivery tests).
HOSTS = {
    "mx1.secure.test": "127.0.1.1",
    "mx2.secure.test": "127.0.1.2",
    "mx1.nsec3.test": "127.0.1.3",
    "mx.insecure.test": "127.0.2.1",
    "mx.bogus.test": "127.0.2.2",
    "mx.expired.test": "127.0.2.3",
    "mx.dsmismatch.test": "127.0.2.4",
    "nomx.test": "127.0.3.1",
    "mx.bogustlsa.test": "127.0.3.2",
    "mx.usage01.test": "127.0.3.3",
    "mx.badlen.test": "127.0.3.4",
    "mx.notlsa.test": "127.0.3.5",
    "mx.child.optout.test": "127.0.2.5",
    # The attacker's MX host: in no lab zone; forger.py answers for
    # evil.example. itself (unsigned, outside the anchor test.). An MTA may
    # listen here to show that nothing ever reaches it.
    "mx.evil.example": "127.0.2.66",
}

# MTA-STS (RFC 8461) lab: the HTTPS server for every mta-sts.DOMAIN name
# (lab/stsweb.py; every such name has an A record here), and the MX hosts of
# the sts-*.test domains (in HOSTS, so each has a lab certificate).
STS_WEB = "127.0.4.1"
STS_MX = {
    "mx.sts-enforce.test": "127.0.5.1",
    "mx2.sts-enforce.test": "127.0.5.2",  # preferred (MX 5) but not in the policy
    "mx.sts-nomatch.test": "127.0.5.3",
    "mx.sts-wild.test": "127.0.5.4",
    "mx.sts-testing.test": "127.0.5.5",
    "mx.sts-badcert.test": "127.0.5.6",
    "mx.sts-dane.test": "127.0.5.7",
    "mx.sts-danefail.test": "127.0.5.8",
    "mx.sts-syntax.test": "127.0.5.9",
    "mx.sts-ctype.test": "127.0.5.10",
    "mx.sts-expired.test": "127.0.5.11",
    "mx.sts-wrongname.test": "127.0.5.12",
    "mx.sts-redirect.test": "127.0.5.13",
    "mx.sts-big.test": "127.0.5.14",
    "mx.sts-none.test": "127.0.5.15",
    "mx.sts-notxt.test": "127.0.5.16",
}
HOSTS.update(STS_MX)


def sts_policy(mode, *mx, max_age=86400):
    """An RFC 8461 3.2 policy body (CRLF lines)."""
    return ("version: STSv1\r\n" + f"mode: {mode}\r\n" + "".join(f"mx: {m}\r\n" for m in mx)
            + f"max_age: {max_age}\r\n")


# What each MTA-STS lab domain publishes. txt: its _mta-sts TXT record (None:
# none); mx: its MX RRset; signed: signed with a DS in test. (DANE); site:
# what https://mta-sts.DOMAIN/.well-known/mta-sts.txt answers (lab/stsweb.py):
# body, ctype (default text/plain), status (default 200), location, cert
# ("own": a lab leaf for mta-sts.DOMAIN; "expired"; "wrongname": a lab leaf
# for mta-sts.elsewhere.test), delay (seconds before answering).
# The broken sites serve bodies that would otherwise be valid, enforced
# policies matching the MX: a relay that took them would log sts=enforced.
_BIG_PAD = "".join(f"pad{i}: {'a' * 60}\r\n" for i in range(1100))  # ~75 KiB of extensions
STS = {
    "sts-enforce.test": {"mx": [(10, "mx"), (5, "mx2")],
                         "site": {"body": sts_policy("enforce", "mx.sts-enforce.test")}},
    "sts-nomatch.test": {"site": {"body": sts_policy("enforce", "*.elsewhere.test")}},
    "sts-wild.test": {"site": {"body": sts_policy("enforce", "*.sts-wild.test")}},
    "sts-testing.test": {"site": {"body": sts_policy("testing", "*.elsewhere.test")}},
    "sts-badcert.test": {"site": {"body": sts_policy("enforce", "mx.sts-badcert.test")}},
    "sts-dane.test": {"signed": True,
                      "site": {"body": sts_policy("enforce", "*.elsewhere.test")}},
    "sts-danefail.test": {"signed": True,
                          "site": {"body": sts_policy("enforce", "mx.sts-danefail.test")}},
    "sts-syntax.test": {"site": {"body": "version: STSv1\r\nmode: sometimes\r\n"
                                         "mx: mx.sts-syntax.test\r\nmax_age: 86400\r\n"}},
    "sts-ctype.test": {"site": {"body": sts_policy("enforce", "mx.sts-ctype.test"),
                                "ctype": "text/html"}},
    "sts-expired.test": {"site": {"body": sts_policy("enforce", "mx.sts-expired.test"),
                                  "cert": "expired"}},
    "sts-wrongname.test": {"site": {"body": sts_policy("enforce", "mx.sts-wrongname.test"),
                                    "cert": "wrongname"}},
    # followed, the redirect would give sts-enforce.test's policy: mx not matching
    "sts-redirect.test": {"site": {"status": 302, "body": "moved\r\n", "location":
                                   "https://mta-sts.sts-enforce.test/.well-known/mta-sts.txt"}},
    "sts-big.test": {"site": {"body": sts_policy("enforce", "mx.sts-big.test") + _BIG_PAD}},
    "sts-none.test": {"site": {"body": sts_policy("none", "*.elsewhere.test")}},
    # a policy served, but no TXT record: never to be fetched (RFC 8461 3.3)
    "sts-notxt.test": {"txt": None,
                       "site": {"body": sts_policy("enforce", "*.elsewhere.test")}},
}
for _d, _spec in STS.items():
    _spec.setdefault("mx", [(10, "mx")])
    _spec.setdefault("txt", f"v=STSv1; id=lab{_d.split('.')[0].replace('-', '')}1")


def _run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, timeout=120, **kw)


class DnsLab:
    def __init__(self, directory=None, dest_wildcard=False):
        """dest_wildcard: also serve dest.test (benchmarks), where any name
        dN.dest.test is a DANE-secure destination of its own through a
        signed wildcard (see _dest_zone)."""
        self.dest_wildcard = dest_wildcard
        self.dir = directory or tempfile.mkdtemp(prefix="danerelay-dnslab-")
        os.chmod(self.dir, 0o755)
        self.zones_dir = os.path.join(self.dir, "zones")
        os.makedirs(self.zones_dir, exist_ok=True)
        self.pki = Pki(os.path.join(self.dir, "pki"))
        self.certs = {}
        self.procs = {}
        self.anchor = os.path.join(self.dir, "test.anchor")

    # ------------------------------------------------------------ zones

    def _keys(self, zone, nsec3=False):
        algo = "ECDSAP256SHA256"
        ksk = _run("ldns-keygen", "-a", algo, "-k", zone, cwd=self.zones_dir).stdout.decode().strip()
        zsk = _run("ldns-keygen", "-a", algo, zone, cwd=self.zones_dir).stdout.decode().strip()
        return ksk, zsk

    def _ds(self, key_base):
        return _run("ldns-key2ds", "-n", "-2", key_base + ".key",
                    cwd=self.zones_dir).stdout.decode().strip()

    def _write_zone(self, zone, records, sign=True, nsec3=False, expired=False, dnskey=None,
                    optout=False):
        base = os.path.join(self.zones_dir, zone.rstrip(".") or "root")
        body = [f"$ORIGIN {zone}", "$TTL 300",
                f"@ IN SOA ns.test. hostmaster.test. {int(time.time()) % 2**31} 3600 600 86400 60",
                "@ IN NS ns.test."] + records
        with open(base + ".zone", "w") as f:
            f.write("\n".join(body) + "\n")
        if not sign:
            shutil.copy(base + ".zone", base + ".signed")
            return None
        if optout:
            return self._sign_optout(zone, base)
        ksk, zsk = dnskey or self._keys(zone)
        args = ["ldns-signzone", "-o", zone, "-f", base + ".signed"]
        if nsec3:
            args += ["-n", "-s", "abcd", "-t", "1"]
        if expired:
            args += ["-i", "20200101000000", "-e", "20200201000000"]
        args += [base + ".zone", ksk, zsk]
        _run(*args, cwd=self.zones_dir)
        return ksk

    def _sign_optout(self, zone, base):
        """NSEC3 with opt-out, signed by BIND's dnssec-signzone: unlike
        ldns-signzone -p, it leaves unsigned delegations out of the chain, so
        they lie in an opt-out span (RFC 5155 6). Returns the KSK for _ds()."""
        keydir = os.path.join(self.zones_dir, "bind-" + zone.rstrip("."))
        os.makedirs(keydir, exist_ok=True)
        ksk = _run("dnssec-keygen", "-q", "-K", keydir, "-a", "ECDSAP256SHA256", "-f", "KSK",
                   zone).stdout.decode().strip()
        _run("dnssec-keygen", "-q", "-K", keydir, "-a", "ECDSAP256SHA256", zone)
        _run("dnssec-signzone", "-q", "-3", "abcd", "-H", "1", "-A", "-S", "-K", keydir,
             "-o", zone, "-f", base + ".signed", base + ".zone", cwd=self.zones_dir)
        return os.path.join(keydir, ksk)

    def _corrupt_rrsig(self, zone, covered_type, owner_prefix):
        """Flip one character in the signature of an RRSIG over covered_type."""
        path = os.path.join(self.zones_dir, zone.rstrip(".") + ".signed")
        with open(path) as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            parts = line.split()
            if (len(parts) > 5 and parts[3] == "RRSIG" and parts[4] == covered_type
                    and parts[0].startswith(owner_prefix)):
                sig = parts[-1]
                flipped = ("A" if sig[5] != "A" else "B")
                parts[-1] = sig[:5] + flipped + sig[6:]
                lines[i] = "\t".join(parts)
                break
        else:
            raise RuntimeError(f"no RRSIG {covered_type} at {owner_prefix} in {zone}")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _host_records(self, host, zone):
        rel = host[: -len(zone) - 1] if host != zone.rstrip(".") else "@"
        return [f"{rel} IN A {HOSTS[host]}"]

    def _tlsa_owner(self, host, zone):
        rel = host[: -len(zone) - 1] if host != zone.rstrip(".") else ""
        return f"_25._tcp.{rel}".rstrip(".") if rel else "_25._tcp"

    def build(self):
        pki = self.pki
        for host in HOSTS:
            self.certs[host] = pki.leaf(host.replace(".", "_"), [host])
        tlsa = Pki.tlsa
        ds = {}

        def secure_zone(zone, records, **kw):
            ksk = self._write_zone(zone, records, **kw)
            ds[zone] = self._ds(ksk)

        mx1, mx2 = self.certs["mx1.secure.test"]["crt"], self.certs["mx2.secure.test"]["crt"]
        secure_zone("secure.test.", [
            "@ IN MX 10 mx1", "@ IN MX 20 mx2",
            *self._host_records("mx1.secure.test", "secure.test"),
            *self._host_records("mx2.secure.test", "secure.test"),
            f"_25._tcp.mx1 IN TLSA {tlsa(mx1, 3, 1, 1)}",
            f"_25._tcp.mx1 IN TLSA {tlsa(mx1, 3, 0, 1)}",
            f"_25._tcp.mx1 IN TLSA {tlsa(mx1, 3, 1, 2)}",
            f"_25._tcp.mx2 IN TLSA {tlsa(pki.intermediate['crt'], 2, 0, 1)}",
            f"_25._tcp.mx2 IN TLSA {tlsa(pki.intermediate['crt'], 2, 1, 1)}",
            f"_25._tcp.mx2 IN TLSA {tlsa(pki.intermediate['crt'], 2, 0, 0)}",
            "*.wild IN MX 10 mx1",
        ])
        n3 = self.certs["mx1.nsec3.test"]["crt"]
        secure_zone("nsec3.test.", [
            "@ IN MX 10 mx1", *self._host_records("mx1.nsec3.test", "nsec3.test"),
            f"_25._tcp.mx1 IN TLSA {tlsa(n3, 3, 1, 1)}",
            "*.wild IN MX 10 mx1",
        ], nsec3=True)
        # optout: NSEC3 with opt-out, and an unsigned delegation (no DS) that
        # only the opt-out span covers
        secure_zone("optout.test.", [
            "@ IN MX 10 mx.child", "child IN NS ns.test.",
        ], nsec3=True, optout=True)
        self._write_zone("child.optout.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.child.optout.test", "child.optout.test"),
        ], sign=False)
        self._write_zone("insecure.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.insecure.test", "insecure.test"),
        ], sign=False)
        secure_zone("bogus.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.bogus.test", "bogus.test"),
        ])
        self._corrupt_rrsig("bogus.test.", "MX", "bogus.test.")
        secure_zone("expired.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.expired.test", "expired.test"),
        ], expired=True)
        # dsmismatch: signed with one key, the parent publishes the DS of another
        self._write_zone("dsmismatch.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.dsmismatch.test", "dsmismatch.test"),
        ])
        other_ksk, _ = self._keys("dsmismatch.test.")
        ds["dsmismatch.test."] = self._ds(other_ksk)
        secure_zone("nullmx.test.", ["@ IN MX 0 ."])
        nomx = self.certs["nomx.test"]["crt"]
        secure_zone("nomx.test.", [
            *self._host_records("nomx.test", "nomx.test"),
            f"_25._tcp IN TLSA {tlsa(nomx, 3, 1, 1)}",
        ])
        secure_zone("cname.test.", [
            "@ IN MX 10 mail",
            "mail IN CNAME mx1.secure.test.",
            "partial IN MX 10 mail2",
            "mail2 IN CNAME mx.insecure.test.",
        ])
        bt = self.certs["mx.bogustlsa.test"]["crt"]
        secure_zone("bogustlsa.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.bogustlsa.test", "bogustlsa.test"),
            f"_25._tcp.mx IN TLSA {tlsa(bt, 3, 1, 1)}",
        ])
        self._corrupt_rrsig("bogustlsa.test.", "TLSA", "_25._tcp.mx.bogustlsa.test.")
        u01 = self.certs["mx.usage01.test"]["crt"]
        secure_zone("usage01.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.usage01.test", "usage01.test"),
            f"_25._tcp.mx IN TLSA {tlsa(u01, 1, 1, 1)}",
            f"_25._tcp.mx IN TLSA {tlsa(pki.ca['crt'], 0, 0, 1)}",
        ])
        bl = self.certs["mx.badlen.test"]["crt"]
        secure_zone("badlen.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.badlen.test", "badlen.test"),
            f"_25._tcp.mx IN TLSA 3 1 1 {tlsa(bl, 3, 1, 1).split()[-1][:40]}",
            f"_25._tcp.mx IN TLSA 3 1 2 {tlsa(bl, 3, 1, 1).split()[-1]}",
        ])
        secure_zone("notlsa.test.", [
            "@ IN MX 10 mx", *self._host_records("mx.notlsa.test", "notlsa.test"),
        ])
        if self.dest_wildcard:
            self._dest_zone(secure_zone)
        self._sts_zones(secure_zone)
        self.child_zones = ["notlsa.test.", "secure.test.", "nsec3.test.", "insecure.test.", "bogus.test.",
                            "expired.test.", "dsmismatch.test.", "nullmx.test.", "nomx.test.",
                            "cname.test.", "bogustlsa.test.", "usage01.test.", "badlen.test.",
                            "optout.test.", "child.optout.test."]
        self.child_zones += [d + "." for d in STS]
        if self.dest_wildcard:
            self.child_zones.append("dest.test.")
        # The TLD: delegations, DS for the secure children, a lame delegation.
        # lame.test: delegated to an address where no server listens (SERVFAIL)
        records = ["ns IN A " + NSD, "lame IN NS ns.lame", "ns.lame IN A " + LAME_NS]
        for z in self.child_zones:
            if z.count(".") > 2:
                continue  # delegated by its own parent, not by test.
            records.append(f"{z} IN NS ns.test.")
            if z in ds:
                records.append(ds[z])
        tld_ksk = self._write_zone("test.", records)
        with open(self.anchor, "w") as f:
            f.write(self._ds(tld_ksk) + "\n")
        self._write_configs()
        return self

    def _sts_zones(self, secure_zone):
        """The MTA-STS domains (STS above): MX, _mta-sts TXT, mta-sts A at
        STS_WEB; the signed ones with TLSA 3 1 1 (sts-dane.test: of its MX's
        certificate; sts-danefail.test: of another's). Certificates for the
        HTTPS server in self.sts_certs, its configuration in sts-web.json."""
        for domain, spec in STS.items():
            zone = domain + "."
            records = [f"@ IN MX {pref} {rel}" for pref, rel in spec["mx"]]
            for _, rel in spec["mx"]:
                records += self._host_records(f"{rel}.{domain}", domain)
            if spec["txt"] is not None:
                records.append(f'_mta-sts IN TXT "{spec["txt"]}"')
            records.append(f"mta-sts IN A {STS_WEB}")
            if domain == "sts-dane.test":
                crt = self.certs["mx.sts-dane.test"]["crt"]
                records.append(f"_25._tcp.mx IN TLSA {Pki.tlsa(crt, 3, 1, 1)}")
            elif domain == "sts-danefail.test":
                crt = self.certs["mx.insecure.test"]["crt"]  # not what mx presents
                records.append(f"_25._tcp.mx IN TLSA {Pki.tlsa(crt, 3, 1, 1)}")
            if spec.get("signed"):
                secure_zone(zone, records)
            else:
                self._write_zone(zone, records, sign=False)
        pki = self.pki
        self.sts_certs = {
            "expired": pki.leaf("mta-sts_expired", ["mta-sts.sts-expired.test"], expired=True),
            "wrongname": pki.leaf("mta-sts_wrongname", ["mta-sts.elsewhere.test"]),
        }
        sites = {}
        for domain, spec in STS.items():
            name = "mta-sts." + domain
            site = dict(spec["site"])
            kind = site.pop("cert", "own")
            if kind == "own":
                self.sts_certs[name] = pki.leaf(name.replace(".", "_"), [name])
                cert = self.sts_certs[name]
            else:
                cert = self.sts_certs[kind]
            sites[name] = {**site, "cert": {"chain": cert["chain"], "key": cert["key"]}}
        # The lab's CA for MTA-STS (policy fetches and MX certificates): the root.
        self.ca_file = os.path.join(self.dir, "lab-ca.pem")
        shutil.copy(pki.ca["crt"], self.ca_file)
        self.sts_web_config = os.path.join(self.dir, "sts-web.json")
        with open(self.sts_web_config, "w") as f:
            json.dump({"address": STS_WEB, "sites": sites,
                       "default_cert": {"chain": self.sts_certs["wrongname"]["chain"],
                                        "key": self.sts_certs["wrongname"]["key"]}}, f, indent=1)

    def relay_mta_sts(self, port=443, fetch_timeout=60):
        """The relay's "mta_sts" configuration for this lab."""
        return {"enabled": True, "trust_store": self.ca_file, "port": port,
                "fetch_timeout": fetch_timeout}

    def _dest_zone(self, secure_zone):
        """dest.test, signed (NSEC): every dN.dest.test has no MX (a NODATA
        proved through the wildcard), so it is its own MX host (RFC 5321
        5.1), with an address and a TLSA RRset at _25._tcp.dN.dest.test, all
        synthesised from *.dest.test: each domain costs its own MX, A, AAAA
        and TLSA lookups and validations, nothing shared but the zone's keys.
        The address is mx1.secure.test's and the TLSA 3 1 1 is its
        certificate's, so whatever listens for mx1 receives for all of them."""
        mx1 = self.certs["mx1.secure.test"]["crt"]
        secure_zone("dest.test.", [
            f"* IN A {HOSTS['mx1.secure.test']}",
            f"* IN TLSA {Pki.tlsa(mx1, 3, 1, 1)}",
        ])

    # ------------------------------------------------------------ servers

    def _write_configs(self):
        d = self.dir
        zones = "".join(
            f"zone:\n\tname: \"{z}\"\n\tzonefile: \"{os.path.join(self.zones_dir, z.rstrip('.'))}.signed\"\n"
            for z in ["test."] + self.child_zones)
        # NSD's response rate limiting puts every answer synthesised from one
        # wildcard in one bucket (200 a second by default): thousands of
        # dN.dest.test names would be dropped into SERVFAILs. Off for it.
        rrl = "\trrl-ratelimit: 0\n\trrl-whitelist-ratelimit: 0\n" if self.dest_wildcard else ""
        with open(os.path.join(d, "nsd.conf"), "w") as f:
            f.write(f"""server:
{rrl}\tip-address: {NSD}
\tport: 53
\tusername: ""
\tchroot: ""
\tdatabase: ""
\tzonelistfile: "{d}/zone.list"
\txfrdfile: "{d}/xfrd.state"
\tpidfile: "{d}/nsd.pid"
\tlogfile: "{d}/nsd.log"
\tserver-count: 1
\thide-version: yes
\tverbosity: 1
remote-control:
\tcontrol-enable: no
{zones}""")
        for name, addr, validating in (("unbound", RESOLVER, True),
                                       ("unbound-plain", PLAIN_RESOLVER, False)):
            anchor = f'\ttrust-anchor-file: "{self.anchor}"\n' if validating else ""
            modules = "validator iterator" if validating else "iterator"
            with open(os.path.join(d, f"{name}.conf"), "w") as f:
                f.write(f"""server:
\tinterface: {addr}
\tport: 53
\taccess-control: 127.0.0.0/8 allow
\tdo-not-query-localhost: no
\tdo-ip6: no
\tusername: ""
\tchroot: ""
\tdirectory: "{d}"
\tpidfile: "{d}/{name}.pid"
\tlogfile: "{d}/{name}.log"
\tuse-syslog: no
\tverbosity: 1
\tval-log-level: 2
\tnum-threads: 1
\tso-reuseport: no
\tqname-minimisation: no
\taggressive-nsec: no
\tprefetch: no
\tcache-max-ttl: 30
\tcache-max-negative-ttl: 5
\tinfra-host-ttl: 5
\tlocal-zone: "test." nodefault
\tmodule-config: "{modules}"
{anchor}\ttarget-fetch-policy: "0 0 0 0 0"
\t# Under load NSD may take a second to answer: that must not mark it
\t# down. Unbound takes a server whose retransmit timeout reaches
\t# infra-cache-max-rtt as down, for infra-host-ttl, and SERVFAILs every
\t# name under it meanwhile; at 300 ms one slow reply on a busy 2-core
\t# machine did that ("cannot fetch DS ...: rcode 2"). The lame delegation
\t# still fails fast: its address refuses (ICMP, udp-connect), no timeout.
\tinfra-cache-max-rtt: {UNBOUND_MAX_RTT_MS}
\tinfra-keep-probing: yes
\tudp-connect: yes
stub-zone:
\tname: "test."
\tstub-addr: {NSD}
remote-control:
\tcontrol-enable: no
""")

    def start(self):
        d = self.dir
        self._start_refuser()
        self._spawn("nsd", ["nsd", "-d", "-c", os.path.join(d, "nsd.conf")], NSD)
        self._spawn("unbound", ["unbound", "-d", "-c", os.path.join(d, "unbound.conf")], RESOLVER)
        self._spawn("unbound-plain", ["unbound", "-d", "-c", os.path.join(d, "unbound-plain.conf")],
                    PLAIN_RESOLVER)
        return self

    def _start_refuser(self):
        """The lame delegation's "server": REFUSED to every query, at once, so
        the resolvers fail it fast (SERVFAIL) without any timeout."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LAME_NS, 53))
        sock.settimeout(0.2)
        self._refuser_sock = sock
        self._refuser_stop = threading.Event()

        def serve():
            while not self._refuser_stop.is_set():
                try:
                    q, peer = sock.recvfrom(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if len(q) < 12:
                    continue
                i = 12
                while i < len(q) and q[i] != 0:  # the question's name, uncompressed
                    i += 1 + q[i]
                end = i + 5  # root label, QTYPE, QCLASS
                if end > len(q):
                    continue
                flags = bytes([0x80 | (q[2] & 0x79), 0x05])  # QR, opcode and RD kept; REFUSED
                reply = q[:2] + flags + b"\x00\x01" + b"\x00" * 6 + q[12:end]
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

        self._refuser = threading.Thread(target=serve, daemon=True)
        self._refuser.start()

    def _spawn(self, name, cmd, addr):
        log = open(os.path.join(self.dir, f"{name}.stderr"), "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = (proc, log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start: " + self.read(f"{name}.stderr"))
            if self._answers(addr):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer on {addr}:53 within 20 s")

    @staticmethod
    def _answers(addr):
        # A tiny SOA query for "test." over UDP; any reply means it is up.
        q = bytes.fromhex("abcd01000001000000000000") + b"\x04test\x00" + b"\x00\x06\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            try:
                s.sendto(q, (addr, 53))
                return len(s.recv(4096)) >= 12
            except OSError:
                return False

    def relay_dns(self, validation="local"):
        """The relay's "dns" configuration for this lab. local: validate
        in-process from the lab's anchor, behind the resolver that does not
        validate; resolver: believe the validating Unbound's AD bit."""
        common = {"probe_secure_name": "secure.test", "probe_bogus_name": "dsmismatch.test",
                  "timeout_ms": 3000}
        if validation == "local":
            return {"resolvers": [PLAIN_RESOLVER], "validation": "local",
                    "trust_anchor": self.anchor, **common}
        return {"resolvers": [RESOLVER], "validation": "resolver", **common}

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if getattr(self, "_refuser", None):
            self._refuser_stop.set()
            self._refuser.join(timeout=5)
            self._refuser_sock.close()
            self._refuser = None
        for name, (proc, log) in list(self.procs.items()):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            log.close()
        self.procs.clear()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    lab = DnsLab().build().start()
    print(f"lab up in {lab.dir}: NSD {NSD}, validating Unbound {RESOLVER}, "
          f"plain Unbound {PLAIN_RESOLVER}. Try: drill -D MX secure.test @{RESOLVER}")
    try:
        input("Enter stops the lab. ")
    finally:
        lab.cleanup()
