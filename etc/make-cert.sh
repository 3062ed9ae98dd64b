#!/bin/sh
# Makes a self-signed certificate for the quick start (etc/tls/), once.
# Production: point "tls" in the configuration at your real certificate.
set -eu
dir=$(dirname "$0")/tls
[ -f "$dir/relay.crt" ] && [ -f "$dir/relay.key" ] && exit 0
mkdir -p "$dir"
umask 077
certtool --generate-privkey --key-type=ecdsa --outfile "$dir/relay.key" 2>/dev/null
cat > "$dir/relay.tmpl" <<TMPL
cn = "danerelay.localhost"
dns_name = "danerelay.localhost"
expiration_days = 365
tls_www_server
signing_key
TMPL
certtool --generate-self-signed --load-privkey "$dir/relay.key" --template "$dir/relay.tmpl" \
  --outfile "$dir/relay.crt" 2>/dev/null
rm -f "$dir/relay.tmpl"
echo "made $dir/relay.crt"
