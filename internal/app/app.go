// Package app wires the service together: store, migrations, intake,
// workers and the sidecar HTTP listener, with graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/alert"
	"github.com/df-middleware/df-middleware/internal/config"
	"github.com/df-middleware/df-middleware/internal/errgroups"
	"github.com/df-middleware/df-middleware/internal/gateway"
	"github.com/df-middleware/df-middleware/internal/health"
	"github.com/df-middleware/df-middleware/internal/httpapi"
	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
	dfsync "github.com/df-middleware/df-middleware/internal/sync"
	"github.com/df-middleware/df-middleware/internal/upstream/aloware"
	"github.com/df-middleware/df-middleware/internal/upstream/ghl"
)

// ghlOrNil and alowareOrNil keep a nil client a nil interface, so the sync
// engine sees "not configured" rather than a client that panics.
func ghlOrNil(c *ghl.Client) dfsync.GHL {
	if c == nil {
		return nil
	}
	return c
}

func alowareOrNil(c *aloware.Client) dfsync.Aloware {
	if c == nil {
		return nil
	}
	return c
}

// IntakeSettings turns configuration into the intake handler's settings.
func IntakeSettings(cfg config.Config) (intake.Settings, error) {
	set := intake.Settings{
		Aloware: intake.AlowareAuth{
			BasicUser: cfg.AlowareWebhookBasicUser, BasicPass: cfg.AlowareWebhookBasicPass,
			BearerToken: cfg.AlowareWebhookBearerToken,
		},
		AlowareAllowed: cfg.AlowareWebhookAllowedEvents,
		WebhookSecret:  []byte(cfg.VerityWebhookSecret),
		AllowUnsigned:  cfg.AllowUnsignedWebhooks && cfg.Env != config.EnvProduction,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		RateLimits:     map[string]intake.RateLimit{},
	}
	for _, src := range config.WebhookSources {
		rt := cfg.IntakeRateFor(src)
		set.RateLimits[src] = intake.RateLimit{Limit: float64(rt.Limit), Burst: rt.Burst}
	}
	edKey := cfg.GHLWebhookPublicKey
	if edKey == "" {
		edKey = intake.DefaultGHLEd25519Key
	}
	ed, err := intake.ParseEd25519PublicKey(edKey)
	if err != nil {
		return set, fmt.Errorf("GHL_WEBHOOK_PUBLIC_KEY: %w", err)
	}
	set.GHL.Ed25519 = ed
	rsaKey := cfg.GHLWebhookRSAPublicKey
	if rsaKey == "" {
		rsaKey = intake.DefaultGHLRSAKey
	}
	if rsaKey != "" {
		k, err := intake.ParseRSAPublicKey(rsaKey)
		if err != nil {
			return set, fmt.Errorf("GHL_WEBHOOK_RSA_PUBLIC_KEY: %w", err)
		}
		set.GHL.RSA = k
	}
	return set, nil
}

// QueueConfig turns configuration into the worker pool's settings.
func QueueConfig(cfg config.Config) queue.Config {
	return queue.Config{
		InstanceID:      cfg.InstanceID,
		Workers:         cfg.Workers,
		Lease:           cfg.LeaseDuration,
		PollInterval:    cfg.PollInterval,
		MaxAttempts:     cfg.MaxAttempts,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Backoff:         queue.Backoff{Base: cfg.RetryBase},
	}
}

// Service is the running sidecar.
type Service struct {
	Config    config.Config
	Store     *store.Store
	Registry  *queue.Registry
	Upstreams *Upstreams
	Sync      *dfsync.Engine
	Health    *health.Service
	Runner    *queue.Runner
	Handler   http.Handler
	Metrics   *observe.Metrics
	// ErrorGroups counts failures by fingerprint into error_groups.
	ErrorGroups *errgroups.Recorder
	// Alerts are the alert rules' settings; the leader evaluates them.
	Alerts        alert.Settings
	alertCounters *alert.Counters
	alertWatch    *alert.DatabaseWatch
	alertNotifier *alert.Notifier
	log           zerolog.Logger
	ready         atomic.Bool
	commit        *intake.Committer
	mcp           atomic.Pointer[http.Handler]
}

// New opens the database, applies migrations when configured to, and builds
// every part of the sidecar. Handlers are registered on Registry before Run.
func New(ctx context.Context, cfg config.Config, log zerolog.Logger) (*Service, error) {
	if err := cfg.RequireDatabase(); err != nil {
		return nil, err
	}
	// Every worker may hold a connection while its handler writes; intake's
	// flusher, the MCP tools and the admin API need some besides.
	st, err := store.OpenSized(ctx, cfg.DatabaseURL, int32(max(store.DefaultMaxConns, cfg.Workers+10)))
	if err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		n, err := st.Migrate(ctx)
		if err != nil {
			st.Close()
			return nil, err
		}
		if n > 0 {
			log.Info().Int("applied", n).Msg("database migrations applied")
		}
	} else if pending, err := st.HasPendingMigrations(ctx); err != nil || pending {
		st.Close()
		if err != nil {
			return nil, err
		}
		return nil, errors.New("the database schema is behind this binary and DF_AUTO_MIGRATE=false: run `df-middleware migrate up`")
	}
	set, err := IntakeSettings(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	if set.AllowUnsigned {
		log.Warn().Msg("DF_ALLOW_UNSIGNED_WEBHOOKS=true: webhook signatures are NOT checked (development only)")
	}

	metrics := observe.NewMetrics(observe.Component(log, "metrics"))
	egOpts := []errgroups.Option{errgroups.WithRedact(observe.NewRedactor(cfg.Secrets()))}
	if cfg.SentryDSN != "" {
		fwd, err := errgroups.NewSentry(cfg.SentryDSN, errgroups.SentryOptions{Environment: cfg.Env, ServerName: cfg.InstanceID})
		if err != nil {
			st.Close()
			return nil, err
		}
		egOpts = append(egOpts, errgroups.WithForwarder(fwd))
		log.Info().Msg("error groups are also sent to Sentry (SENTRY_DSN)")
	}
	errs := errgroups.New(st, observe.Component(log, "errgroups"), egOpts...)
	alerts := AlertSettings(cfg)
	counters := alert.NewCounters(alerts.Upstreams)
	obs := observers{metrics, errorGroupObserver{errs}, counters}
	if observe.TracingEnabled() {
		obs = append(obs, tracingObserver{})
	}
	ups, err := NewUpstreams(cfg, obs)
	if err != nil {
		errs.Close(0)
		st.Close()
		return nil, err
	}
	s := &Service{Config: cfg, Store: st, Registry: queue.NewRegistry(), Upstreams: ups, Metrics: metrics, ErrorGroups: errs, log: log}
	s.Runner = queue.New(st, s.Registry, QueueConfig(cfg), observe.Component(log, "queue"))
	s.Runner.OnExecuted = func(job store.Job, out store.Outcome, d time.Duration) {
		metrics.JobExecuted(job, out, d)
		counters.JobExecuted(job, out, d)
	}
	s.Runner.OnQuery = metrics.ObserveQuery
	s.Runner.OnFinished = func(out store.Outcome, job queue.Job) {
		metrics.JobFinished(out, job)
		if out.Error != "" && (out.Status == store.StatusError || out.Status == store.StatusPending) {
			errs.Add("queue", errors.New(out.Error), job.ID)
		}
	}
	s.Sync = dfsync.New(st, ghlOrNil(ups.GHL), alowareOrNil(ups.Aloware), dfsync.Config{
		ConversationProviderID: cfg.GHLConversationProviderID,
	}, observe.Component(log, "sync"))
	s.Sync.OnOperation = metrics.SyncOperation
	s.Sync.OnFailure = func(direction string, err error, eventID string) { errs.Add("sync:"+direction, err, eventID) }
	s.Sync.Register(s.Registry)
	metrics.SetEventTypeLabel(eventTypeLabel(s.Registry))
	metrics.WatchState(observe.State{
		QueueStats: st.QueueStats, ActiveAlerts: st.ActiveAlertStates,
		Pool: observe.PgxPoolStats(st.Pool), Breakers: ups.Breakers(), ReadEvery: observe.DefaultStateReadEvery,
	})
	s.Runner.AddDuty(queue.Duty{Name: "purge-expired-echoes", Interval: time.Minute, Run: func(ctx context.Context) error {
		_, err := st.PurgeExpiredEchoes(ctx)
		return err
	}})
	s.Runner.AddDuty(queue.Duty{Name: "prune-stat-rollups", Interval: time.Hour, Run: func(ctx context.Context) error {
		_, err := st.PruneRollups(ctx)
		return err
	}})
	s.addAlerting(alerts, counters)
	s.commit = intake.NewCommitter(st)
	s.commit.OnQuery = metrics.ObserveQuery
	ih := intake.NewHandler(set, s.commit, observe.Component(log, "intake"))
	ih.OnStored = s.Runner.Wake
	ih.OnOutcome = metrics.WebhookOutcome
	s.Health = &health.Service{Checkers: append([]health.Checker{
		health.Database(st),
		health.JobQueue(st, health.QueueOptions{WorkersRunning: s.Runner.Running}),
	}, ups.Checkers()...)}
	var verityClient gateway.Verity
	if ups.Verity != nil {
		verityClient = ups.Verity
	}
	var verifier gateway.TokenVerifier
	if ups.Verifier != nil {
		verifier = clerkSubject{ups.Verifier}
	}
	s.Handler = httpapi.New(httpapi.Deps{
		Store: st, Intake: ih, Runner: s.Runner, Health: s.Health, AdminSecret: cfg.AdminSecret,
		Gateway: gateway.New(cfg.MiddlewareAPIKey, verityClient, verifier, observe.Component(log, "gateway")),
		Log:     observe.Component(log, "http"), Ready: s.ready.Load,
		MCP: func() http.Handler {
			if h := s.mcp.Load(); h != nil {
				return *h
			}
			return nil
		},
		MCPToken: cfg.MCPHTTPToken, MCPVerifier: mcpVerifier(cfg, verifier), MCPAllowedUsers: cfg.MCPAllowedUsers,
		Metrics: metrics, MetricsToken: cfg.MetricsToken,
	})
	return s, nil
}

// AlertSettings turns configuration into the alert rules' settings.
func AlertSettings(cfg config.Config) alert.Settings {
	s := alert.DefaultSettings()
	a := cfg.Alerts
	s.Instance = cfg.InstanceID
	s.EvalInterval, s.Window, s.For, s.DatabaseFor = a.EvalInterval, a.Window, a.For, a.DatabaseFor
	s.QueueWarning, s.QueueCritical = int64(a.QueueWarning), int64(a.QueueCritical)
	s.ErrorWarning, s.ErrorCritical, s.UpstreamFailure = a.ErrorWarning, a.ErrorCritical, a.UpstreamFailure
	s.LatencyP95, s.ProcessingDelay, s.MinSamples = a.LatencyP95, a.ProcessingDelay, a.MinSamples
	s.Slot, s.RetryBase = a.Slot, a.RetryBase
	s.FlushEvery = min(s.FlushEvery, a.Slot/2)
	s.WebhookURL, s.AlertmanagerURL = cfg.AlertWebhookURL, cfg.AlertmanagerURL
	s.ExternalURL = cfg.ExternalURL
	if s.ExternalURL == "" {
		s.ExternalURL = "http://" + cfg.ListenAddr
	}
	return s
}

// addAlerting gives the leader its alert duties (evaluate, prune counters)
// and builds the notifier (it delivers on the leader, outside the duty loop,
// see Run) and every replica's database watch.
func (s *Service) addAlerting(set alert.Settings, counters *alert.Counters) {
	log := observe.Component(s.log, "alert")
	s.Alerts, s.alertCounters = set, counters
	eval := alert.NewEvaluator(s.Store, set, log)
	notifier := alert.NewNotifier(s.Store, set, log)
	s.alertWatch = alert.NewDatabaseWatch(s.Store, set, notifier, s.Runner.IsLeader, log)
	s.alertNotifier = notifier
	s.Runner.AddDuty(queue.Duty{Name: "evaluate-alerts", Interval: set.EvalInterval, Run: func(ctx context.Context) error {
		_, err := eval.Evaluate(ctx)
		return err
	}})
	s.Runner.AddDuty(queue.Duty{Name: "prune-alert-counters", Interval: 10 * time.Minute, Run: func(ctx context.Context) error {
		_, err := s.Store.PruneAlertCounters(ctx, max(time.Hour, 2*set.Window))
		return err
	}})
}

// eventTypeLabel names an event type for metrics: the registry's key when a
// handler is registered for it (Aloware's names folded the registry's way),
// else "other" — so the label's values are the handler table's, whatever a
// sender puts in a body.
func eventTypeLabel(reg *queue.Registry) func(source, eventType string) string {
	return func(source, eventType string) string {
		if _, ok := reg.Lookup(source, eventType); !ok {
			return observe.LabelOther
		}
		if source == intake.SourceAloware {
			return intake.NormalizeAlowareEvent(eventType)
		}
		return eventType
	}
}

// MountMCP serves h at /mcp (the MCP streamable HTTP transport).
func (s *Service) MountMCP(h http.Handler) { s.mcp.Store(&h) }

// MCPAuthConfigured reports whether /mcp requires credentials.
func MCPAuthConfigured(cfg config.Config) bool {
	return cfg.MCPHTTPToken != "" || (cfg.ClerkSecretKey != "" && len(cfg.MCPAllowedUsers) > 0)
}

// mcpVerifier admits Clerk session JWTs at /mcp only when operators are
// named in DF_MCP_ALLOWED_USERS.
func mcpVerifier(cfg config.Config, v gateway.TokenVerifier) gateway.TokenVerifier {
	if len(cfg.MCPAllowedUsers) == 0 {
		return nil
	}
	return v
}

// CheckMCPExposure refuses to serve MCP over HTTP without authentication on
// an address other hosts can reach.
func CheckMCPExposure(cfg config.Config) error {
	if MCPAuthConfigured(cfg) {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("DF_LISTEN_ADDR %q: %w", cfg.ListenAddr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("refusing to serve MCP over HTTP on %s without authentication: set DF_MCP_HTTP_TOKEN (or CLERK_SECRET_KEY with DF_MCP_ALLOWED_USERS), or listen on 127.0.0.1", cfg.ListenAddr)
}

// Run serves until ctx ends, then shuts down in order: stop accepting
// requests and finish those in flight, answer queued intake commits, let
// in-flight jobs finish within the shutdown deadline and hand back their
// leases, close the pool.
func (s *Service) Run(ctx context.Context, ln net.Listener) error {
	defer s.Store.Close()
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	go s.commit.Run()

	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	var workers sync.WaitGroup
	workers.Go(func() { _ = s.Runner.Run(workersCtx) })
	workers.Go(func() { s.ErrorGroups.Run(workersCtx, time.Second) })
	workers.Go(func() { s.alertCounters.Run(workersCtx, s.Store, s.Alerts, observe.Component(s.log, "alert")) })
	workers.Go(func() { s.alertWatch.Run(workersCtx) })
	workers.Go(func() { s.alertNotifier.Run(workersCtx, s.Runner.IsLeader) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.ready.Store(true)
	s.log.Info().Str("addr", ln.Addr().String()).Int("workers", s.Config.Workers).
		Str("instance", s.Config.InstanceID).Msg("df-middleware serving")

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	s.ready.Store(false)
	s.log.Info().Msg("shutting down: no new requests; finishing in-flight work")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if e := srv.Shutdown(shutCtx); e != nil {
		s.log.Warn().Err(e).Msg("HTTP shutdown deadline passed; closing remaining connections")
		_ = srv.Close()
	}
	cancel()
	s.commit.Stop()
	stopWorkers()
	workers.Wait() // the error groups' last flush included
	// Handlers may have run past the counters' own last flush: write what
	// they counted, so the alert window misses no run.
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	_ = s.alertCounters.Flush(flushCtx, s.Store, s.Alerts.Instance, s.Alerts.Slot)
	cancelFlush()
	s.ErrorGroups.Close(5 * time.Second) // send what Sentry still buffers
	s.log.Info().Msg("stopped")
	return err
}

// Listen opens the configured listen address.
func Listen(cfg config.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (DF_LISTEN_ADDR / PORT): %w", cfg.ListenAddr, err)
	}
	return ln, nil
}
