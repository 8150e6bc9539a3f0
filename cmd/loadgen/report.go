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
	RSSKiB      map[string]int64   // serve phase → VmHWM in KiB
	CPUSeconds  map[string]float64 // serve phase → user+system CPU seconds
	Env         map[string]string
}

// Targets of issue 2.
const (
	targetIntakeVsInsert = 1.0
	targetDrainVsIntake  = 0.9
	targetP99HalfPeakMS  = 50.0
	targetRSSMiB         = 150.0
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
	p("\nRatios: intake ÷ INSERT rate, drain ÷ intake rate, latency ÷ its bound, RSS ÷ its bound.\n\n")

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
	p("6. **RSS** — `VmHWM` of the serve process from `/proc/PID/status` at the end of each serve run; the larger is reported.\n")
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
	if len(notes) > 0 {
		p("## Notes of this run\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
		p("\n")
	}

	p("## Reproduce\n\n")
	p("```sh\nmake bench                          # defaults: 32 concurrent, 20 s per phase\n")
	p("BENCH_CONCURRENCY=64 BENCH_DURATION=30s make bench\n```\n\n")
	p("Needs Go and a local PostgreSQL (found or started by `scripts/devdb.sh`); raw JSON results\n")
	p("of the last run are left in `.dev/bench/`.\n")
	return b.String()
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
