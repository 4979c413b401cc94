#!/usr/bin/env bash
# Runs every native Go fuzz target in the module, each for the given
# -fuzztime: a count such as 2000x (what `make test` uses) or a duration
# such as 60s (`make fuzz`).
#
# Go 1.26's fuzz coordinator can fail a duration run with a bare "context
# deadline exceeded" at the deadline (go.dev/issue/75804, fixed in 1.27):
# counts never hit it, and a duration run that fails that way without
# writing a failing input is run once more rather than reported.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-2000x}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target ($fuzztime)"
		for attempt in 1 2; do
			if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
				break
			fi
			if [[ $attempt == 1 && $out == *"context deadline exceeded"* && $out != *"Failing input written"* ]]; then
				echo "  the fuzz coordinator's deadline race (go.dev/issue/75804): once more"
				continue
			fi
			echo "$out"
			exit 1
		done
	done
done
