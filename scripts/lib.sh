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

# ---- sandbox upstreams (cmd/sandbox), shared by run.sh and bench.sh ------

# Development credentials `sandbox serve` accepts when the environment sets
# none: the Dev* constants of internal/sandbox (cmd/loadgen's tests check
# that these lines still match them).
SANDBOX_DEV_GHL_API_KEY=sandbox-ghl-api-key
SANDBOX_DEV_GHL_LOCATION_ID=sandbox-location
SANDBOX_DEV_ALOWARE_API_TOKEN=sandbox-aloware-token
SANDBOX_DEV_VERITY_API_KEY=sandbox-verity-api-key
SANDBOX_DEV_CLERK_SECRET_KEY=sk_test_sandbox

# The variables whose presence means "talk to the real upstreams".
SANDBOX_TRIGGER_VARS=(GHL_API_KEY ALOWARE_API_TOKEN CLERK_SECRET_KEY VERITY_BASE_URL)

SANDBOX_PID=""

# real_upstream_vars: print the names of the SANDBOX_TRIGGER_VARS that are
# set and non-empty (nothing printed = sandbox mode).
real_upstream_vars() {
	local v
	for v in "${SANDBOX_TRIGGER_VARS[@]}"; do
		[ -n "${!v:-}" ] && printf '%s\n' "$v"
	done
	return 0
}

# sandbox_export_env BASE: export, for a service about to be started, the
# upstream credentials (the sandbox's development defaults unless the
# environment already sets GHL_LOCATION_ID / VERITY_API_KEY) and the base URLs
# of the sandbox at BASE (http://host:port). Call it before sandbox_start so
# that the sandbox reads the same credentials.
sandbox_export_env() {
	local base="${1%/}"
	export GHL_API_KEY="$SANDBOX_DEV_GHL_API_KEY"
	export GHL_LOCATION_ID="${GHL_LOCATION_ID:-$SANDBOX_DEV_GHL_LOCATION_ID}"
	export ALOWARE_API_TOKEN="$SANDBOX_DEV_ALOWARE_API_TOKEN"
	export VERITY_API_KEY="${VERITY_API_KEY:-$SANDBOX_DEV_VERITY_API_KEY}"
	export CLERK_SECRET_KEY="$SANDBOX_DEV_CLERK_SECRET_KEY"
	export GHL_BASE_URL="$base/ghl"
	export ALOWARE_BASE_URL="$base/aloware"
	export VERITY_BASE_URL="$base/verity"
	export CLERK_API_URL="$base/clerk/v1"
}

# sandbox_start BIN ADDR LOGFILE [serve flags...]: start `BIN serve --addr
# ADDR` in the background (logging to LOGFILE), set SANDBOX_PID and wait until
# GET /_sandbox/state answers. The sandbox gets its own session (setsid), so a
# Ctrl-C at the terminal does not reach it directly: the caller stops it with
# sandbox_stop after the service, whose in-flight jobs may still call it.
sandbox_start() {
	local bin="$1" addr="$2" logfile="$3"
	shift 3
	local url="http://$addr/_sandbox/state"
	if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
		die "something already answers $url (a sandbox left from an earlier run? see: ss -ltnp | grep ${addr##*:}); stop it or choose another port"
	fi
	if command -v setsid >/dev/null 2>&1; then
		setsid "$bin" serve --addr "$addr" "$@" </dev/null >"$logfile" 2>&1 &
	else
		"$bin" serve --addr "$addr" "$@" </dev/null >"$logfile" 2>&1 &
	fi
	SANDBOX_PID=$!
	local i
	for ((i = 0; i < 120; i++)); do
		if ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
			wait "$SANDBOX_PID" 2>/dev/null || true
			SANDBOX_PID=""
			tail -n 20 "$logfile" >&2 || true
			die "the sandbox exited before it answered $url (log: $logfile)"
		fi
		if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.25
	done
	sandbox_stop
	die "the sandbox did not answer $url within 30 s (log: $logfile)"
}

# sandbox_stop: SIGTERM the sandbox started by sandbox_start and wait for it
# (SIGKILL after 10 s). Safe to call twice.
sandbox_stop() {
	[ -n "${SANDBOX_PID:-}" ] || return 0
	local pid="$SANDBOX_PID" i
	SANDBOX_PID=""
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 40; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.25
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "sandbox (pid $pid) still running 10 s after SIGTERM: killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	return 0
}

# banner LINE...: the lines in a box on stderr, so they cannot be missed.
banner() {
	local line width=0
	for line in "$@"; do
		[ "${#line}" -gt "$width" ] && width=${#line}
	done
	local rule
	rule="$(printf '%*s' $((width + 4)) '' | tr ' ' '#')"
	{
		echo
		echo "$rule"
		for line in "$@"; do
			printf '# %s%*s #\n' "$line" $((width - ${#line})) ''
		done
		echo "$rule"
		echo
	} >&2
}
