#!/bin/sh
# Builds the Debian package from this tree and proves it on this machine:
# lintian, install, `systemd-analyze verify` of the installed unit,
# `danerelayd --check-config` on the installed config, the installed daemon
# started from the installed files (as root with the unit's capability
# bounding set when the config names a "user", so the daemon drops to it;
# else as the danerelay user directly), answering `danectl status`, running
# as uid danerelay, stopped by PID; the same with a log_file in
# /var/log/danerelay, renamed and reopened on SIGUSR2; then purged and
# checked gone. Runs as root on Debian 12 (CI's fresh machine); scripts/test.sh
# calls it unless DANERELAY_SKIP_PACKAGE=1.
#
# It refuses to run if danerelay is already installed (it would purge it),
# builds in a temporary directory (the tree git sees is never written), and
# its trap stops the daemon, purges the package and removes the directory on
# any failure. The daemon part holds /tmp/danerelay-e2e.lock like the e2e
# tests. The installed config listens on 127.0.0.1:2525 and 127.0.0.1:10465
# and resolves through /etc/resolv.conf (no DNS is needed to start or to
# answer status). Exit status 0: every check passed.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
conf=/etc/danerelay/danerelay.json
work=""
pid=""
installed=0

say() { echo "package-test: $*"; }
fail() { echo "package-test: FAILED: $*" >&2; exit 1; }

cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "$installed" = 1 ]; then
		say "cleaning up: purging danerelay"
		dpkg --purge danerelay >/dev/null 2>&1 || true
	fi
	[ -z "$work" ] || rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

preflight() {
	[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and purges a package)"
	[ -f /etc/debian_version ] || fail "not a Debian machine"
	for t in dpkg-buildpackage dh lintian systemd-analyze setpriv python3; do
		command -v "$t" >/dev/null || fail "$t is missing: run scripts/install-deps.sh"
	done
	if dpkg-query -W -f='${db:Status-Status}' danerelay 2>/dev/null | grep -qv '^not-installed$'; then
		fail "danerelay is already installed here; this test would purge it"
	fi
	for port in 2525 10465; do
		python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null ||
			fail "127.0.0.1:$port is taken on this machine; the installed config listens there"
	done
}

# The tree minus what .gitignore keeps out (builds, the quick start's cert
# and spool), copied so dpkg-buildpackage writes nothing into it.
build_package() {
	work=$(mktemp -d /tmp/danerelay-pkg.XXXXXX)
	mkdir "$work/danerelay"
	tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./etc/tls \
		--exclude=./spool --exclude=./var --exclude=__pycache__ -cf - . |
		tar -C "$work/danerelay" -xf -
	if command -v ccache >/dev/null; then
		# debhelper points HOME into the build tree: keep the usual cache, and
		# make paths relative to the (random) build directory so it hits.
		CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir)}
		CCACHE_BASEDIR=$work/danerelay
		export CCACHE_DIR CCACHE_BASEDIR CMAKE_CXX_COMPILER_LAUNCHER=ccache
	fi
	say "building the package in $work (log: $work/build.log)"
	(cd "$work/danerelay" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
		nice dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 ||
		{ tail -40 "$work/build.log" >&2; fail "dpkg-buildpackage"; }
	deb=$(ls "$work"/danerelay_*.deb)
	say "built $(basename "$deb")"
	dpkg-deb --contents "$deb" | awk '{print "  " $NF}'
}

run_lintian() {
	say "lintian:"
	lintian -I --tag-display-limit 0 "$deb" >"$work/lintian.txt" 2>&1 || true
	sed 's/^/  /' "$work/lintian.txt"
	if grep -q '^E: ' "$work/lintian.txt"; then fail "lintian reports errors"; fi
}

install_package() {
	installed=1
	say "installing"
	dpkg -i "$deb" >"$work/install.log" 2>&1 ||
		apt-get install -f -y -qq >>"$work/install.log" 2>&1 ||
		{ cat "$work/install.log" >&2; fail "dpkg -i $deb"; }
	sed 's/^/  /' "$work/install.log"
	dpkg-query -W -f='${Status}\n' danerelay | grep -q 'install ok installed' ||
		fail "danerelay is not configured after dpkg -i"
}

check_installed_files() {
	for f in /usr/sbin/danerelayd /usr/bin/danectl $conf /etc/danerelay/policy/00-default.json \
		/lib/systemd/system/danerelayd.service /etc/logrotate.d/danerelay \
		/etc/danerelay/tls/relay.crt /etc/danerelay/tls/relay.key; do
		[ -e "$f" ] || fail "$f is not installed"
	done
	dpkg-query -W -f='${Conffiles}\n' danerelay | grep -q " $conf " ||
		fail "$conf is not a conffile"
	getent passwd danerelay >/dev/null || fail "no danerelay user"
	[ "$(stat -c '%U:%G %a' /var/spool/danerelay)" = "danerelay:danerelay 750" ] ||
		fail "/var/spool/danerelay is $(stat -c '%U:%G %a' /var/spool/danerelay)"
	[ "$(stat -c '%U:%G %a' /etc/danerelay/tls/relay.key)" = "root:danerelay 640" ] ||
		fail "relay.key is $(stat -c '%U:%G %a' /etc/danerelay/tls/relay.key)"
	say "files, conffiles, user, spool and certificate in place"
}

verify_unit() {
	unit=/lib/systemd/system/danerelayd.service
	# Documentation= names the man pages; without them installed, verify
	# fails on those alone, so say so and check the rest.
	man_opt=""
	if ! man -w danerelayd >/dev/null 2>&1; then
		say "man page danerelayd(8) not installed: verifying with --man=no"
		man_opt="--man=no"
	fi
	(cd / && systemd-analyze verify $man_opt "$unit") || fail "systemd-analyze verify $unit"
	say "systemd-analyze verify $unit: ok"
	(cd / && systemd-analyze security --offline=yes "$unit" 2>/dev/null | grep 'Overall exposure') |
		sed 's/^/  /' || true
}

# The package makes /var/spool/danerelay for the danerelay user; a shipped
# config with another spool (the quick start's ../var/spool) cannot start.
check_spool_dir() {
	spool=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("spool_dir", ""))' "$conf")
	[ "$spool" = /var/spool/danerelay ] ||
		fail "$conf has spool_dir \"$spool\"; the package makes /var/spool/danerelay (etc/danerelay.json)"
}

start_daemon() {
	cfg=$1
	check_spool_dir
	if grep -q '"user"[[:space:]]*:' "$conf"; then
		# Root as the unit makes it: only the unit's bounding set, no new
		# privileges; the daemon must bind, drop and serve with that.
		caps=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/danerelayd.service |
			tr ' ' '\n' | sed -n 's/^CAP_/+/p' | tr '[:upper:]' '[:lower:]' | paste -sd, -)
		say "starting /usr/sbin/danerelayd as root, bounding set -all,$caps (the config names a user)"
		setpriv --bounding-set "-all,$caps" --no-new-privs -- \
			/usr/sbin/danerelayd --config "$cfg" >"$work/daemon.log" 2>&1 &
	else
		say "starting /usr/sbin/danerelayd as the danerelay user (the config names no user)"
		setpriv --reuid=danerelay --regid=danerelay --clear-groups -- \
			/usr/sbin/danerelayd --config "$cfg" >"$work/daemon.log" 2>&1 &
	fi
	pid=$!
}

wait_status() {
	i=0
	while [ $i -lt 60 ]; do
		kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "danerelayd exited"; }
		if danectl --config "$conf" status >"$work/status.txt" 2>&1; then
			say "danectl status answered:"
			sed 's/^/  /' "$work/status.txt"
			return 0
		fi
		sleep 0.5
		i=$((i + 1))
	done
	cat "$work/status.txt" "$work/daemon.log" >&2
	fail "danectl status did not answer within 30 s"
}

check_uid() {
	want=$(id -u danerelay)
	wantg=$(id -g danerelay)
	uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
	gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
	groups=$(awk '/^Groups:/ {$1 = ""; print}' "/proc/$pid/status" | tr -d ' ')
	[ "$uids" = "$want $want $want $want" ] || fail "danerelayd runs with uids $uids, not $want"
	[ "$gids" = "$wantg $wantg $wantg $wantg" ] || fail "danerelayd runs with gids $gids, not $wantg"
	[ -z "$groups" ] || fail "danerelayd keeps supplementary groups $groups"
	say "pid $pid runs as danerelay (uid $want, gid $wantg, no supplementary groups)"
}

stop_daemon() {
	kill -TERM "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do
		# A zombie is gone as far as the daemon goes; wait reaps it below.
		grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
		sleep 0.5
		i=$((i + 1))
	done
	grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null ||
		fail "danerelayd did not stop within 30 s of SIGTERM"
	rc=0
	wait "$pid" || rc=$?
	pid=""
	[ "$rc" -eq 0 ] || { cat "$work/daemon.log" >&2; fail "danerelayd exited $rc on SIGTERM"; }
	say "stopped by SIGTERM, exit 0"
}

# log_file in /var/log/danerelay as /etc/logrotate.d/danerelay expects it:
# the installed config plus log_file (relative paths made absolute), started
# as before; the log is renamed and a fresh one made as logrotate's "create"
# would, SIGUSR2 must make the daemon write to the new file.
check_log_reopen() {
	grep -q '"user"[[:space:]]*:' "$conf" || return 0
	logcfg=$work/log-test.json
	log=/var/log/danerelay/danerelay.log
	python3 - "$conf" "$logcfg" "$log" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["log_file"] = sys.argv[3]
c["tls"] = {k: "/etc/danerelay/" + v if not v.startswith("/") else v for k, v in c["tls"].items()}
if not c.get("policy_dir", "/").startswith("/"):
    c["policy_dir"] = "/etc/danerelay/" + c["policy_dir"]
json.dump(c, open(sys.argv[2], "w"))
PY
	chmod 0711 "$work"
	chmod 0644 "$logcfg"
	start_daemon "$logcfg"
	wait_status >/dev/null
	[ -s "$log" ] || fail "$log is empty after the start"
	mv "$log" "$log.1"
	install -o danerelay -g adm -m 0640 /dev/null "$log"
	kill -USR2 "$pid"
	i=0
	while [ ! -s "$log" ] && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
	[ -s "$log" ] || { cat "$work/daemon.log" >&2; fail "nothing written to a new $log after SIGUSR2"; }
	stop_daemon
	say "log_file $log: written after a root start, reopened on SIGUSR2 after a rename"
}

run_daemon() {
	exec 9>/tmp/danerelay-e2e.lock
	command -v flock >/dev/null && flock -w 900 9
	start_daemon "$conf"
	wait_status
	check_uid
	stop_daemon
	check_log_reopen
	exec 9>&-
}

purge_package() {
	say "purging"
	dpkg --purge danerelay >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge"; }
	installed=0
	for f in /etc/danerelay /var/spool/danerelay /var/log/danerelay /usr/sbin/danerelayd \
		/lib/systemd/system/danerelayd.service /etc/logrotate.d/danerelay; do
		[ ! -e "$f" ] || fail "$f is left after purge"
	done
	say "purged: /etc/danerelay, the spool, the logs and the binaries are gone"
}

preflight
build_package
run_lintian
install_package
check_installed_files
verify_unit
(cd / && /usr/sbin/danerelayd --config "$conf" --check-config) || fail "danerelayd --check-config"
say "danerelayd --check-config $conf: ok"
run_daemon
purge_package
say "all checks passed"
