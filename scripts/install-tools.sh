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

install versitygw github.com/versity/versitygw/cmd/versitygw github.com/versity/versitygw v1.8.0
install pebble github.com/letsencrypt/pebble/v2/cmd/pebble github.com/letsencrypt/pebble/v2 v2.10.1

# dig (Debian's bind9-dnsutils) for dnsgeo's over-the-wire tests: installed
# with apt when missing and we are root; otherwise those cases skip.
if ! command -v dig >/dev/null 2>&1; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "dig: apt-get install bind9-dnsutils"
		# Not fatal: without dig only dnsgeo's dig cases skip.
		if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bind9-dnsutils; }; then
			echo "dig: install failed: dnsgeo's dig cases will skip"
		fi
	else
		echo "dig: missing and not root: dnsgeo's dig cases will skip (apt-get install bind9-dnsutils)"
	fi
else
	echo "dig: $(command -v dig)"
fi
