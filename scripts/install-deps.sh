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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config ca-certificates \
  libgnutls28-dev libldns-dev libevent-dev nlohmann-json3-dev libgtest-dev libcrypt-dev libsystemd-dev \
  gnutls-bin swaks libnet-ssleay-perl libio-socket-ssl-perl postfix python3 python3-jsonschema util-linux procps \
  nsd unbound ldnsutils bind9-utils openssl dns-root-data man-db groff-base \
  debhelper lintian adduser systemd >/dev/null
