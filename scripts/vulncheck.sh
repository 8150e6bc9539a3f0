#!/usr/bin/env bash
# vulncheck.sh — govulncheck against a local copy of the Go vulnerability
# database; fails when the code calls a vulnerable function.
#
# This machine cannot reach vuln.go.dev, so the database is built from the Go
# module golang.org/x/vulndb (its data/osv/ holds every report as OSV JSON),
# fetched through the module proxy at the pinned VULNDB_VERSION, by vulndb's
# own cmd/indexdb into the v1 layout govulncheck reads with -db file://
# (index/db.json, index/modules.json, index/vulns.json, ID/GO-….json). It is
# built once per version into .dev/vulndb (git-ignored). Bump VULNDB_VERSION
# to pick up newer reports (`go list -m -versions` does not list pseudo
# versions: use `go list -m golang.org/x/vulndb@master`).
#
# Verdict (scripts/vulncheck/main.go): every vulnerability found in called
# code fails the check, except standard-library ones listed in
# ACCEPTED_STDLIB below — those are fixed only by a newer Go toolchain — and
# even those are printed. Vulnerabilities in imported packages or required
# modules whose vulnerable code is not called are counted, not failed on.
#
# Usage: scripts/vulncheck.sh [govulncheck arguments]   (default: ./...)
#   e.g. scripts/vulncheck.sh -C /path/to/other/module ./...
# Environment:
#   VULNCHECK_STRICT=1   accept nothing, not even ACCEPTED_STDLIB
#   GO                   the go command (default go)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GO="${GO:-go}"
GOVULNCHECK="golang.org/x/vuln/cmd/govulncheck@v1.9.0"
VULNDB_MODULE="golang.org/x/vulndb"
VULNDB_VERSION="v0.0.0-20261105234957-e22db6528018"
DB_DIR="$REPO/.dev/vulndb"

# Standard-library vulnerabilities accepted for now: none. The Makefile runs
# every target with GOTOOLCHAIN=go1.27.3, whose standard library has no known
# vulnerability in code we call; go1.26.8 (the machine's own Go) has twelve
# (GO-2026-6599 … GO-2026-6809), and this check fails on them when run with it.
# List an id here only with the reason and the toolchain that fixes it; the
# check names every listed id that is no longer reported.
ACCEPTED_STDLIB=()

log() { printf 'vulncheck: %s\n' "$*" >&2; }

cd "$REPO"

if [ "$(cat "$DB_DIR/.version" 2>/dev/null || true)" != "$VULNDB_VERSION" ]; then
	log "building the vulnerability database $VULNDB_MODULE@$VULNDB_VERSION into ${DB_DIR#"$REPO"/}"
	src="$("$GO" mod download -json "$VULNDB_MODULE@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	if [ -z "$src" ] || [ ! -d "$src/data/osv" ]; then
		log "go mod download $VULNDB_MODULE@$VULNDB_VERSION gave no data/osv directory"
		exit 1
	fi
	rm -rf "$DB_DIR" "$DB_DIR.tmp"
	mkdir -p "$(dirname "$DB_DIR")"
	"$GO" run "$VULNDB_MODULE/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$DB_DIR.tmp"
	for f in index/db.json index/modules.json index/vulns.json; do
		[ -s "$DB_DIR.tmp/$f" ] || { log "indexdb wrote no $f"; exit 1; }
	done
	echo "$VULNDB_VERSION" >"$DB_DIR.tmp/.version"
	mv "$DB_DIR.tmp" "$DB_DIR"
fi
log "$(ls "$DB_DIR/ID" | grep -c '\.json$') reports in ${DB_DIR#"$REPO"/} ($VULNDB_VERSION)"

[ $# -gt 0 ] || set -- ./...
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
# In JSON mode govulncheck exits 0 whatever it finds (non-zero only when the
# scan itself fails); the verdict is scripts/vulncheck's.
"$GO" run "$GOVULNCHECK" -db "file://$DB_DIR" -format json "$@" >"$out"
strict=false
[ "${VULNCHECK_STRICT:-0}" = 1 ] && strict=true
"$GO" run ./scripts/vulncheck -accept-stdlib "${ACCEPTED_STDLIB[*]}" -strict="$strict" <"$out"
