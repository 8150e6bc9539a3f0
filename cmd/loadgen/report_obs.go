package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Issue 5: tracing exported (always_on) and /metrics scraped every second
// cost at most 10 % of the intake and drain throughput.
const targetObsOnVsOff = 0.9

// obsRun is one run of the observability phase of scripts/bench.sh: intake
// on a fresh database, then the no-op drain of its backlog, with tracing and
// scraping off or on.
type obsRun struct {
	N      int
	Mode   string // "off" or "on"
	Intake *LoadResult
	Drain  *DrainResult
	// Tracing-on runs only, one each for the intake and the drain serve.
	IntakeSink, DrainSink     *SinkResult
	IntakeScrape, DrainScrape *ScrapeResult
}

// loadObsRuns reads DIR/obs-N-MODE-{intake,drain}[-sink|-scrape].json.
func loadObsRuns(dir string) ([]obsRun, error) {
	names, err := filepath.Glob(filepath.Join(dir, "obs-*-*-intake.json"))
	if err != nil {
		return nil, err
	}
	var runs []obsRun
	for _, name := range names {
		var run obsRun
		base := filepath.Base(name)
		if _, err := fmt.Sscanf(strings.ReplaceAll(strings.TrimSuffix(base, "-intake.json"), "-", " "), "obs %d %s", &run.N, &run.Mode); err != nil {
			continue
		}
		prefix := filepath.Join(dir, fmt.Sprintf("obs-%d-%s-", run.N, run.Mode))
		for _, f := range []struct {
			suffix string
			dst    any
		}{
			{"intake.json", &run.Intake}, {"drain.json", &run.Drain},
			{"intake-sink.json", &run.IntakeSink}, {"drain-sink.json", &run.DrainSink},
			{"intake-scrape.json", &run.IntakeScrape}, {"drain-scrape.json", &run.DrainScrape},
		} {
			b, err := os.ReadFile(prefix + f.suffix)
			if errors.Is(err, fs.ErrNotExist) || (err == nil && len(strings.TrimSpace(string(b))) == 0) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, f.dst); err != nil {
				return nil, fmt.Errorf("%s%s: %w", prefix, f.suffix, err)
			}
		}
		runs = append(runs, run)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].N < runs[j].N })
	return runs, nil
}

// obsMean: the mean of f over the runs of mode that have a value, and the
// values ("a, b") when there are several.
func obsMean(runs []obsRun, mode string, f func(obsRun) (float64, bool)) (float64, string, int) {
	var sum float64
	var vals []string
	for _, r := range runs {
		if r.Mode != mode {
			continue
		}
		if v, ok := f(r); ok {
			sum += v
			vals = append(vals, fmt.Sprintf("%.0f", v))
		}
	}
	if len(vals) == 0 {
		return 0, "", 0
	}
	each := ""
	if len(vals) > 1 {
		each = " (runs: " + strings.Join(vals, ", ") + ")"
	}
	return sum / float64(len(vals)), each, len(vals)
}

func obsOrder(runs []obsRun) string {
	var s []string
	for _, r := range runs {
		s = append(s, r.Mode)
	}
	return strings.Join(s, " → ")
}

// obsRows: the figures of the observability-overhead phase.
func obsRows(r *benchRun) []row {
	if len(r.Obs) == 0 {
		return nil
	}
	target := fmt.Sprintf("on ≥ %.2f× off", targetObsOnVsOff)
	var rows []row
	conc, dur := 0, 0.0
	for _, o := range r.Obs {
		if o.Intake != nil {
			conc, dur = o.Intake.Concurrency, o.Intake.DurationS
		}
	}
	pair := func(figure, unit string, f func(obsRun) (float64, bool)) {
		off, offEach, nOff := obsMean(r.Obs, "off", f)
		on, onEach, nOn := obsMean(r.Obs, "on", f)
		if nOff == 0 || nOn == 0 {
			rows = append(rows, row{figure, "not measured", target, "—", "**no**"})
			return
		}
		ratio, met := ratioMin(on, off, targetObsOnVsOff)
		rows = append(rows, row{figure,
			fmt.Sprintf("off %.0f %s%s; on %.0f %s%s", off, unit, offEach, on, unit, onEach), target, ratio, met})
	}
	pair(fmt.Sprintf("observability overhead: intake, %d concurrent, DF_WORKERS=0, %.0f s per run, order %s", conc, dur, obsOrder(r.Obs)),
		"events/s", func(o obsRun) (float64, bool) {
			if o.Intake == nil {
				return 0, false
			}
			return o.Intake.OKPerSecond, true
		})
	pair("observability overhead: no-op drain of each run's backlog, default workers", "events/s",
		func(o obsRun) (float64, bool) {
			if o.Drain == nil {
				return 0, false
			}
			return o.Drain.PerSecond, true
		})
	cpuPer := func(o obsRun) (float64, bool) {
		cpu, ok := r.CPUSeconds[fmt.Sprintf("serve obs-%d-%s-intake", o.N, o.Mode)]
		if !ok || o.Intake == nil || o.Intake.TotalSent == 0 {
			return 0, false
		}
		return cpu / float64(o.Intake.TotalSent) * 1e6, true
	}
	if off, _, n1 := obsMean(r.Obs, "off", cpuPer); n1 > 0 {
		if on, _, n2 := obsMean(r.Obs, "on", cpuPer); n2 > 0 {
			ratio, _ := ratioMin(on, off, 0)
			rows = append(rows, row{"observability overhead: serve CPU per intake request (user+system)",
				fmt.Sprintf("off %.0f µs, on %.0f µs", off, on), "— (on ÷ off)", ratio, "—"})
		}
	}
	for _, o := range r.Obs {
		if o.Mode != "on" {
			continue
		}
		var req, bytes, spans int64
		var parts []string
		for _, s := range []struct {
			name string
			sink *SinkResult
			load int64
			unit string
		}{{"intake serve", o.IntakeSink, totalSent(o.Intake), "request"}, {"drain serve", o.DrainSink, drained(o.Drain), "event"}} {
			if s.sink == nil {
				parts = append(parts, s.name+": no sink result")
				continue
			}
			req, bytes, spans = req+s.sink.Requests, bytes+s.sink.Bytes, spans+s.sink.Spans
			per := ""
			if s.load > 0 {
				per = fmt.Sprintf(", %.2f per %s", float64(s.sink.Spans)/float64(s.load), s.unit)
			}
			parts = append(parts, fmt.Sprintf("%s %d spans in %d requests%s", s.name, s.sink.Spans, s.sink.Requests, per))
		}
		rows = append(rows, row{fmt.Sprintf("spans exported to the OTLP sink (run %d, always_on)", o.N),
			fmt.Sprintf("%d requests, %.1f MiB, %d spans: %s", req, float64(bytes)/(1<<20), spans, strings.Join(parts, "; ")),
			"> 0", "—", yesNo(req > 0 && bytes > 0)})
		var ok, attempts int64
		var wall float64
		var fails []string
		for _, s := range []*ScrapeResult{o.IntakeScrape, o.DrainScrape} {
			if s == nil {
				continue
			}
			ok, attempts, wall = ok+s.OK, attempts+s.Attempts, wall+s.WallS
			if s.Failed > 0 {
				fails = append(fails, formatCounts(s.Failures))
			}
		}
		v := fmt.Sprintf("%d ok of %d in %.0f s of serve", ok, attempts, wall)
		if o.IntakeScrape != nil && o.IntakeScrape.OK > 0 {
			v += fmt.Sprintf(" (during intake: p50 %.1f / max %.1f ms, %.0f KiB each)", o.IntakeScrape.Latency.P50,
				o.IntakeScrape.Latency.Max, float64(o.IntakeScrape.Bytes)/float64(o.IntakeScrape.OK)/1024)
		}
		if len(fails) > 0 {
			v += "; failures: " + strings.Join(fails, "; ")
		}
		rows = append(rows, row{fmt.Sprintf("scrapes of /metrics every 1 s (run %d)", o.N), v, "all ok", "—", yesNo(ok > 0 && ok == attempts)})
	}
	return rows
}

func totalSent(l *LoadResult) int64 {
	if l == nil {
		return 0
	}
	return l.TotalSent
}

func drained(d *DrainResult) int64 {
	if d == nil {
		return 0
	}
	return d.Processed
}

// obsNotes: errors and statuses of the observability runs.
func obsNotes(r *benchRun) []string {
	var notes []string
	for _, o := range r.Obs {
		if o.Intake != nil && o.Intake.Errors > 0 {
			notes = append(notes, fmt.Sprintf("observability run %d (%s), intake: %d errors: %s", o.N, o.Mode, o.Intake.Errors, formatCounts(o.Intake.ErrorSamples)))
		}
		if o.Drain != nil {
			notes = append(notes, fmt.Sprintf("observability run %d (%s): statuses after the drain: %s", o.N, o.Mode, formatCounts(o.Drain.FinalStatuses)))
		}
		for _, s := range []*SinkResult{o.IntakeSink, o.DrainSink} {
			if s != nil && (s.Rejected > 0 || s.DecodeErrors > 0) {
				notes = append(notes, fmt.Sprintf("observability run %d: the OTLP sink rejected %d requests, could not count the spans of %d", o.N, s.Rejected, s.DecodeErrors))
			}
		}
	}
	return notes
}

func obsDuration(r *benchRun) string {
	for _, o := range r.Obs {
		if o.Intake != nil {
			return fmt.Sprintf("%.0f s after %.0f s of warm-up", o.Intake.DurationS, o.Intake.WarmupS)
		}
	}
	return "the phase duration"
}
