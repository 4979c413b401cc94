#!/bin/sh
# Installs what the DNS benchmark and dnsgeo's dig tests use: dnsperf,
# Knot DNS, NSD and dig (Debian packages). Installs only what is
# missing; without root it says what to install and exits 0, so the
# benchmark and tests skip those parts with a clear message.
set -eu
missing=""
command -v dnsperf >/dev/null 2>&1 || missing="$missing dnsperf"
[ -x /usr/sbin/knotd ] || command -v knotd >/dev/null 2>&1 || missing="$missing knot"
[ -x /usr/sbin/nsd ] || command -v nsd >/dev/null 2>&1 || missing="$missing nsd"
command -v dig >/dev/null 2>&1 || missing="$missing bind9-dnsutils"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
if [ -z "$missing" ]; then
	echo "bench/dns: dnsperf, knot, nsd, dig and taskset are installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "bench/dns: not root, not installing:$missing"
	echo "bench/dns: as root: apt-get install -y$missing (the benchmark skips what is missing)"
	exit 0
fi
echo "bench/dns: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
# The packages start their own daemons on port 53 where an init system
# runs them; the benchmark runs its own on free ports, so stop those.
for svc in knot nsd; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
