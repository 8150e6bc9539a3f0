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

# Standard-library vulnerabilities of the installed toolchain (go1.26.8),
# fixed in go1.26.9 / go1.26.10, which this workplace cannot install; the only
# newer toolchain it serves is go1.27.3 (GOTOOLCHAIN=go1.27.3), which fixes
# them all. Remove ids here as soon as the toolchain is upgraded: the check
# names every id that is no longer reported.
ACCEPTED_STDLIB=(
	GO-2026-6599 # html/template: context tracking on consecutive template expressions (fixed go1.26.9)
	GO-2026-6600 # html/template: yield as regexp preceder keyword (fixed go1.26.9)
	GO-2026-6603 # net/http: HTTP/2 server memory exhaustion via Trailer headers (fixed go1.26.9)
	GO-2026-6605 # net/http: HTTP/1 client desync after CONNECT rejection (fixed go1.26.9)
	GO-2026-6607 # crypto/tls: malformed ECH outer extension references (fixed go1.26.9)
	GO-2026-6608 # net/textproto: memory limit bypass parsing MIME headers (fixed go1.26.9)
	GO-2026-6610 # net/http: HTTP/2 transport accepts malformed framing headers (fixed go1.26.9)
	GO-2026-6611 # net/http: CPU from repeated HTTP/2 initial window changes (fixed go1.26.9)
	GO-2026-6612 # net/http: double HTTP/2 flow control refund (fixed go1.26.9)
	GO-2026-6613 # net/http: HTTP/1 server desync after 2xx CONNECT (fixed go1.26.9)
	GO-2026-6617 # net/http: HTTP/2 server HPACK encoder race (fixed go1.26.9)
	GO-2026-6809 # crypto/x509: distrust compromised intermediates (fixed go1.26.10)
)

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
