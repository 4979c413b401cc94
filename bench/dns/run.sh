#!/bin/sh
# Runs the DNS benchmark: installs what is missing (when root), then
# go run ./bench/dns with any flags given (see -h). About 80 s; writes
# bench/results/dns-<date>.md.
set -eu
cd "$(dirname "$0")/../.."
sh bench/dns/install-deps.sh
exec go run ./bench/dns "$@"
