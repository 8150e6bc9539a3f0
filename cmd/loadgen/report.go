package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchRun is what scripts/bench.sh leaves in its results directory.
type benchRun struct {
	Insert      *LoadResult
	Intake      *LoadResult
	Paced       *LoadResult
	Drain       *DrainResult
	MixedIntake *LoadResult
	MixedDrain  *DrainResult
	// End to end through the sandbox: saturating (closed loop, bounded by
	// -max-ops) and paced at half the rate it reached.
	E2EIntake      *LoadResult
	E2E            *E2EResult
	E2EPacedIntake *LoadResult
	E2EPaced       *E2EResult
	// Observability overhead (issue 5): off → on → off runs.
	Obs        []obsRun
	RSSKiB     map[string]int64   // serve phase → VmHWM in KiB
	CPUSeconds map[string]float64 // serve phase → user+system CPU seconds
	Env        map[string]string
}

// Targets of issue 2.
const (
	targetIntakeVsInsert = 1.0
	targetDrainVsIntake  = 0.9
	targetP99HalfPeakMS  = 50.0
	targetRSSMiB         = 150.0
	// Issue 3: end to end through the sandbox ≥ 0.5× the no-op drain rate.
	targetE2EVsDrain = 0.5
	// alowareClientLimit is the Aloware client's built-in rate limit
	// (5,000 requests/min, internal/upstream/aloware), named in the notes
	// when the end-to-end rate sits on it.
	alowareClientLimit = 5000.0 / 60
)

func cmdReport(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fset.String("dir", ".dev/bench", "directory with the JSON results of scripts/bench.sh")
	out := fset.String("out", "docs/benchmarks.md", "markdown file to write")
	dbURL := fset.String("db", envOr("DATABASE_URL", ""), "database to read the server version and settings from")
	_ = fset.Parse(args)

	run, err := loadRun(*dir)
	if err != nil {
		return err
	}
	facts := machineFacts(ctx, *dbURL)
	md := renderReport(run, facts)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	logf("report: wrote %s", *out)
	return nil
}

func loadRun(dir string) (*benchRun, error) {
	r := &benchRun{}
	files := []struct {
		name string
		dst  any
	}{
		{"insert.json", &r.Insert},
		{"intake.json", &r.Intake},
		{"paced.json", &r.Paced},
		{"drain.json", &r.Drain},
		{"mixed_intake.json", &r.MixedIntake},
		{"mixed_drain.json", &r.MixedDrain},
		{"e2e_intake.json", &r.E2EIntake},
		{"e2e.json", &r.E2E},
		{"e2e_paced_intake.json", &r.E2EPacedIntake},
		{"e2e_paced.json", &r.E2EPaced},
		{"rss.json", &r.RSSKiB},
		{"cpu.json", &r.CPUSeconds},
		{"env.json", &r.Env},
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(b)) == 0) {
			continue // phase not run or failed: reported as not measured
		}
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, f.dst); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	obs, err := loadObsRuns(dir)
	if err != nil {
		return nil, err
	}
	r.Obs = obs
	return r, nil
}

type fact struct{ name, value string }

func machineFacts(ctx context.Context, dbURL string) []fact {
	facts := []fact{
		{"date", time.Now().UTC().Format("2006-01-02 15:04 MST")},
		{"CPUs (nproc)", fmt.Sprint(runtime.NumCPU())},
		{"CPU", cpuModel()},
		{"memory", memTotal()},
		{"kernel", strings.TrimSpace(readFile("/proc/sys/kernel/osrelease"))},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
	}
	if dbURL == "" {
		return facts
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return append(facts, fact{"PostgreSQL", "unknown (" + firstLine(err.Error()) + ")"})
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err == nil {
		facts = append(facts, fact{"PostgreSQL", version})
	}
	var settings []string
	for _, name := range []string{"synchronous_commit", "fsync", "wal_sync_method", "shared_buffers", "max_wal_size", "max_connections"} {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			settings = append(settings, name+"="+v)
		}
	}
	return append(facts, fact{"PostgreSQL settings", strings.Join(settings, ", ")})
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func cpuModel() string {
	sc := bufio.NewScanner(strings.NewReader(readFile("/proc/cpuinfo")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	sc := bufio.NewScanner(strings.NewReader(readFile("/proc/meminfo")))
	for sc.Scan() {
		var kib int64
		if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kib); err == nil {
			return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
		}
	}
	return "unknown"
}

// row of the summary table.
type row struct{ figure, value, target, ratio, met string }

func renderReport(r *benchRun, facts []fact) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	const na = "not measured"
	conc := 0
	if r.Intake != nil {
		conc = r.Intake.Concurrency
	}

	var rows []row
	insertRate := 0.0
	if r.Insert != nil {
		insertRate = r.Insert.PerSecond
		rows = append(rows, row{
			fmt.Sprintf("raw durable INSERT, 1 KiB jsonb, %d connections (reference)", r.Insert.Concurrency),
			fmt.Sprintf("%.0f rows/s (p50 %.2f ms, p99 %.2f ms)", r.Insert.PerSecond, r.Insert.Latency.P50, r.Insert.Latency.P99),
			"—", "1.00", "—"})
	} else {
		rows = append(rows, row{"raw durable INSERT (reference)", na, "—", "—", "—"})
	}

	intakeRate := 0.0
	if r.Intake != nil {
		intakeRate = r.Intake.OKPerSecond
		ratio, met := ratioMin(intakeRate, insertRate, targetIntakeVsInsert)
		rows = append(rows, row{
			fmt.Sprintf("intake, %d concurrent, DF_WORKERS=0", r.Intake.Concurrency),
			fmt.Sprintf("%.0f events/s, %d errors", intakeRate, r.Intake.Errors),
			fmt.Sprintf("≥ %.1f× INSERT", targetIntakeVsInsert), ratio, met})
		rows = append(rows, row{"intake latency at that load",
			fmt.Sprintf("p50 %.2f / p90 %.2f / p99 %.2f ms", r.Intake.Latency.P50, r.Intake.Latency.P90, r.Intake.Latency.P99),
			"—", "—", "—"})
	} else {
		rows = append(rows, row{"intake", na, fmt.Sprintf("≥ %.1f× INSERT", targetIntakeVsInsert), "—", "no"})
	}

	if r.Paced != nil {
		ratio, met := ratioMax(r.Paced.Latency.P99, targetP99HalfPeakMS)
		rows = append(rows, row{
			fmt.Sprintf("intake latency at 50%% of peak (paced %.0f/s, achieved %.0f/s)", r.Paced.TargetRate, r.Paced.OKPerSecond),
			fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %d errors", r.Paced.Latency.P50, r.Paced.Latency.P99, r.Paced.Errors),
			fmt.Sprintf("p99 ≤ %.0f ms", targetP99HalfPeakMS), ratio, met})
	} else {
		rows = append(rows, row{"intake p99 at 50% of peak", na, fmt.Sprintf("p99 ≤ %.0f ms", targetP99HalfPeakMS), "—", "no"})
	}

	if r.Drain != nil {
		ratio, met := ratioMin(r.Drain.PerSecond, intakeRate, targetDrainVsIntake)
		rows = append(rows, row{
			fmt.Sprintf("drain of the backlog (%d events), default workers, no-op handler", r.Drain.Processed),
			fmt.Sprintf("%.0f events/s (%.0f/s by processed_at)", r.Drain.PerSecond, r.Drain.ServerPerSecond),
			fmt.Sprintf("≥ %.1f× intake", targetDrainVsIntake), ratio, met})
	} else {
		rows = append(rows, row{"drain", na, fmt.Sprintf("≥ %.1f× intake", targetDrainVsIntake), "—", "no"})
	}

	if r.MixedIntake != nil {
		ratio, _ := ratioMin(r.MixedIntake.OKPerSecond, intakeRate, 0)
		rows = append(rows, row{
			"mixed: intake while workers drain",
			fmt.Sprintf("%.0f events/s, p99 %.2f ms, %d errors", r.MixedIntake.OKPerSecond, r.MixedIntake.Latency.P99, r.MixedIntake.Errors),
			"— (vs intake alone)", ratio, "—"})
	}
	if r.MixedDrain != nil {
		tail := "—"
		if r.MixedIntake != nil {
			end := r.MixedIntake.Started.Add(time.Duration((r.MixedIntake.WarmupS + r.MixedIntake.DurationS) * float64(time.Second)))
			tail = fmt.Sprintf("queue empty %.1f s after the load stopped", r.MixedDrain.Finished.Sub(end).Seconds())
		}
		ratio, _ := ratioMin(r.MixedDrain.PerSecond, intakeRate, 0)
		rows = append(rows, row{
			"mixed: end to end (load start → queue empty)",
			fmt.Sprintf("%.0f events/s processed; %s", r.MixedDrain.PerSecond, tail),
			"— (vs intake alone)", ratio, "—"})
	}

	rows = append(rows, obsRows(r)...)
	rows = append(rows, e2eRows(r)...)

	if cpu, ok := r.CPUSeconds["serve intake"]; ok && r.Intake != nil && r.Paced != nil {
		if events := r.Intake.TotalSent + r.Paced.TotalSent; events > 0 {
			rows = append(rows, row{"serve CPU per webhook, intake phases (user+system)",
				fmt.Sprintf("%.0f µs (%.1f s for %d requests)", cpu/float64(events)*1e6, cpu, events), "—", "—", "—"})
		}
	}

	if peak, phase := peakRSS(r.RSSKiB); peak > 0 {
		mib := float64(peak) / 1024
		ratio, met := ratioMax(mib, targetRSSMiB)
		rows = append(rows, row{"peak RSS of serve (VmHWM, " + phase + ")",
			fmt.Sprintf("%.1f MiB", mib), fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), ratio, met})
	} else {
		rows = append(rows, row{"peak RSS of serve", na, fmt.Sprintf("≤ %.0f MiB", targetRSSMiB), "—", "no"})
	}

	p("# Benchmarks\n\n")
	p("Written by `make bench` (scripts/bench.sh + cmd/loadgen); do not edit by hand.\n")
	p("One run measures the physical reference and the service side by side: on a small,\n")
	p("noisy machine the ratios are the result, the absolute figures only describe this box.\n\n")
	p("| figure | value | target | ratio | met? |\n| --- | --- | --- | --- | --- |\n")
	for _, x := range rows {
		p("| %s | %s | %s | %s | %s |\n", x.figure, x.value, x.target, x.ratio, x.met)
	}
	p("\nRatios: intake ÷ INSERT rate, drain ÷ intake rate, observability on ÷ off (means of the runs of each mode), end to end ÷ no-op drain rate, latency ÷ its bound, RSS ÷ its bound.\n\n")

	p("## Machine\n\n")
	for _, f := range facts {
		p("- %s: %s\n", f.name, f.value)
	}
	for _, k := range sortedKeys(r.Env) {
		p("- %s: %s\n", k, r.Env[k])
	}

	p("\n## Method\n\n")
	p("All phases run in one `make bench` against a fresh database `df_bench` on the local PostgreSQL,\n")
	p("with the load generator on the same machine (it competes for the same CPUs in every phase).\n\n")
	p("1. **INSERT reference** — `loadgen insert`: %d pgx connections, each committing one-row\n", conc)
	p("   `INSERT`s of a 1 KiB jsonb payload into a scratch table shaped like `webhook_events`\n")
	p("   (uuid primary key from `gen_random_uuid()`, text columns, jsonb, unique text dedupe key),\n")
	p("   `synchronous_commit` as configured (on): the durable single-row commit rate of this disk.\n")
	p("2. **Intake** — `df-middleware serve` with `DF_WORKERS=0`; `loadgen intake` posts signed\n")
	p("   `bench.noop` texting webhooks (~1 KiB, `X-Texting-Signature` = hex HMAC-SHA256) from %d\n", conc)
	p("   concurrent keep-alive connections in a closed loop; a request counts when answered 202\n")
	p("   `accepted` (i.e. committed). Latency percentiles from all samples, sorted.\n")
	p("3. **Latency at 50%% of peak** — the same server, paced open loop at half the intake rate;\n")
	p("   latency counts from each request's intended send time (no coordinated omission).\n")
	p("4. **Drain** — serve restarted with the default worker count on the backlog of 2 and 3;\n")
	p("   `bench.noop` has no handler, so workers mark each event `skipped` (the no-op path).\n")
	p("   `loadgen drain` polls every 250 ms from the first claim until no row is `pending` or\n")
	p("   `processing`; the rate is rows finished ÷ that wall time (the `processed_at` span is shown too).\n")
	p("5. **Mixed** — intake at the same concurrency while the workers drain, then until the queue is empty.\n")
	p("6. **Observability overhead** — shorter runs, in the same `make bench`: each run creates a fresh database\n")
	p("   `df_bench_obs`, measures intake as in 2 (DF_WORKERS=0, %d concurrent, closed loop) for %s, then restarts serve\n", conc, obsDuration(r))
	p("   with the default workers and measures the no-op drain of that run's backlog as in 4. Runs alternate\n")
	p("   %s to limit drift on this noisy machine; off is the mean of the off runs. **Off**: no `OTEL_*`\n", obsOrder(r.Obs))
	p("   endpoint (tracing not installed) and nobody scrapes `/metrics`. **On**: `OTEL_EXPORTER_OTLP_ENDPOINT`\n")
	p("   points at `loadgen otlp-sink` on 127.0.0.1 (OTLP/HTTP: reads each `POST /v1/traces`, counts requests,\n")
	p("   bytes and spans by walking the protobuf wire format, answers 200 with an empty `ExportTraceServiceResponse`),\n")
	p("   `OTEL_TRACES_SAMPLER=always_on` (every request and job traced: the worst case; batch span processor\n")
	p("   at its defaults), and `loadgen scrape` GETs `/metrics` every second as Prometheus would, from serve's\n")
	p("   readiness to its stop. Sink and scraper share the two CPUs with serve, PostgreSQL and the load generator.\n")
	p("7. **End to end through the sandbox** — `bin/sandbox serve` with no faults and no added latency, its\n")
	p("   rate limits lifted (`--ghl-burst -1 --ghl-daily -1 --aloware-per-minute -1`), and serve with the\n")
	p("   default workers on a fresh database `df_bench_e2e`, pointed at it as `make run` does (sandbox\n")
	p("   credentials, `GHL_BASE_URL` … `CLERK_API_URL`, `GHL_WEBHOOK_PUBLIC_KEY` of a key the bench generates).\n")
	p("   `loadgen intake -source ghl` posts GHL `ContactCreate` webhooks, each with its own contact id,\n")
	p("   email, E.164 phone number (+1310555xxxx onwards), `webhookId` and fresh `timestamp`, signed with\n")
	p("   Ed25519 (`X-GHL-Signature`); every one becomes an Aloware contact, a contact mapping, an echo\n")
	p("   fingerprint and a `sync_log` row. First saturating: %d concurrent connections in a closed loop\n", e2eConc(r))
	p("   until %s events are accepted, then `loadgen e2e` waits until none is `pending` or `processing`\n", e2eEvents(r))
	p("   and reads from the database the statuses, the rate (done events ÷ first `received_at` to last\n")
	p("   `processed_at`) and the intake-to-done latency (`processed_at − received_at` of the done rows,\n")
	p("   `percentile_disc`). The rate is compared with the no-op drain of phase 4. The saturating run's\n")
	p("   latency is mostly waiting behind its own backlog, so the same is then measured paced (open loop)\n")
	p("   at half the end-to-end rate for the phase duration, on fresh phone numbers. The load is bounded by\n")
	p("   a number of events rather than time because the queue, not intake, sets the pace: a closed loop\n")
	p("   for the full duration would leave a backlog of intake-rate × duration events to wait for.\n")
	p("8. **RSS** — `VmHWM` of the serve process from `/proc/PID/status` at the end of each serve run; the largest is reported.\n")
	p("   Serve's CPU time (`/proc/PID/stat`) per request of phases 2–3 is shown as a figure less sensitive to a noisy neighbour.\n\n")

	var notes []string
	for _, lr := range []*LoadResult{r.Insert, r.Intake, r.Paced, r.MixedIntake} {
		if lr != nil && lr.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s %s: %d errors: %s", lr.Mode, lr.Target, lr.Errors, formatCounts(lr.ErrorSamples)))
		}
	}
	if r.Paced != nil && r.Paced.TargetRate > 0 && r.Paced.OKPerSecond < 0.95*r.Paced.TargetRate {
		notes = append(notes, fmt.Sprintf("the paced run achieved only %.0f of %.0f requests/s", r.Paced.OKPerSecond, r.Paced.TargetRate))
	}
	if r.Drain != nil {
		notes = append(notes, "statuses after the drain: "+formatCounts(r.Drain.FinalStatuses))
	}
	if r.MixedDrain != nil {
		notes = append(notes, "statuses at the end of the run: "+formatCounts(r.MixedDrain.FinalStatuses))
	}
	notes = append(notes, obsNotes(r)...)
	notes = append(notes, e2eNotes(r)...)
	if len(notes) > 0 {
		p("## Notes of this run\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
		p("\n")
	}

	p("## Reproduce\n\n")
	p("```sh\nmake bench                          # defaults: 32 concurrent, 20 s per phase, 3000 end-to-end events\n")
	p("BENCH_CONCURRENCY=64 BENCH_DURATION=30s BENCH_E2E_EVENTS=10000 make bench\n```\n\n")
	p("Needs Go and a local PostgreSQL (found or started by `scripts/devdb.sh`); raw JSON results\n")
	p("of the last run are left in `.dev/bench/`.\n")
	return b.String()
}

// e2eRows: the figures of the end-to-end phase.
func e2eRows(r *benchRun) []row {
	const na = "not measured"
	target := fmt.Sprintf("≥ %.1f× no-op drain", targetE2EVsDrain)
	if r.E2E == nil {
		return []row{{"end to end through the sandbox", na, target, "—", "no"}}
	}
	noop := 0.0
	if r.Drain != nil {
		noop = r.Drain.PerSecond
	}
	e := r.E2E
	ratio, met := ratioMin(e.PerSecond, noop, targetE2EVsDrain)
	if !e.AllDone {
		met = "**no** (not all done)"
	}
	intake := ""
	if r.E2EIntake != nil {
		intake = fmt.Sprintf("; intake acknowledged %.0f/s, %d errors", r.E2EIntake.OKPerSecond, r.E2EIntake.Errors)
	}
	rows := []row{
		{fmt.Sprintf("end to end through the sandbox at zero added latency: %d GHL ContactCreate → Aloware contact, %d concurrent, default workers",
			e.Events, e2eConc(r)),
			fmt.Sprintf("%.1f events/s intake → done%s", e.PerSecond, intake), target, ratio, met},
		{"end-to-end intake-to-done latency at that load (mostly queueing behind the backlog)",
			fmt.Sprintf("p50 %.0f / p90 %.0f / p99 %.0f ms", e.Latency.P50, e.Latency.P90, e.Latency.P99), "—", "—", "—"},
	}
	if p := r.E2EPaced; p != nil {
		rate := 0.0
		if r.E2EPacedIntake != nil {
			rate = r.E2EPacedIntake.TargetRate
		}
		rows = append(rows, row{
			fmt.Sprintf("end-to-end intake-to-done latency at 50%% of that rate (paced %.1f/s, %d events)", rate, p.Events),
			fmt.Sprintf("p50 %.1f / p90 %.1f / p99 %.1f ms", p.Latency.P50, p.Latency.P90, p.Latency.P99), "—", "—", "—"})
	}
	done := fmt.Sprintf("%d of %d", e.Done, e.Events)
	all := e.AllDone
	if p := r.E2EPaced; p != nil {
		done += fmt.Sprintf(" saturating, %d of %d paced", p.Done, p.Events)
		all = all && p.AllDone
	}
	rows = append(rows, row{"end-to-end events that ended `done`", done, "all", "—", yesNo(all)})
	if s, ok := r.CPUSeconds["sandbox e2e"]; ok {
		rows = append(rows, row{"CPU during the end-to-end phase (user+system)",
			fmt.Sprintf("serve %.1f s, sandbox %.1f s", r.CPUSeconds["serve e2e"], s), "—", "—", "—"})
	}
	return rows
}

func e2eNotes(r *benchRun) []string {
	var notes []string
	for _, x := range []struct {
		name string
		e    *E2EResult
	}{{"end to end, saturating", r.E2E}, {"end to end, paced", r.E2EPaced}} {
		if x.e == nil {
			continue
		}
		n := fmt.Sprintf("%s: statuses %s; %d needed more than one attempt; sync_log %s; %d contact mappings",
			x.name, formatCounts(x.e.Statuses), x.e.Retried, formatCounts(x.e.SyncLog), x.e.ContactMappings)
		if x.e.TimedOut {
			n += fmt.Sprintf("; **gave up waiting for the queue after %.0f s**", x.e.WaitedS)
		}
		if len(x.e.ErrorSamples) > 0 {
			n += "; error messages: " + formatCounts(x.e.ErrorSamples)
		}
		notes = append(notes, n)
	}
	for _, lr := range []*LoadResult{r.E2EIntake, r.E2EPacedIntake} {
		if lr != nil && lr.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s %s: %d errors: %s", lr.Mode, lr.Target, lr.Errors, formatCounts(lr.ErrorSamples)))
		}
	}
	if e := r.E2E; e != nil && e.PerSecond > 0 && e.PerSecond <= alowareClientLimit*1.1 && e.PerSecond >= alowareClientLimit*0.9 {
		notes = append(notes, fmt.Sprintf("the end-to-end rate (%.1f/s) sits on Aloware's published limit, 5,000 requests/min = %.1f/s: "+
			"each ContactCreate is one Aloware call; the bench lifts the client's budget with ALOWARE_RATE_LIMIT_PER_MINUTE, so check that it reached serve",
			e.PerSecond, alowareClientLimit))
	}
	return notes
}

func e2eConc(r *benchRun) int {
	if r.E2EIntake != nil {
		return r.E2EIntake.Concurrency
	}
	return 0
}

func e2eEvents(r *benchRun) string {
	if r.E2EIntake != nil && r.E2EIntake.MaxOps > 0 {
		return fmt.Sprint(r.E2EIntake.MaxOps)
	}
	return "N"
}

// ratioMin: value ÷ reference, met when ≥ want (want 0: informational).
func ratioMin(value, reference, want float64) (string, string) {
	if reference <= 0 {
		return "—", "—"
	}
	ratio := value / reference
	if want == 0 {
		return fmt.Sprintf("%.2f", ratio), "—"
	}
	return fmt.Sprintf("%.2f", ratio), yesNo(ratio >= want)
}

// ratioMax: value ÷ bound, met when ≤ 1.
func ratioMax(value, bound float64) (string, string) {
	ratio := value / bound
	return fmt.Sprintf("%.2f", ratio), yesNo(ratio <= 1)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func peakRSS(m map[string]int64) (int64, string) {
	var peak int64
	phase := ""
	for _, k := range sortedKeys(m) {
		if m[k] > peak {
			peak, phase = m[k], k
		}
	}
	return peak, phase
}

// formatCounts renders {"a": 1, "b": 2} as "a 1, b 2" in key order.
func formatCounts(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
