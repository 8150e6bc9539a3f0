# shellcheck shell=bash
# lib.sh — helpers shared by run.sh and bench.sh (sourced, not executed).

log() { printf '%s: %s\n' "${LOG_PREFIX:-df}" "$*" >&2; }
die() { log "$*"; exit 1; }

# url_with_db URL DBNAME: the same connection string pointing at another
# database. Handles URLs (postgres://…/db?opts) and key=value strings.
url_with_db() {
	local url="$1" db="$2"
	local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
	if [[ "$url" =~ $re ]]; then
		printf '%s/%s%s\n' "${BASH_REMATCH[1]}" "$db" "${BASH_REMATCH[4]}"
	else
		printf '%s dbname=%s\n' "$url" "$db" # libpq: the last dbname wins
	fi
}

find_psql() {
	if command -v psql >/dev/null 2>&1; then
		command -v psql
		return 0
	fi
	local p
	for p in /usr/lib/postgresql/*/bin/psql; do
		[ -x "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

# random_hex: 24 random bytes as hex.
random_hex() {
	if command -v openssl >/dev/null 2>&1; then
		openssl rand -hex 24
	else
		od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
		echo
	fi
}

# hmac_hex SECRET: hex HMAC-SHA256 of stdin.
hmac_hex() {
	openssl dgst -sha256 -hmac "$1" | sed 's/^.*= //'
}
