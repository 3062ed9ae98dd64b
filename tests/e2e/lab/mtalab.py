"""Receiving MTAs for the lab: one private Postfix whose smtpd listens on
several 127.x addresses, port 25, one listener per MX host of the DNS lab,
each with its own certificate (from the lab PKI) and its own host name, with
STARTTLS offered or not. Everything it accepts is put on hold and kept, so a
test can read which host received a message and whether TLS was used (from
the Received: header Postfix adds)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import postfixlab  # noqa: E402


class ReceivingMtas:
    def __init__(self, lab, hosts):
        """hosts: {mx host name: starttls (bool), or {"starttls": bool,
        "cert": another host's name, to present the wrong certificate}};
        addresses and certificates come from the DNS lab."""
        from dnslab import HOSTS  # noqa: E402
        services = []
        norm = {}
        for name, spec in hosts.items():
            norm[name] = spec if isinstance(spec, dict) else {"starttls": spec}
        hosts = {n: v["starttls"] for n, v in norm.items()}
        for name, starttls in hosts.items():
            cert = lab.certs[norm[name].get("cert", name)]
            opts = [f"-o myhostname={name}",
                    "-o smtpd_tls_received_header=yes",
                    f"-o smtpd_tls_security_level={'may' if starttls else 'none'}",
                    f"-o smtpd_tls_chain_files={cert['key']},{cert['chain']}"]
            services.append(f"{HOSTS[name]}:25 inet n - n - - smtpd " + " ".join(opts))
        first = next(iter(hosts))
        self.tls_probe = next((HOSTS[n] for n, tls in hosts.items() if tls), None)
        self.pf = postfixlab.PostfixInstance(
            None, name="mta", extra_master=services,
            probe_address=f"{HOSTS[first]}:25",
            extra_main={"smtpd_client_restrictions": "static:hold",
                        "smtpd_tls_loglevel": "1",
                        "inet_interfaces": "all"})

    def start(self):
        self.pf.start()
        if self.tls_probe:
            # The first TLS session waits for tlsmgr to start: make that happen now,
            # not inside a test's timeout.
            subprocess.run(["swaks", "--server", f"{self.tls_probe}:25", "-tls", "--quit-after",
                            "TLS", "--timeout", "30"], capture_output=True, timeout=60, check=False)
        return self

    def cleanup(self):
        self.pf.cleanup()

    def messages(self):
        """Every message held so far: {'host': receiving MX name, 'tls': str|None,
        'recipients': [...], 'text': full message}."""
        out = []
        hold = os.path.join(self.pf.queue, "hold")
        for root, _, files in os.walk(hold):
            for f in files:
                path = os.path.join(root, f)
                text = subprocess.run(["postcat", "-c", self.pf.conf, path], capture_output=True,
                                      text=True, timeout=30).stdout
                received = re.search(r"Received: from .*?\n\tby (\S+) \(Postfix\)(.*?);", text,
                                     re.S)
                tls = re.search(r"\(using (TLSv[\d.]+) with cipher ([\w-]+)", text)
                rcpts = re.findall(r"^recipient: (.*)$", text, re.M)
                out.append({"host": received.group(1) if received else None,
                            "tls": tls.group(1) if tls else None,
                            "recipients": rcpts, "text": text})
        return out
