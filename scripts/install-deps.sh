#!/bin/sh
# Installs what danerelay needs to build and test, from Debian's packages.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# Postfix (for smtp-source and the lab's receiving MTAs) must not start a
# system instance or ask questions: "No configuration".
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# swaks speaks TLS only with Net::SSLeay and IO::Socket::SSL (Recommends of
# swaks, not pulled in with --no-install-recommends). bind9-utils signs the
# lab's NSEC3 opt-out zone; dns-root-data is the default trust anchor.
# libcurl4-gnutls-dev: MTA-STS policy fetches (sts/fetcher), the GnuTLS
# build so that one TLS library stays in the process. libssl-dev: libcrypto,
# which dns/ links for the DNSKEYs' public keys (ldns uses it too). curl
# (the command): the MTA-STS lab's self-check fetches each policy site.
# prometheus ships promtool (no smaller Debian 12 package does), for the
# metrics and alert-rule tests: ~20 MB download, ~100 MB installed with its
# small libjs-* dependencies (its service is disabled below).
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config ca-certificates haproxy \
  libgnutls28-dev libldns-dev libevent-dev nlohmann-json3-dev libgtest-dev libcrypt-dev libsystemd-dev \
  libcurl4-gnutls-dev libssl-dev curl \
  gnutls-bin swaks libnet-ssleay-perl libio-socket-ssl-perl postfix python3 python3-jsonschema util-linux procps \
  nsd unbound ldnsutils bind9-utils openssl dns-root-data man-db groff-base \
  debhelper lintian adduser systemd >/dev/null
# Only promtool is wanted from prometheus (the e2e metrics test and the
# alert rules' check): its service, a Prometheus server on :9090, must not
# start. policy-rc.d keeps invoke-rc.d from starting it at install; on a host
# with systemd it is also disabled.
if ! dpkg -s prometheus >/dev/null 2>&1; then
  rcd=/usr/sbin/policy-rc.d
  if [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rcd" >/dev/null && $SUDO chmod 755 "$rcd"
    $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    $SUDO rm -f "$rcd"
  else
    $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
