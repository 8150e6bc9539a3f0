#!/usr/bin/env bash
# devdb.sh — make sure there is a PostgreSQL server we may create databases on
# and print ONE line to stdout: an admin connection URL. Everything else goes
# to stderr, so callers can write ADMIN_URL=$(scripts/devdb.sh).
#
# Order of preference:
#   a. $DF_ADMIN_DATABASE_URL, when set (used as is).
#   b. 127.0.0.1:5432 accepting user postgres without a password.
#   c. a Debian cluster (pg_lsclusters) that is down: start it, then retry (b)
#      on its port.
#   d. a private cluster under $REPO/.pgdata (git-ignored) on 127.0.0.1:55432,
#      trust auth, run as the postgres user when we are root.
#   e. no PostgreSQL binaries at all: as root with apt-get, install the
#      postgresql package and retry (d); otherwise fail with what to install.
#
# Environment:
#   DF_ADMIN_DATABASE_URL   use this server, skip everything else
#   DF_DEVDB_FORCE_PRIVATE  1 = skip (a)-(c) and go straight to the private cluster
#   DF_DEVDB_PORT           port of the private cluster (default 55432)
#   DF_DEVDB_DIR            directory of the private cluster (default $REPO/.pgdata)
#
# `scripts/devdb.sh stop` stops the private cluster (the data stays).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRIVATE_PORT="${DF_DEVDB_PORT:-55432}"
PRIVATE_DIR="${DF_DEVDB_DIR:-$REPO/.pgdata}"
PGLIB="${DF_DEVDB_PGLIB:-/usr/lib/postgresql}" # Debian's home of the server binaries

log() { printf 'devdb: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

admin_url() { # host port
	printf 'postgres://postgres@%s:%s/postgres?sslmode=disable\n' "$1" "$2"
}

is_root() { [ "$(id -u)" = 0 ]; }

# PostgreSQL binary directories, newest major version first.
pg_bindirs() {
	local d
	# shellcheck disable=SC2012 # version-sorted directory names, no odd characters
	for d in $(ls -d "$PGLIB"/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r); do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
	done
	# Other layouts (Homebrew, RPM with PATH set up): initdb on PATH.
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
	fi
	return 0
}

find_psql() {
	if command -v psql >/dev/null 2>&1; then
		command -v psql
		return 0
	fi
	local d
	for d in $(pg_bindirs); do
		if [ -x "$d/psql" ]; then
			echo "$d/psql"
			return 0
		fi
	done
	return 1
}

# accepts URL: true when the server answers `select 1` for that URL.
accepts() {
	local psql
	psql="$(find_psql)" || return 1
	PGCONNECT_TIMEOUT=3 "$psql" "$1" -XqAt -v ON_ERROR_STOP=1 -c 'select 1' >/dev/null 2>&1
}

# as_owner CMD...: run CMD as the owner of the private cluster (postgres when root).
as_owner() {
	if is_root; then
		if command -v runuser >/dev/null 2>&1; then
			runuser -u postgres -- "$@"
		else
			su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
		fi
	else
		"$@"
	fi
}

# ---- (a) explicit server ---------------------------------------------------
try_explicit() {
	[ -n "${DF_ADMIN_DATABASE_URL:-}" ] || return 1
	log "using DF_ADMIN_DATABASE_URL"
	printf '%s\n' "$DF_ADMIN_DATABASE_URL"
}

# ---- (b) local server on 5432 ----------------------------------------------
try_local() {
	local url
	url="$(admin_url 127.0.0.1 5432)"
	accepts "$url" || return 1
	log "using PostgreSQL on 127.0.0.1:5432"
	printf '%s\n' "$url"
}

# ---- (c) Debian cluster that is down ----------------------------------------
try_debian_cluster() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 1
	command -v pg_ctlcluster >/dev/null 2>&1 || return 1
	local ver name port status rest url
	while read -r ver name port status rest; do
		[ -n "$ver" ] || continue
		url="$(admin_url 127.0.0.1 "$port")"
		if [ "$status" = down ] || [[ "$status" == down,* ]]; then
			log "starting Debian cluster $ver/$name (port $port)"
			if ! pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2; then
				log "could not start cluster $ver/$name"
				continue
			fi
		fi
		local _
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			if accepts "$url"; then
				log "using Debian cluster $ver/$name on 127.0.0.1:$port"
				printf '%s\n' "$url"
				return 0
			fi
			sleep 0.5
		done
		log "cluster $ver/$name on port $port does not accept user postgres over TCP without a password"
	done < <(pg_lsclusters --no-header 2>/dev/null || true)
	return 1
}

# ---- (d) private cluster -----------------------------------------------------
private_bindir() {
	# Reuse the binaries of the version the data directory was made with.
	local want="" d
	if [ -f "$PRIVATE_DIR/data/PG_VERSION" ]; then
		want="$(cat "$PRIVATE_DIR/data/PG_VERSION")"
	fi
	for d in $(pg_bindirs); do
		if [ -z "$want" ] || [ "$("$d/pg_ctl" --version | awk '{print $3}' | cut -d. -f1)" = "$want" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

ensure_owner_user() {
	is_root || return 0
	id postgres >/dev/null 2>&1 && return 0
	command -v useradd >/dev/null 2>&1 || die "running as root and there is no postgres user to run the private cluster as"
	log "creating system user postgres"
	useradd --system --no-create-home --shell /usr/sbin/nologin postgres >&2
}

try_private() {
	local bindir
	bindir="$(private_bindir)" || return 2 # no binaries: caller may install them
	local data="$PRIVATE_DIR/data" sock="$PRIVATE_DIR/run" logfile="$PRIVATE_DIR/postgres.log"
	local url
	url="$(admin_url 127.0.0.1 "$PRIVATE_PORT")"

	mkdir -p "$PRIVATE_DIR"
	# One bootstrap at a time (make test and make run started together).
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$PRIVATE_DIR/.lock"
		flock 9
	fi

	if accepts "$url"; then
		log "reusing private cluster on 127.0.0.1:$PRIVATE_PORT ($PRIVATE_DIR)"
		printf '%s\n' "$url"
		return 0
	fi

	ensure_owner_user
	# The socket path must fit in sun_path (107 bytes).
	if [ "${#sock}" -gt 90 ]; then
		sock="/tmp/df-devdb-$(id -u)-$PRIVATE_PORT"
	fi
	mkdir -p "$sock"
	if is_root; then
		chown postgres: "$PRIVATE_DIR" "$sock"
		[ -d "$data" ] && chown -R postgres: "$data"
		if ! runuser -u postgres -- test -w "$PRIVATE_DIR" 2>/dev/null; then
			die "user postgres cannot write $PRIVATE_DIR (a parent directory is not searchable); set DF_DEVDB_DIR to a directory postgres can reach, or set DATABASE_URL"
		fi
	fi

	if [ ! -f "$data/PG_VERSION" ]; then
		log "initialising private cluster in $data with $bindir"
		rm -rf "$data"
		as_owner "$bindir/initdb" -D "$data" --username=postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >&2 ||
			as_owner "$bindir/initdb" -D "$data" --username=postgres --auth=trust --encoding=UTF8 --locale=C >&2
		cat <<-EOF | as_owner tee -a "$data/postgresql.conf" >/dev/null
			# added by scripts/devdb.sh
			listen_addresses = '127.0.0.1'
			port = $PRIVATE_PORT
			unix_socket_directories = '$sock'
			max_connections = 200
		EOF
	fi

	log "starting private cluster on 127.0.0.1:$PRIVATE_PORT (log: $logfile)"
	# 9>&-: the postmaster must not inherit the bootstrap lock.
	if ! as_owner "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >&2 9>&-; then
		tail -n 20 "$logfile" >&2 || true
		die "private cluster did not start (see $logfile)"
	fi
	accepts "$url" || die "private cluster started but does not accept connections on 127.0.0.1:$PRIVATE_PORT"
	printf '%s\n' "$url"
}

stop_private() {
	local bindir
	[ -f "$PRIVATE_DIR/data/PG_VERSION" ] || { log "no private cluster in $PRIVATE_DIR"; return 0; }
	bindir="$(private_bindir)" || die "no PostgreSQL binaries to stop the private cluster with"
	as_owner "$bindir/pg_ctl" -D "$PRIVATE_DIR/data" -m fast -w stop >&2 || true
}

# ---- (e) install -------------------------------------------------------------
install_postgres() {
	if is_root && command -v apt-get >/dev/null 2>&1; then
		log "no PostgreSQL binaries found: installing the postgresql package with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update >&2 && apt-get install -y postgresql >&2 && return 0
		log "apt-get install postgresql failed"
	fi
	die "no usable PostgreSQL found: install PostgreSQL 13 or newer (e.g. apt-get install postgresql), or set DATABASE_URL (DF_ADMIN_DATABASE_URL / DF_TEST_DATABASE_URL for tests)"
}

main() {
	if [ "${1:-}" = stop ]; then
		stop_private
		return 0
	fi
	if [ "${DF_DEVDB_FORCE_PRIVATE:-0}" != 1 ]; then
		try_explicit && return 0
		try_local && return 0
		try_debian_cluster && return 0
	else
		log "DF_DEVDB_FORCE_PRIVATE=1: skipping the shared servers"
	fi
	local rc=0
	try_private || rc=$?
	[ "$rc" = 0 ] && return 0
	[ "$rc" = 2 ] || exit "$rc"
	install_postgres
	try_private || die "no usable PostgreSQL after installing it: install PostgreSQL 13 or newer, or set DATABASE_URL"
}

main "$@"
