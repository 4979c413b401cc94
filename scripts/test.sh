#!/usr/bin/env bash
# test.sh is `make test`: vet, every test with the race detector, then each
# fuzz target for 2,000 inputs. The pinned tools (scripts/install-tools.sh)
# are built in the background while vet runs and the test binaries
# compile: on a fresh machine both are minutes of work, and the tools'
# module downloads wait on the network, not the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
tools_log=$(mktemp)
trap 'rm -f "$tools_log"' EXIT
./scripts/install-tools.sh >"$tools_log" 2>&1 &
tools=$!
go vet ./...
go test -race -count=1 -run '^$' ./... >/dev/null # compile only
if ! wait "$tools"; then
	cat "$tools_log"
	echo "test.sh: installing the test tools failed" >&2
	exit 1
fi
cat "$tools_log"
PATH="$PWD/bin:$PATH" go test -race -count=1 ./...
./scripts/fuzz.sh 2000x
