#!/usr/bin/env bash
# install-tools.sh installs the external programs the tests use into
# <repo>/bin. It is idempotent: a tool already there at the right version is
# left alone. Run it through `make tools` or directly.
#
#   versitygw  S3-compatible server (posix backend) for origin and edge tests;
#              internal/s3test starts it.
#   pebble     Let's Encrypt's ACME test CA for the tls package and cmd/edge;
#              internal/pebbletest starts it. Its test certificates
#              (test/certs/) come with the module, in the module cache.
#   promtool   Prometheus's rule checker and rule unit-test runner, for the
#              alerting rules in deploy/prometheus (deploy's tests). Not fatal:
#              without it those tests skip, saying so.
#   dig, chromium  Debian packages (bind9-dnsutils, chromium), installed with
#              apt when missing and running as root; the tests that need
#              them skip otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/bin"
mkdir -p "$bin"

# installed_version BINARY MODULE prints the version of MODULE that BINARY
# was built from (from the build info `go version -m` reads), or nothing.
# `versitygw --version` is no use here: `go install` builds say "git".
installed_version() {
	local binary=$1 module=$2
	[[ -x $binary ]] || return 0
	go version -m "$binary" 2>/dev/null |
		awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

# install NAME PACKAGE MODULE VERSION
install() {
	local name=$1 pkg=$2 module=$3 want=$4
	local have
	have="$(installed_version "$bin/$name" "$module")"
	if [[ $have == "$want" ]]; then
		echo "$name $want: already in $bin"
		return
	fi
	echo "$name: have '${have:-none}', want $want: go install $pkg@$want into $bin"
	GOBIN="$bin" go install "$pkg@$want"
	echo "$name $want: installed"
}

# Go tools build in parallel with the Debian packages' download: on a cold
# machine the versitygw build is the longest step.
install versitygw github.com/versity/versitygw/cmd/versitygw github.com/versity/versitygw v1.8.0 &
versitygw=$!
install pebble github.com/letsencrypt/pebble/v2/cmd/pebble github.com/letsencrypt/pebble/v2 v2.10.1 &
pebble=$!
# Prometheus 3.16's promtool (module versions v0.3xx.y are Prometheus 3.xx.y).
install promtool github.com/prometheus/prometheus/cmd/promtool github.com/prometheus/prometheus v0.316.0 &
promtool=$!

# apt_install COMMAND PACKAGE WHAT installs Debian's PACKAGE when COMMAND
# is missing and we are root; otherwise, or when apt fails, the tests that
# need it (WHAT) skip, saying so. Never fatal.
apt_updated=false
apt_install() {
	local cmd=$1 pkg=$2 what=$3
	if command -v "$cmd" >/dev/null 2>&1; then
		echo "$cmd: $(command -v "$cmd")"
		return
	fi
	if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		echo "$cmd: missing and not root: $what will skip (apt-get install $pkg)"
		return
	fi
	echo "$cmd: apt-get install $pkg"
	if ! $apt_updated; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
		apt_updated=true
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
		echo "$cmd: install failed: $what will skip"
	fi
}

apt_install dig bind9-dnsutils "dnsgeo's dig cases"
apt_install chromium chromium "the browser tests (CORS from a page on another origin)"

wait "$versitygw"
wait "$pebble"
if ! wait "$promtool"; then
	echo "promtool: install failed: deploy's rule tests will skip (or apt-get install prometheus)"
fi
