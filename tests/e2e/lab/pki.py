"""The lab's test PKI, made with GnuTLS's certtool: a root CA, an
intermediate CA, and leaf certificates for MX host names, plus the TLSA
association data (RFC 6698) of any of them."""
import hashlib
import os
import subprocess


def _run(*args):
    subprocess.run(list(args), check=True, capture_output=True, timeout=60)


class Pki:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca = self._self_signed("ca", "danerelay lab root CA")
        self.intermediate = self._signed("intermediate", "danerelay lab intermediate", self.ca,
                                         ca=True)

    def _path(self, name, ext):
        return os.path.join(self.dir, f"{name}.{ext}")

    def _key(self, name):
        key = self._path(name, "key")
        _run("certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", key)
        return key

    def _template(self, name, cn, ca=False, dns_names=(), days=365, expired=False):
        path = self._path(name, "tmpl")
        lines = [f'cn = "{cn}"', "serial = %d" % (abs(hash(name)) % 2**31)]
        if expired:
            lines += ['activation_date = "2020-01-01 00:00:00 UTC"',
                      'expiration_date = "2020-02-01 00:00:00 UTC"']
        else:
            lines.append(f"expiration_days = {days}")
        if ca:
            lines += ["ca", "cert_signing_key", "crl_signing_key"]
        else:
            lines += ["tls_www_server", "signing_key", "encryption_key"]
            lines += [f'dns_name = "{d}"' for d in dns_names]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _self_signed(self, name, cn):
        key = self._key(name)
        crt = self._path(name, "crt")
        _run("certtool", "--generate-self-signed", "--load-privkey", key, "--template",
             self._template(name, cn, ca=True), "--outfile", crt)
        return {"key": key, "crt": crt, "chain": crt}

    def _signed(self, name, cn, issuer, ca=False, dns_names=(), expired=False):
        key = self._key(name)
        crt = self._path(name, "crt")
        _run("certtool", "--generate-certificate", "--load-privkey", key,
             "--load-ca-certificate", issuer["crt"], "--load-ca-privkey", issuer["key"],
             "--template", self._template(name, cn, ca=ca, dns_names=dns_names, expired=expired),
             "--outfile", crt)
        chain = self._path(name, "chain.crt")
        with open(chain, "w") as out:
            for part in (crt, issuer["crt"]) if ca is False else (crt,):
                with open(part) as f:
                    out.write(f.read())
        return {"key": key, "crt": crt, "chain": chain}

    def leaf(self, name, dns_names, expired=False):
        """A server certificate issued by the intermediate; its chain file
        holds leaf + intermediate, as a server presents it."""
        return self._signed(name, dns_names[0], self.intermediate, dns_names=dns_names,
                            expired=expired)

    @staticmethod
    def cert_der(crt):
        return subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                              capture_output=True, timeout=30).stdout

    @staticmethod
    def spki_der(crt):
        pem = subprocess.run(["openssl", "x509", "-in", crt, "-pubkey", "-noout"], check=True,
                             capture_output=True, timeout=30).stdout
        return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem,
                              check=True, capture_output=True, timeout=30).stdout

    @classmethod
    def tlsa(cls, crt, usage, selector, mtype):
        """The TLSA RDATA text "u s m hex" for a certificate file."""
        data = cls.cert_der(crt) if selector == 0 else cls.spki_der(crt)
        if mtype == 1:
            data = hashlib.sha256(data).digest()
        elif mtype == 2:
            data = hashlib.sha512(data).digest()
        return f"{usage} {selector} {mtype} {data.hex()}"
