#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for the given time each
# (default 3s): `make test` runs them briefly, `make fuzz` for longer.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-3s}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target ($fuzztime)"
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
			echo "$out"
			exit 1
		fi
	done
done
