// Command sandbox serves local stand-ins for GHL, Aloware, Verity and Clerk
// (internal/sandbox) and delivers correctly signed sample webhooks to the
// service.
//
//	sandbox [serve] [--addr 127.0.0.1:4010] [--latency 0] [--error-rate 0] [--rate-429 0] …
//	sandbox deliver --to http://127.0.0.1:3002 --kind ghl-contact|aloware-call|texting-stop|texting-message|broadcast-analytics|all --count N
//	sandbox ghl-public-key [--ghl-signing-key FILE]
//
// Credentials come from the variables the service reads (GHL_API_KEY,
// GHL_LOCATION_ID, ALOWARE_API_TOKEN, VERITY_API_KEY, CLERK_SECRET_KEY;
// development defaults when unset; VERITY_WEBHOOK_SECRET and
// ALOWARE_WEBHOOK_BEARER_TOKEN or _BASIC_USER/_PASS for deliver). Logs are
// JSON lines on stderr; serve writes nothing to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
)

const (
	defaultAddr       = "127.0.0.1:4010"
	defaultTo         = "http://127.0.0.1:3002"
	defaultSigningKey = ".dev/sandbox-ghl-signing-key.pem"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  sandbox [serve] [flags]          serve the GHL, Aloware, Verity and Clerk stand-ins
  sandbox deliver --kind K [flags] POST signed sample webhooks to the service
  sandbox ghl-public-key [flags]   print the base64 SPKI public key of the GHL signing key
run "sandbox <command> -h" for the flags of a command
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, getenv, stderr)
	case "deliver":
		err = deliver(ctx, args, getenv, stderr)
	case "ghl-public-key":
		err = ghlPublicKey(args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sandbox: unknown command %q\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "sandbox %s: %v\n", cmd, err)
	return 1
}

var errUsage = errors.New("usage")

// newLogger writes the service's log line shape: timestamp, level,
// service, component, message, metadata.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q is not one of debug, info, warn, error", level)
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey:
			return slog.String("timestamp", a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		case slog.LevelKey:
			return slog.String("level", strings.ToLower(a.Value.String()))
		case slog.MessageKey:
			return slog.String("message", a.Value.String())
		}
		return a
	}})
	return slog.New(h).With("service", "sandbox"), nil
}

// env returns the variable's value, or def when it is unset or empty.
func env(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

func envFloat(getenv func(string) string, name string) (float64, error) {
	v := env(getenv, name, "0")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a number", name, v)
	}
	return f, nil
}

func envDuration(getenv func(string) string, name string) (time.Duration, error) {
	v := env(getenv, name, "0s")
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a duration (e.g. 50ms)", name, v)
	}
	return d, nil
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sandbox "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}

// ---- serve ---------------------------------------------------------------

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	latency, err := envDuration(getenv, "SANDBOX_LATENCY")
	if err != nil {
		return err
	}
	errRate, err := envFloat(getenv, "SANDBOX_ERROR_RATE")
	if err != nil {
		return err
	}
	rate429, err := envFloat(getenv, "SANDBOX_RATE_429")
	if err != nil {
		return err
	}
	fs := newFlags("serve", stderr)
	addr := fs.String("addr", env(getenv, "SANDBOX_ADDR", defaultAddr), "listen address (env SANDBOX_ADDR)")
	logLevel := fs.String("log-level", env(getenv, "SANDBOX_LOG_LEVEL", "info"), "debug logs every request (env SANDBOX_LOG_LEVEL)")
	fs.DurationVar(&latency, "latency", latency, "latency added to every upstream answer (env SANDBOX_LATENCY)")
	fs.Float64Var(&errRate, "error-rate", errRate, "share of upstream calls answered with --error-status, 0..1 (env SANDBOX_ERROR_RATE)")
	fs.Float64Var(&rate429, "rate-429", rate429, "share of upstream calls answered 429, 0..1 (env SANDBOX_RATE_429)")
	errStatus := fs.Int("error-status", 0, "status of injected errors (default 500)")
	faultsOn := fs.String("faults-upstream", "all", "upstream the fault flags apply to: ghl, aloware, verity, clerk or all")
	seed := fs.Bool("seed", true, "load the seed data (Clerk users and sessions, Verity broadcasts and calls)")
	ghlBurst := fs.Int("ghl-burst", sandbox.DefaultGHLBurst, "GHL requests per --ghl-interval (< 0 unlimited)")
	ghlInterval := fs.Duration("ghl-interval", sandbox.DefaultGHLInterval, "GHL burst window")
	ghlDaily := fs.Int("ghl-daily", sandbox.DefaultGHLDailyLimit, "GHL requests per day (< 0 unlimited)")
	aloPerMin := fs.Int("aloware-per-minute", sandbox.DefaultAlowarePerMinute, "Aloware requests per minute (< 0 unlimited)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	log = log.With("component", "serve")

	cfg := sandbox.Config{
		GHLToken:         credential(log, getenv, "GHL_API_KEY", sandbox.DevGHLAPIKey),
		GHLLocationID:    credential(log, getenv, "GHL_LOCATION_ID", sandbox.DevGHLLocationID),
		AlowareToken:     credential(log, getenv, "ALOWARE_API_TOKEN", sandbox.DevAlowareToken),
		VerityAPIKey:     credential(log, getenv, "VERITY_API_KEY", sandbox.DevVerityAPIKey),
		ClerkSecretKey:   credential(log, getenv, "CLERK_SECRET_KEY", sandbox.DevClerkSecretKey),
		Seed:             *seed,
		GHLBurst:         *ghlBurst,
		GHLInterval:      *ghlInterval,
		GHLDailyLimit:    *ghlDaily,
		AlowarePerMinute: *aloPerMin,
	}
	sb := sandbox.New(cfg)
	f := sandbox.Faults{ErrorRate: errRate, Rate429: rate429, Latency: latency, Status: *errStatus}
	if err := f.Validate(); err != nil {
		return err
	}
	if f != (sandbox.Faults{}) {
		if err := setFaults(sb, *faultsOn, f); err != nil {
			return err
		}
		log.Info("faults injected", "metadata", map[string]any{"upstream": *faultsOn, "latency_ms": latency.Milliseconds(),
			"error_rate": errRate, "rate_429": rate429, "error_status": *errStatus})
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: logRequests(log, sb), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "sandbox listening on %s\n", base)
	log.Info("sandbox listening", "metadata", map[string]any{
		"addr": ln.Addr().String(), "seed": *seed, "ghl_burst": *ghlBurst, "ghl_interval": ghlInterval.String(),
		"aloware_per_minute": *aloPerMin,
		"GHL_BASE_URL":       base + sandbox.PrefixGHL, "ALOWARE_BASE_URL": base + sandbox.PrefixAloware,
		"VERITY_BASE_URL": base + sandbox.PrefixVerity, "CLERK_API_URL": base + sandbox.PrefixClerk,
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// A connection still busy (or opened and never used: net/http
		// waits 5 s before counting those idle) must not turn a clean stop
		// into a failure: close what is left.
		log.Warn("shutdown deadline passed; closing remaining connections", "error", err.Error())
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// setFaults applies f without SetFaults' panic on a bad name.
func setFaults(sb *sandbox.Server, upstream string, f sandbox.Faults) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("--faults-upstream: %v", r)
		}
	}()
	sb.SetFaults(upstream, f)
	return nil
}

// credential reads a credential variable, falling back to (and saying so)
// the development default; the value itself is never logged.
func credential(log *slog.Logger, getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	log.Info("credential not set: accepting the development default", "metadata", map[string]any{"variable": name})
	return def
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests logs every request at debug: method, path (never the query,
// which carries Aloware's api_token), status, duration.
func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		log.Debug("request", "metadata", map[string]any{
			"method": r.Method, "path": r.URL.Path, "status": sw.status,
			"duration_ms": float64(time.Since(start).Microseconds()) / 1000,
		})
	})
}

// ---- deliver -------------------------------------------------------------

func deliver(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlags("deliver", stderr)
	to := fs.String("to", env(getenv, "SANDBOX_DELIVER_TO", defaultTo), "base URL of the service (env SANDBOX_DELIVER_TO)")
	kind := fs.String("kind", "", "what to send: "+strings.Join(sandbox.WebhookKinds, ", ")+", or all")
	count := fs.Int("count", 1, "deliveries per kind")
	interval := fs.Duration("interval", 0, "pause between deliveries")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one delivery")
	keyFile := fs.String("ghl-signing-key", env(getenv, "SANDBOX_GHL_SIGNING_KEY", defaultSigningKey),
		"PEM PKCS#8 Ed25519 key GHL deliveries are signed with; created when missing (env SANDBOX_GHL_SIGNING_KEY)")
	logLevel := fs.String("log-level", env(getenv, "SANDBOX_LOG_LEVEL", "info"), "log level")
	if err := parse(fs, args); err != nil {
		return err
	}
	kinds := []string{*kind}
	switch {
	case *kind == "all":
		kinds = sandbox.WebhookKinds
	case *kind == "":
		fmt.Fprintf(stderr, "--kind is required: %s or all\n", strings.Join(sandbox.WebhookKinds, ", "))
		return errUsage
	}
	if *count < 1 {
		fmt.Fprintln(stderr, "--count must be at least 1")
		return errUsage
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	log = log.With("component", "deliver")

	sec := sandbox.WebhookSecrets{
		GHLLocationID:       env(getenv, "GHL_LOCATION_ID", sandbox.DevGHLLocationID),
		VerityWebhookSecret: getenv("VERITY_WEBHOOK_SECRET"),
		AlowareBearerToken:  getenv("ALOWARE_WEBHOOK_BEARER_TOKEN"),
		AlowareBasicUser:    getenv("ALOWARE_WEBHOOK_BASIC_USER"),
		AlowareBasicPass:    getenv("ALOWARE_WEBHOOK_BASIC_PASS"),
	}
	for _, k := range kinds {
		if k == sandbox.KindGHLContact {
			key, created, err := sandbox.LoadOrCreateEd25519Key(*keyFile)
			if err != nil {
				return fmt.Errorf("GHL signing key: %w", err)
			}
			if created {
				log.Warn("created a new GHL signing key: the service must have its public key in GHL_WEBHOOK_PUBLIC_KEY (sandbox ghl-public-key)",
					"metadata", map[string]any{"file": *keyFile})
			}
			sec.GHLKey = key
		}
	}
	base := strings.TrimRight(*to, "/")
	client := &http.Client{Timeout: *timeout}
	run := sandbox.NewRunID()
	var sent, failed int
	for _, k := range kinds {
		for i := range *count {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if (sent > 0) && *interval > 0 {
				select {
				case <-time.After(*interval):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			w, err := sandbox.SampleWebhook(k, run, i, time.Now(), sec)
			if err != nil {
				return err
			}
			sent++
			status, body, dur, err := post(ctx, client, base+w.Path, w)
			meta := map[string]any{"kind": k, "seq": i, "url": base + w.Path, "duration_ms": dur.Milliseconds()}
			switch {
			case err != nil:
				failed++
				meta["error"] = err.Error()
				log.Error("delivery failed", "metadata", meta)
			case status < 200 || status > 299:
				failed++
				meta["status"], meta["response"] = status, truncate(body, 512)
				log.Error("delivery refused", "metadata", meta)
			default:
				meta["status"], meta["response"] = status, truncate(body, 512)
				log.Info("delivered", "metadata", meta)
			}
		}
	}
	log.Info("done", "metadata", map[string]any{"sent": sent, "failed": failed, "run": run})
	if failed > 0 {
		return fmt.Errorf("%d of %d deliveries failed", failed, sent)
	}
	return nil
}

func post(ctx context.Context, c *http.Client, url string, w sandbox.Webhook) (int, string, time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(w.Body)))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header = w.Header.Clone()
	res, err := c.Do(req)
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(b), time.Since(start), nil
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ---- ghl-public-key ---------------------------------------------------------

func ghlPublicKey(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("ghl-public-key", stderr)
	keyFile := fs.String("ghl-signing-key", env(getenv, "SANDBOX_GHL_SIGNING_KEY", defaultSigningKey),
		"PEM PKCS#8 Ed25519 key; created when missing (env SANDBOX_GHL_SIGNING_KEY)")
	if err := parse(fs, args); err != nil {
		return err
	}
	key, created, err := sandbox.LoadOrCreateEd25519Key(*keyFile)
	if err != nil {
		return err
	}
	if created {
		if log, err := newLogger(stderr, "info"); err == nil {
			log.Info("created a GHL signing key", "component", "ghl-public-key", "metadata", map[string]any{"file": *keyFile})
		}
	}
	pub, err := sandbox.Ed25519PublicKeyBase64(key)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, pub)
	return err
}
