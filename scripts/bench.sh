#!/usr/bin/env bash
# bench.sh — what `make bench` executes. One run, on a fresh database
# df_bench, measures side by side:
#   1. the raw durable single-row INSERT rate of this PostgreSQL (reference)
#   2. intake (serve with DF_WORKERS=0) at a fixed concurrency
#   3. intake latency at 50 % of that rate (paced)
#   4. the drain of the backlog by serve with its default workers
#   5. mixed: intake while the workers drain
#   6. observability overhead: on a fresh database df_bench_obs per run,
#      intake (DF_WORKERS=0, same concurrency, BENCH_OBS_DURATION) then the
#      no-op drain of that backlog, three times: tracing off and /metrics not
#      scraped, then tracing on (OTEL_EXPORTER_OTLP_ENDPOINT → `loadgen
#      otlp-sink`, OTEL_TRACES_SAMPLER=always_on) with `loadgen scrape` GETting
#      /metrics every second, then off again (off → on → off limits drift)
#   7. end to end through the sandbox (bin/sandbox, no faults, no added
#      latency, rate limits lifted) on a fresh database df_bench_e2e: signed
#      GHL ContactCreate webhooks → Aloware contacts, saturating (a closed
#      loop until BENCH_E2E_EVENTS are accepted) then paced at half the rate
#      reached; events/s and latency from intake to done, against the no-op
#      drain rate of phase 4
#   8. peak RSS (VmHWM) of the serve process
# and writes docs/benchmarks.md. Raw JSON results stay in .dev/bench/.
#
# Environment: BENCH_CONCURRENCY (32), BENCH_DURATION (20s), BENCH_WARMUP (3s),
# BENCH_PORT (3902), BENCH_E2E_EVENTS (3000), BENCH_SANDBOX_PORT (4910),
# BENCH_OBS_DURATION (10s) and BENCH_OBS_WARMUP (2s) per observability run,
# BENCH_OTLP_PORT (4918, the OTLP sink), BENCH_OBS=0 skips phase 6,
# BENCH_KEEP_DB=1 keeps df_bench, df_bench_obs and df_bench_e2e afterwards,
# BENCH_OUT (docs/benchmarks.md), BENCH_SERVE_BIN (a prebuilt serve binary,
# for testing this harness).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
LOG_PREFIX=bench
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"

CONC="${BENCH_CONCURRENCY:-32}"
DURATION="${BENCH_DURATION:-20s}"
WARMUP="${BENCH_WARMUP:-3s}"
PORT="${BENCH_PORT:-3902}"
REPORT="${BENCH_OUT:-docs/benchmarks.md}"
E2E_EVENTS="${BENCH_E2E_EVENTS:-3000}"
SANDBOX_ADDR="127.0.0.1:${BENCH_SANDBOX_PORT:-4910}"
OBS_DURATION="${BENCH_OBS_DURATION:-10s}"
OBS_WARMUP="${BENCH_OBS_WARMUP:-2s}"
OBS_SINK_ADDR="127.0.0.1:${BENCH_OTLP_PORT:-4918}"
DB_NAME=df_bench
OBS_DB_NAME=df_bench_obs
E2E_DB_NAME=df_bench_e2e
OUT="$REPO/.dev/bench"
LG="$REPO/bin/loadgen"
SERVE_BIN="${BENCH_SERVE_BIN:-$REPO/bin/df-middleware}"
BASE_URL="http://127.0.0.1:$PORT"

command -v go >/dev/null 2>&1 || die "go not found on PATH"
command -v curl >/dev/null 2>&1 || die "curl not found (needed to wait for /readyz)"

rm -rf "$OUT"
mkdir -p "$OUT"

log "building bin/df-middleware, bin/loadgen and bin/sandbox"
mkdir -p "$REPO/bin"
if [ -z "${BENCH_SERVE_BIN:-}" ]; then
	go build -o "$REPO/bin/df-middleware" ./cmd/df-middleware
fi
go build -o "$LG" ./cmd/loadgen
go build -o "$REPO/bin/sandbox" ./cmd/sandbox

ADMIN_URL="$("$REPO/scripts/devdb.sh")"
BENCH_DB_URL="$(url_with_db "$ADMIN_URL" "$DB_NAME")"
E2E_DB_URL="$(url_with_db "$ADMIN_URL" "$E2E_DB_NAME")"
OBS_DB_URL="$(url_with_db "$ADMIN_URL" "$OBS_DB_NAME")"
log "fresh database $DB_NAME"
"$LG" exec -db "$ADMIN_URL" "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" "CREATE DATABASE $DB_NAME"
SECRET="$(random_hex)"

SERVE_PID=""
DRAIN_PID=""
SINK_PID=""
SCRAPE_PID=""
SERVE_DB_URL="$BENCH_DB_URL" # the database start_serve points serve at
SERVE_EXTRA_ENV=()           # more VAR=value for start_serve
RSS_ENTRIES=()
CPU_ENTRIES=()
LOADAVG_START="$(cut -d" " -f1-3 /proc/loadavg)"

cleanup() {
	if [ -n "$DRAIN_PID" ]; then kill "$DRAIN_PID" 2>/dev/null || true; fi
	if [ -n "$SCRAPE_PID" ]; then kill "$SCRAPE_PID" 2>/dev/null || true; fi
	if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
		kill -TERM "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
	fi
	if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; fi
	sandbox_stop
	return 0
}
trap cleanup EXIT

# start_serve NAME WORKERS: serve in the background; WORKERS empty = default.
start_serve() {
	local name="$1" workers="$2"
	local -a envs=(DATABASE_URL="$SERVE_DB_URL" VERITY_WEBHOOK_SECRET="$SECRET"
		DF_LISTEN_ADDR="127.0.0.1:$PORT" DF_ENV=development
		# The benchmark measures capacity: the per-source intake limit (2000/s
		# by default, docs/security.md) would cap one source's load long before.
		DF_INTAKE_RATE_LIMIT=0 "${SERVE_EXTRA_ENV[@]}")
	# Tracing is off unless SERVE_EXTRA_ENV turns it on (phase 6), whatever
	# this shell exports.
	local -a unset=(-u DF_WORKERS -u PORT -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
		-u OTEL_TRACES_SAMPLER -u OTEL_TRACES_SAMPLER_ARG -u OTEL_SDK_DISABLED -u OTEL_TRACES_EXPORTER)
	[ -n "$workers" ] && envs+=(DF_WORKERS="$workers")
	log "starting serve ($name, DF_WORKERS=${workers:-default}) on $BASE_URL; log .dev/bench/serve-$name.log"
	env "${unset[@]}" "${envs[@]}" "$SERVE_BIN" serve >"$OUT/serve-$name.log" 2>&1 &
	SERVE_PID=$!
	local i
	for ((i = 0; i < 240; i++)); do
		if ! kill -0 "$SERVE_PID" 2>/dev/null; then
			tail -n 30 "$OUT/serve-$name.log" >&2 || true
			die "serve ($name) exited before it was ready"
		fi
		if curl -fsS -o /dev/null --max-time 1 "$BASE_URL/readyz" 2>/dev/null; then
			return 0
		fi
		sleep 0.25
	done
	tail -n 30 "$OUT/serve-$name.log" >&2 || true
	die "serve ($name) not ready after 60 s ($BASE_URL/readyz)"
}

# stop_serve NAME: record VmHWM and CPU time, then SIGTERM and wait.
stop_serve() {
	local name="$1" hwm cpu
	hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVE_PID/status" 2>/dev/null || true)"
	[ -n "$hwm" ] && RSS_ENTRIES+=("\"serve $name\": $hwm")
	# utime + stime (fields 14, 15 of /proc/PID/stat; comm has no spaces here).
	cpu="$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVE_PID/stat" 2>/dev/null || true)"
	[ -n "$cpu" ] && CPU_ENTRIES+=("\"serve $name\": $cpu")
	kill -TERM "$SERVE_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 120; i++)); do
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.25
	done
	if kill -0 "$SERVE_PID" 2>/dev/null; then
		log "serve ($name) still running 30 s after SIGTERM: killing it"
		kill -KILL "$SERVE_PID" 2>/dev/null || true
	fi
	wait "$SERVE_PID" 2>/dev/null || true
	SERVE_PID=""
}

checkpoint() {
	"$LG" exec -db "$BENCH_DB_URL" "CHECKPOINT" 2>/dev/null || true
}

json_number() { # FILE KEY: the first numeric value of "KEY" in FILE
	sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p" "$1" | head -n1
}

# wait_drain: wait for the background drain, failing if serve dies first.
wait_drain() {
	while kill -0 "$DRAIN_PID" 2>/dev/null; do
		if ! kill -0 "$SERVE_PID" 2>/dev/null; then
			kill "$DRAIN_PID" 2>/dev/null || true
			tail -n 30 "$OUT"/serve-*.log >&2 || true
			[ -n "${1:-}" ] && "$1"
			die "serve exited during the drain"
		fi
		sleep 0.5
	done
	local rc=0
	wait "$DRAIN_PID" || rc=$?
	DRAIN_PID=""
	[ "$rc" = 0 ] || die "loadgen drain failed (exit $rc)"
}

LOAD_FLAGS=(-concurrency "$CONC" -duration "$DURATION" -warmup "$WARMUP")

log "1/8 raw INSERT reference ($CONC connections, $DURATION)"
checkpoint
"$LG" insert -db "$BENCH_DB_URL" "${LOAD_FLAGS[@]}" >"$OUT/insert.json"

log "2/8 intake, DF_WORKERS=0 ($CONC concurrent, $DURATION)"
start_serve intake 0
checkpoint
"$LG" intake -url "$BASE_URL" -secret "$SECRET" "${LOAD_FLAGS[@]}" >"$OUT/intake.json"

PEAK="$(json_number "$OUT/intake.json" ok_per_second)"
HALF="$(awk -v r="$PEAK" 'BEGIN { printf "%.0f", r / 2 }')"
[ "${HALF:-0}" -gt 0 ] || die "intake acknowledged nothing (see .dev/bench/intake.json)"
log "3/8 intake paced at 50% of peak: $HALF/s"
checkpoint
"$LG" intake -url "$BASE_URL" -secret "$SECRET" "${LOAD_FLAGS[@]}" -rate "$HALF" >"$OUT/paced.json"
stop_serve intake

log "4/8 drain of the backlog with the default workers"
checkpoint
"$LG" drain -db "$BENCH_DB_URL" -ready-file "$OUT/drain.ready" >"$OUT/drain.json" &
DRAIN_PID=$!
for ((i = 0; i < 600; i++)); do
	[ -e "$OUT/drain.ready" ] && break
	kill -0 "$DRAIN_PID" 2>/dev/null || die "loadgen drain failed before it started"
	sleep 0.1
done
start_serve workers ""
wait_drain

log "5/8 mixed: intake while the workers drain"
checkpoint
MIXED_START="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
"$LG" intake -url "$BASE_URL" -secret "$SECRET" "${LOAD_FLAGS[@]}" >"$OUT/mixed_intake.json"
"$LG" drain -db "$BENCH_DB_URL" -start-at "$MIXED_START" >"$OUT/mixed_drain.json" &
DRAIN_PID=$!
wait_drain
stop_serve workers

# ---- 6. observability overhead -------------------------------------------

# sink_start TAG: the OTLP/HTTP sink, counts to $OUT/TAG-sink.json on SIGTERM.
sink_start() {
	local url="http://$OBS_SINK_ADDR/healthz"
	if curl -s -o /dev/null --max-time 1 "$url" 2>/dev/null; then
		die "something already answers $url; stop it or set BENCH_OTLP_PORT"
	fi
	"$LG" otlp-sink -addr "$OBS_SINK_ADDR" >"$OUT/$1-sink.json" 2>>"$OUT/otlp-sink.log" &
	SINK_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$SINK_PID" 2>/dev/null || die "loadgen otlp-sink exited (see .dev/bench/otlp-sink.log)"
		curl -s -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
		sleep 0.1
	done
	die "loadgen otlp-sink not listening on $OBS_SINK_ADDR after 10 s"
}
stop_bg() { # VAR: SIGTERM the process whose pid VAR holds and wait for it
	local pid="${!1}"
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf -v "$1" '%s' ""
}
scrape_start() { # TAG: Prometheus-style GET /metrics every second
	"$LG" scrape -url "$BASE_URL/metrics" -interval 1s >"$OUT/$1-scrape.json" 2>>"$OUT/scrape.log" &
	SCRAPE_PID=$!
}
obs_fail() {
	log "serve with tracing on failed: see .dev/bench/serve-obs-*.log, .dev/bench/otlp-sink.log"
}

# obs_run N off|on: intake on a fresh df_bench_obs, then the no-op drain of
# its backlog, writing $OUT/obs-N-MODE-{intake,drain}.json (and, when on,
# -sink.json and -scrape.json of each serve).
obs_run() {
	local tag="obs-$1-$2" on=0 i
	[ "$2" = on ] && on=1
	"$LG" exec -db "$ADMIN_URL" "DROP DATABASE IF EXISTS $OBS_DB_NAME WITH (FORCE)" "CREATE DATABASE $OBS_DB_NAME"
	SERVE_DB_URL="$OBS_DB_URL"
	SERVE_EXTRA_ENV=()
	if [ "$on" = 1 ]; then
		SERVE_EXTRA_ENV=(OTEL_EXPORTER_OTLP_ENDPOINT="http://$OBS_SINK_ADDR" OTEL_TRACES_SAMPLER=always_on)
		sink_start "$tag-intake"
	fi
	start_serve "$tag-intake" 0
	[ "$on" = 1 ] && scrape_start "$tag-intake"
	"$LG" exec -db "$OBS_DB_URL" "CHECKPOINT" 2>/dev/null || true
	"$LG" intake -url "$BASE_URL" -secret "$SECRET" -concurrency "$CONC" -duration "$OBS_DURATION" -warmup "$OBS_WARMUP" \
		>"$OUT/$tag-intake.json"
	stop_bg SCRAPE_PID
	stop_serve "$tag-intake"
	stop_bg SINK_PID

	"$LG" exec -db "$OBS_DB_URL" "CHECKPOINT" 2>/dev/null || true
	"$LG" drain -db "$OBS_DB_URL" -ready-file "$OUT/$tag.ready" >"$OUT/$tag-drain.json" &
	DRAIN_PID=$!
	for ((i = 0; i < 600; i++)); do
		[ -e "$OUT/$tag.ready" ] && break
		kill -0 "$DRAIN_PID" 2>/dev/null || die "loadgen drain ($tag) failed before it started"
		sleep 0.1
	done
	[ "$on" = 1 ] && sink_start "$tag-drain"
	start_serve "$tag-drain" ""
	[ "$on" = 1 ] && scrape_start "$tag-drain"
	if [ "$on" = 1 ]; then wait_drain obs_fail; else wait_drain; fi
	stop_bg SCRAPE_PID
	stop_serve "$tag-drain"
	stop_bg SINK_PID
	SERVE_EXTRA_ENV=()
}

if [ "${BENCH_OBS:-1}" != 0 ]; then
	log "6/8 observability overhead: intake ($CONC concurrent, $OBS_DURATION after $OBS_WARMUP) + no-op drain, tracing off → on (OTLP to $OBS_SINK_ADDR, always_on, /metrics scraped every 1 s) → off"
	obs_run 1 off
	obs_run 2 on
	obs_run 3 off
fi

cpu_seconds() { # PID: user+system CPU seconds so far
	awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || true
}

now_rfc3339() { date -u +%Y-%m-%dT%H:%M:%S.%NZ; }

log "7/8 end to end through the sandbox at zero added latency ($CONC concurrent, $E2E_EVENTS events, then paced)"
"$LG" exec -db "$ADMIN_URL" "DROP DATABASE IF EXISTS $E2E_DB_NAME WITH (FORCE)" "CREATE DATABASE $E2E_DB_NAME"
GHL_KEY="$OUT/ghl-signing-key.pem"
GHL_PUB="$("$REPO/bin/sandbox" ghl-public-key --ghl-signing-key "$GHL_KEY" 2>/dev/null)" ||
	die "bin/sandbox ghl-public-key failed"
# The sandbox and serve read the same credentials (the sandbox's development
# defaults, whatever this shell has set for the real services).
sandbox_export_env "http://$SANDBOX_ADDR"
log "starting the sandbox on http://$SANDBOX_ADDR (no faults, rate limits lifted); log .dev/bench/sandbox.log"
sandbox_start "$REPO/bin/sandbox" "$SANDBOX_ADDR" "$OUT/sandbox.log" \
	--latency 0 --error-rate 0 --rate-429 0 --ghl-burst -1 --ghl-daily -1 --aloware-per-minute -1
SERVE_DB_URL="$E2E_DB_URL"
# The stand-in has no published limits: lift the clients' budgets too, so the
# figure measures the middleware, not Aloware's 5,000 requests a minute.
SERVE_EXTRA_ENV=(GHL_WEBHOOK_PUBLIC_KEY="$GHL_PUB" GHL_RATE_LIMIT_PER_10S=1000000 ALOWARE_RATE_LIMIT_PER_MINUTE=100000000)
start_serve e2e ""
E2E_FLAGS=(-source ghl -ghl-key "$GHL_KEY" -url "$BASE_URL" -concurrency "$CONC")

e2e_checkpoint() { "$LG" exec -db "$E2E_DB_URL" "CHECKPOINT" 2>/dev/null || true; }
e2e_checkpoint
E2E_START="$(now_rfc3339)"
"$LG" intake "${E2E_FLAGS[@]}" -warmup 0s -duration 10m -max-ops "$E2E_EVENTS" >"$OUT/e2e_intake.json"
E2E_LOAD_END="$(now_rfc3339)"
"$LG" e2e -db "$E2E_DB_URL" -since "$E2E_START" -load-end "$E2E_LOAD_END" >"$OUT/e2e.json"

E2E_RATE="$(json_number "$OUT/e2e.json" per_second)"
E2E_HALF="$(awk -v r="${E2E_RATE:-0}" 'BEGIN { printf "%.2f", r / 2 }')"
if awk -v r="$E2E_HALF" 'BEGIN { exit !(r > 0) }'; then
	log "7/8 end to end paced at 50% of that rate: $E2E_HALF/s ($DURATION after $WARMUP)"
	e2e_checkpoint
	E2E_PACED_START="$(now_rfc3339)"
	"$LG" intake "${E2E_FLAGS[@]}" "${LOAD_FLAGS[@]}" -rate "$E2E_HALF" -phone-offset $((E2E_EVENTS + 1)) >"$OUT/e2e_paced_intake.json"
	E2E_PACED_END="$(now_rfc3339)"
	"$LG" e2e -db "$E2E_DB_URL" -since "$E2E_PACED_START" -load-end "$E2E_PACED_END" >"$OUT/e2e_paced.json"
else
	log "no end-to-end rate measured: skipping the paced run"
fi
SANDBOX_CPU="$(cpu_seconds "$SANDBOX_PID")"
[ -n "$SANDBOX_CPU" ] && CPU_ENTRIES+=("\"sandbox e2e\": $SANDBOX_CPU")
stop_serve e2e
sandbox_stop

json_object() { # ENTRY...: {ENTRY,ENTRY}
	local IFS=,
	printf '{%s}\n' "$*"
}
json_object "${RSS_ENTRIES[@]}" >"$OUT/rss.json"
json_object "${CPU_ENTRIES[@]}" >"$OUT/cpu.json"

SERVE_BIN_NOTE=""
if [ -n "${BENCH_SERVE_BIN:-}" ]; then
	SERVE_BIN_NOTE=",
  \"serve binary\": \"prebuilt (BENCH_SERVE_BIN), not built from this tree\""
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null | head -n1)" ]; then
	COMMIT="$COMMIT + uncommitted changes"
fi
cat >"$OUT/env.json" <<EOF
{
  "code": "$COMMIT",
  "load": "$CONC concurrent, $DURATION recorded after $WARMUP warm-up per phase; observability overhead: $OBS_DURATION after $OBS_WARMUP per run; end to end: $E2E_EVENTS events, then paced for $DURATION after $WARMUP",
  "load average (1/5/15 min) at start, end": "$LOADAVG_START; $(cut -d" " -f1-3 /proc/loadavg)",
  "serve settings": "DF_WORKERS=0 (intake), default (drain, mixed, end to end); tracing off (OTEL_* endpoints unset) except the tracing-on runs of phase 6; LOG_LEVEL=${LOG_LEVEL:-default}, GOGC=${GOGC:-default}, GOMEMLIMIT=${GOMEMLIMIT:-default}"$SERVE_BIN_NOTE
}
EOF

"$LG" report -dir "$OUT" -db "$BENCH_DB_URL" -out "$REPORT"

if [ "${BENCH_KEEP_DB:-0}" != 1 ]; then
	"$LG" exec -db "$ADMIN_URL" "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" "DROP DATABASE IF EXISTS $OBS_DB_NAME WITH (FORCE)" \
		"DROP DATABASE IF EXISTS $E2E_DB_NAME WITH (FORCE)" || true
fi
log "done: $REPORT"
sed -n '/^| figure/,/^$/p' "$REPORT" >&2
