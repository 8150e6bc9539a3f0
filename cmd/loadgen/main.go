// Command loadgen drives the benchmarks of df-middleware (scripts/bench.sh,
// `make bench`). Every subcommand prints one JSON document to stdout and its
// progress to stderr.
//
//	loadgen insert  -db URL    raw durable single-row INSERT rate (the physical reference)
//	loadgen intake  -url URL   signed texting (or -source ghl: GHL ContactCreate) webhooks, closed loop or paced (-rate)
//	loadgen drain   -db URL    time until webhook_events has no pending/processing row
//	loadgen e2e     -db URL -since T   wait for the queue, then statuses, rate and latency intake → done
//	loadgen exec    -db URL SQL...   run statements (database setup without psql)
//	loadgen otlp-sink -addr HOST:PORT   OTLP/HTTP trace receiver that counts and discards (prints counts on SIGTERM)
//	loadgen scrape  -url URL   GET /metrics every -interval like Prometheus (prints counts on SIGTERM)
//	loadgen report  -dir DIR   turn the JSON results of a bench run into docs/benchmarks.md
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage: loadgen <insert|intake|drain|e2e|exec|otlp-sink|scrape|report> [flags]
  insert  raw durable single-row INSERT rate of a 1 KiB jsonb row (pgx, one connection per worker)
  intake  POST signed bench webhooks at a concurrency, optionally paced: texting bench.noop
          (default) or -source ghl -ghl-key FILE: GHL ContactCreate, unique contact per request
  drain   wait for the first claim, then until no webhook_events row is pending/processing
  e2e     wait until no event received since -since is live, then statuses, done/s and
          intake-to-done latency from the database
  exec    run SQL statements given as arguments
  otlp-sink  accept OTLP/HTTP POST /v1/traces, count requests/bytes/spans, answer 200; JSON on SIGTERM
  scrape  GET a /metrics URL every -interval (1s), count successful scrapes; JSON on SIGTERM
  report  write the markdown report of a bench run
run "loadgen <subcommand> -h" for its flags
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "insert":
		err = cmdInsert(ctx, args)
	case "intake":
		err = cmdIntake(ctx, args)
	case "drain":
		err = cmdDrain(ctx, args)
	case "e2e":
		err = cmdE2E(ctx, args)
	case "exec":
		err = cmdExec(ctx, args)
	case "otlp-sink":
		err = cmdOTLPSink(ctx, args)
	case "scrape":
		err = cmdScrape(ctx, args)
	case "report":
		err = cmdReport(ctx, args)
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// writeJSON prints v as indented JSON on stdout.
func writeJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
}

// envOr returns the environment variable key, or def when it is empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
