#!/usr/bin/env bash
# fuzz.sh DURATION — run every Go fuzz target of the repository (each
# `func FuzzXxx` in a _test.go file) for DURATION, one target at a time
# (`go test -fuzz` takes one target per run). `make fuzz` runs it with
# FUZZTIME, `make fuzz-short` (part of `make test`) with FUZZSHORT.
#
# A failing input is written by go test to the package's
# testdata/fuzz/FuzzXxx/ directory: keep it (fix the code, not the input),
# plain `go test` then replays it as a regression case. Every target runs
# even after one fails; the script fails at the end, naming them.
#
# Environment: GO (default go), FUZZ_MATCH (only targets whose name matches
# this extended regexp, e.g. FUZZ_MATCH='Parse' for the parsers).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
dur="${1:-}"
if [ -z "$dur" ] || [ $# -ne 1 ]; then
	echo "usage: scripts/fuzz.sh DURATION   (a go test -fuzztime: 5s, 30s, 10m, or 1000x)" >&2
	exit 2
fi
cd "$REPO"

targets="$(grep -rEo --include='*_test.go' --exclude-dir=.git --exclude-dir=.pgdata --exclude-dir=.dev \
	--exclude-dir=node_modules --exclude-dir=testdata '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's/^(.*)\/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($/\1 \2/' | sort -u |
	{ if [ -n "${FUZZ_MATCH:-}" ]; then awk -v re="$FUZZ_MATCH" '$2 ~ re'; else cat; fi; })"
if [ -z "$targets" ]; then
	echo "no fuzz targets found"
	exit 0
fi

failed=()
count=0
start=$SECONDS
while read -r dir name; do
	count=$((count + 1))
	echo "==> go test -run='^\$' -fuzz='^$name\$' -fuzztime=$dur $dir"
	if ! "$GO" test -run='^$' -fuzz="^$name\$" -fuzztime="$dur" "$dir" </dev/null; then
		failed+=("$dir $name")
	fi
done <<<"$targets"

echo "==> fuzzed $count targets for $dur each in $((SECONDS - start))s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz targets that failed (the failing input is under the package's testdata/fuzz/):"
	printf '    %s\n' "${failed[@]}"
	exit 1
fi
