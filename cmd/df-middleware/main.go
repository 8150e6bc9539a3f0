// Command df-middleware is the CRM / call-center integration middleware:
// webhook intake, the work queue, and the operations surface.
//
//	df-middleware serve            sidecar listener (intake, admin, health) and workers
//	df-middleware migrate up       apply pending migrations
//	df-middleware migrate status   list migrations and whether each is applied
//	df-middleware version          print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"

	"github.com/df-middleware/df-middleware/internal/app"
	"github.com/df-middleware/df-middleware/internal/config"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `usage: df-middleware <command>

commands:
  serve            run the sidecar HTTP listener (webhooks, admin API, health, MCP at /mcp) and the workers
  mcp [flags]      MCP over stdio, with the sidecar in the same process
                   (--no-sidecar, --toolsets ops,events,sync,broadcasts, --read-only)
  migrate up       apply pending database migrations
  migrate status   list migrations and whether each is applied
  version          print the version

Configuration comes from environment variables; see README.md.
`

func main() {
	tuneGC(os.Getenv)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// tuneGC trades memory the service does not use for CPU it does: at
// thousands of webhooks a second the default GOGC=100 spends a sixth of the
// CPU collecting. A soft memory limit keeps the heap bounded all the same.
// GOGC and GOMEMLIMIT in the environment still win.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(128 << 20)
	}
}

func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "df-middleware", buildVersion())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve", "migrate", "mcp":
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}

	cfg, cfgErr := config.Load(getenv)
	log, levelErr := observe.NewLogger(stderr, cfg.LogLevel, cfg.Secrets())
	log = observe.Component(log, "main")
	if cfgErr != nil {
		logProblems(log, cfgErr)
		return 2
	}
	if levelErr != nil {
		log.Warn().Err(levelErr).Msg("LOG_LEVEL ignored")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if args[0] == "serve" || args[0] == "mcp" {
		// OTLP over HTTP from the OTEL_* environment; nothing installed
		// (no cost) when no endpoint is set. Exporter problems are logged
		// as contract lines, never as bare text on stderr.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn().Err(err).Msg("opentelemetry")
		}))
		shutdown, terr := observe.SetupTracing(ctx, observe.ServiceName, buildVersion())
		if terr != nil {
			log.Error().Err(terr).Msg("tracing not started: check the OTEL_* variables")
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				log.Warn().Err(err).Msg("flushing traces on exit failed")
			}
		}()
	}

	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, cfg, log)
	case "mcp":
		err = serveMCPStdio(ctx, cfg, args[1:], stdin, stdout, stderr, log)
	case "migrate":
		err = migrate(ctx, cfg, args[1:], stdout)
	}
	if err != nil {
		log.Error().Err(err).Msg(args[0] + " failed")
		return 1
	}
	return 0
}

// logProblems writes one line per configuration problem, so an operator sees
// all of them at once.
func logProblems(log zerolog.Logger, err error) {
	var joined interface{ Unwrap() []error }
	problems := []error{err}
	if errors.As(err, &joined) {
		problems = joined.Unwrap()
	}
	for _, p := range problems {
		log.Error().Str("problem", p.Error()).Msg("invalid configuration")
	}
	log.Error().Int("problems", len(problems)).Msg("refusing to start: fix the configuration above")
}

func serve(ctx context.Context, cfg config.Config, log zerolog.Logger) error {
	log.Info().Str("version", buildVersion()).Interface("config", cfg.Redacted()).Msg("starting")
	svc, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := mountMCPHTTP(ctx, svc, log); err != nil {
		svc.Store.Close()
		return err
	}
	ln, err := app.Listen(cfg)
	if err != nil {
		svc.Store.Close()
		return err
	}
	return svc.Run(ctx, ln)
}

func migrate(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "status") {
		return errors.New("usage: df-middleware migrate up|status")
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "up" {
		n, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
	}
	states, err := st.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	for _, m := range states {
		state := "pending"
		if m.Applied {
			state = "applied " + m.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(stdout, "%05d  %-30s %s\n", m.Version, m.Name, state)
	}
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
