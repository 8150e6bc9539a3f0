// Package config turns the environment into a typed, validated Config.
// Load validates everything once at start and reports every problem at once;
// the rest of the service trusts the Config it is given.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Environments.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Defaults of the variables that have one.
const (
	DefaultPort            = 3002
	DefaultLogLevel        = "info"
	DefaultMaxAttempts     = 10
	DefaultLeaseDuration   = 5 * time.Minute
	DefaultPollInterval    = 2 * time.Second
	DefaultShutdownTimeout = 25 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
	// The intake limit per webhook source. The four sources together
	// (8,000 a second) stay below what intake commits on the reference
	// machine (~10,000 a second on 2 cores, docs/benchmarks.md), so a flood
	// is refused at the door before it queues up behind the database, while
	// one source's normal traffic (the original service drained ~650
	// events a second in all) is never limited. See docs/security.md.
	DefaultIntakeRateLimit = 2000
	DefaultIntakeRateBurst = 2 * DefaultIntakeRateLimit
	DefaultGHLBaseURL      = "https://services.leadconnectorhq.com"
	DefaultAlowareBaseURL  = "https://app.aloware.com"
	DefaultClerkAPIURL     = "https://api.clerk.com/v1"
)

// WebhookSources are the intake sources, in the order their per-source
// variables (DF_INTAKE_RATE_LIMIT_<SOURCE>) are read and listed.
var WebhookSources = []string{"ghl", "aloware", "texting", "broadcast"}

// MCP toolset names accepted in DF_MCP_TOOLSETS.
var validToolsets = []string{"ops", "events", "sync", "broadcasts", "all"}

// Config is the service configuration. Field comments name the variable.
type Config struct {
	Env             string        // DF_ENV: development | production
	ListenAddr      string        // DF_LISTEN_ADDR, else "127.0.0.1:"+PORT
	DatabaseURL     string        // DATABASE_URL; see RequireDatabase
	LogLevel        string        // LOG_LEVEL
	Workers         int           // DF_WORKERS; 0 = intake only
	MaxAttempts     int           // DF_MAX_ATTEMPTS
	LeaseDuration   time.Duration // DF_LEASE_DURATION
	RetryBase       time.Duration // DF_RETRY_BASE: first retry wait, doubled per attempt
	BreakerCooldown time.Duration // DF_BREAKER_COOLDOWN: how long an open upstream breaker waits before a trial call
	// Client-side request budgets, the providers' published limits by
	// default; raised only for stand-ins (the sandbox) or negotiated plans.
	GHLRatePer10s        int           // GHL_RATE_LIMIT_PER_10S
	AlowareRatePerMinute int           // ALOWARE_RATE_LIMIT_PER_MINUTE
	PollInterval         time.Duration // DF_POLL_INTERVAL
	ShutdownTimeout      time.Duration // DF_SHUTDOWN_TIMEOUT
	MaxBodyBytes         int64         // DF_MAX_BODY_BYTES
	AutoMigrate          bool          // DF_AUTO_MIGRATE
	// Per-source token bucket of webhook intake (429 beyond it); see
	// IntakeRateFor for the rate a source actually gets.
	IntakeRate         IntakeRate            // DF_INTAKE_RATE_LIMIT, DF_INTAKE_RATE_BURST
	IntakeRateOverride map[string]IntakeRate // DF_INTAKE_RATE_LIMIT_<SOURCE>, DF_INTAKE_RATE_BURST_<SOURCE>; only sources with one set

	AdminSecret           string // DF_ADMIN_SECRET; admin API off when empty
	MiddlewareAPIKey      string // DF_MIDDLEWARE_API_KEY
	AllowUnsignedWebhooks bool   // DF_ALLOW_UNSIGNED_WEBHOOKS; development only

	GHLAPIKey                 string // GHL_API_KEY
	GHLLocationID             string // GHL_LOCATION_ID
	GHLConversationProviderID string // GHL_CONVERSATION_PROVIDER_ID: provider for recorded SMS; notes when unset
	GHLBaseURL                string // GHL_BASE_URL
	GHLWebhookPublicKey       string // GHL_WEBHOOK_PUBLIC_KEY; empty = GHL's published key
	GHLWebhookRSAPublicKey    string // GHL_WEBHOOK_RSA_PUBLIC_KEY; empty = GHL's published key

	AlowareAPIToken             string   // ALOWARE_API_TOKEN
	AlowareBaseURL              string   // ALOWARE_BASE_URL
	AlowareWebhookBasicUser     string   // ALOWARE_WEBHOOK_BASIC_USER
	AlowareWebhookBasicPass     string   // ALOWARE_WEBHOOK_BASIC_PASS
	AlowareWebhookBearerToken   string   // ALOWARE_WEBHOOK_BEARER_TOKEN
	AlowareWebhookAllowedEvents []string // ALOWARE_WEBHOOK_ALLOWED_EVENTS; empty = all

	VerityBaseURL       string // VERITY_BASE_URL
	VerityAPIKey        string // VERITY_API_KEY
	VerityWebhookSecret string // VERITY_WEBHOOK_SECRET

	ClerkSecretKey string // CLERK_SECRET_KEY
	ClerkAPIURL    string // CLERK_API_URL

	AlertWebhookURL string // ALERT_WEBHOOK_URL
	AlertmanagerURL string // ALERTMANAGER_URL
	ExternalURL     string // DF_EXTERNAL_URL: where operators reach this service (externalURL of alert notifications)
	Alerts          AlertConfig
	SentryDSN       string // SENTRY_DSN

	MCPAllowedUsers []string // DF_MCP_ALLOWED_USERS: Clerk user ids admitted to /mcp with a session JWT
	MCPHTTPToken    string   // DF_MCP_HTTP_TOKEN
	MCPReadOnly     bool     // DF_MCP_READ_ONLY
	MCPToolsets     []string // DF_MCP_TOOLSETS; default ["all"]

	MetricsToken string // DF_METRICS_TOKEN: Bearer token required by GET /metrics when set

	InstanceID string // DF_INSTANCE_ID; default hostname-<6 hex>
}

// AlertConfig holds the alert rules' thresholds and the evaluator's timing
// (internal/alert; docs/alerting.md). The defaults are the operations
// document's.
type AlertConfig struct {
	EvalInterval    time.Duration // DF_ALERT_EVAL_INTERVAL: how often the leader evaluates (15s)
	Window          time.Duration // DF_ALERT_WINDOW: rate and percentile window (5m)
	For             time.Duration // DF_ALERT_FOR: how long a rate or latency condition must hold (5m)
	DatabaseFor     time.Duration // DF_ALERT_DATABASE_FOR: database unreachable this long (1m)
	QueueWarning    int           // DF_ALERT_QUEUE_WARNING (500)
	QueueCritical   int           // DF_ALERT_QUEUE_CRITICAL (1000)
	ErrorWarning    float64       // DF_ALERT_ERROR_RATE_WARNING (0.01)
	ErrorCritical   float64       // DF_ALERT_ERROR_RATE_CRITICAL (0.05)
	UpstreamFailure float64       // DF_ALERT_UPSTREAM_FAILURE_RATE (0.10)
	LatencyP95      time.Duration // DF_ALERT_LATENCY_P95 (5s)
	ProcessingDelay time.Duration // DF_ALERT_PROCESSING_DELAY (10m)
	MinSamples      int           // DF_ALERT_MIN_SAMPLES: runs or calls in the window below which a rate is not judged (10)
	Slot            time.Duration // DF_ALERT_SLOT: width of one alert_counters slot (10s)
	RetryBase       time.Duration // DF_ALERT_RETRY_BASE: first retry of a failed notification, doubled up to 5m (1s)
}

// Load reads the configuration through getenv (os.Getenv in production),
// applies defaults and validates it. The error joins (errors.Join) one
// *FieldError per problem; the values of secret variables never appear in
// it. The returned Config is only meaningful when the error is nil.
//
// A missing DATABASE_URL is not a Load error (the version subcommand needs
// no database); commands that need one call RequireDatabase.
func Load(getenv func(string) string) (Config, error) {
	r := &reader{getenv: getenv}
	c := Config{
		Env:         r.env(),
		LogLevel:    r.logLevel(),
		DatabaseURL: r.str("DATABASE_URL"),

		Workers:              r.int("DF_WORKERS", 16*runtime.NumCPU(), 0),
		MaxAttempts:          r.int("DF_MAX_ATTEMPTS", DefaultMaxAttempts, 1),
		LeaseDuration:        r.duration("DF_LEASE_DURATION", DefaultLeaseDuration),
		RetryBase:            r.duration("DF_RETRY_BASE", 2*time.Second),
		BreakerCooldown:      r.duration("DF_BREAKER_COOLDOWN", 15*time.Second),
		GHLRatePer10s:        r.int("GHL_RATE_LIMIT_PER_10S", 100, 1),
		AlowareRatePerMinute: r.int("ALOWARE_RATE_LIMIT_PER_MINUTE", 5000, 1),
		PollInterval:         r.duration("DF_POLL_INTERVAL", DefaultPollInterval),
		ShutdownTimeout:      r.duration("DF_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout),
		MaxBodyBytes:         int64(r.int("DF_MAX_BODY_BYTES", DefaultMaxBodyBytes, 1)),
		AutoMigrate:          r.bool("DF_AUTO_MIGRATE", true),
		IntakeRate:           r.intakeRate(""),
		IntakeRateOverride:   map[string]IntakeRate{},

		AdminSecret:           r.str("DF_ADMIN_SECRET"),
		MiddlewareAPIKey:      r.str("DF_MIDDLEWARE_API_KEY"),
		AllowUnsignedWebhooks: r.bool("DF_ALLOW_UNSIGNED_WEBHOOKS", false),

		GHLAPIKey:                 r.str("GHL_API_KEY"),
		GHLLocationID:             r.str("GHL_LOCATION_ID"),
		GHLConversationProviderID: r.str("GHL_CONVERSATION_PROVIDER_ID"),
		GHLBaseURL:                r.url("GHL_BASE_URL", DefaultGHLBaseURL),
		GHLWebhookPublicKey:       r.str("GHL_WEBHOOK_PUBLIC_KEY"),
		GHLWebhookRSAPublicKey:    r.str("GHL_WEBHOOK_RSA_PUBLIC_KEY"),

		AlowareAPIToken:             r.str("ALOWARE_API_TOKEN"),
		AlowareBaseURL:              r.url("ALOWARE_BASE_URL", DefaultAlowareBaseURL),
		AlowareWebhookBasicUser:     r.str("ALOWARE_WEBHOOK_BASIC_USER"),
		AlowareWebhookBasicPass:     r.str("ALOWARE_WEBHOOK_BASIC_PASS"),
		AlowareWebhookBearerToken:   r.str("ALOWARE_WEBHOOK_BEARER_TOKEN"),
		AlowareWebhookAllowedEvents: r.list("ALOWARE_WEBHOOK_ALLOWED_EVENTS"),

		VerityBaseURL:       r.url("VERITY_BASE_URL", ""),
		VerityAPIKey:        r.str("VERITY_API_KEY"),
		VerityWebhookSecret: r.str("VERITY_WEBHOOK_SECRET"),

		ClerkSecretKey: r.str("CLERK_SECRET_KEY"),
		ClerkAPIURL:    r.url("CLERK_API_URL", DefaultClerkAPIURL),

		AlertWebhookURL: r.url("ALERT_WEBHOOK_URL", ""),
		AlertmanagerURL: r.url("ALERTMANAGER_URL", ""),
		ExternalURL:     r.url("DF_EXTERNAL_URL", ""),
		Alerts:          r.alerts(),
		SentryDSN:       r.str("SENTRY_DSN"),

		MCPHTTPToken:    r.str("DF_MCP_HTTP_TOKEN"),
		MCPAllowedUsers: r.list("DF_MCP_ALLOWED_USERS"),
		MCPReadOnly:     r.bool("DF_MCP_READ_ONLY", false),
		MCPToolsets:     r.toolsets(),

		MetricsToken: r.str("DF_METRICS_TOKEN"),

		InstanceID: r.str("DF_INSTANCE_ID"),
	}
	c.ListenAddr = r.listenAddr()
	for _, src := range WebhookSources {
		if rt, ok := r.intakeRateOverride(src, c.IntakeRate); ok {
			c.IntakeRateOverride[src] = rt
		}
	}
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
	}
	if c.DatabaseURL != "" {
		if _, err := databasePassword(c.DatabaseURL); err != nil {
			r.problem("DATABASE_URL", "is not a valid PostgreSQL connection string (%v)", err)
		}
	}
	if (c.AlowareWebhookBasicUser == "") != (c.AlowareWebhookBasicPass == "") {
		r.problem("ALOWARE_WEBHOOK_BASIC_USER", "and ALOWARE_WEBHOOK_BASIC_PASS must be set together")
	}
	if c.Env == EnvProduction {
		c.checkProduction(r)
	}
	return c, r.err()
}

// checkProduction adds the refusals of production mode.
func (c Config) checkProduction(r *reader) {
	upstreams := []struct{ name, value string }{
		{"GHL_BASE_URL", c.GHLBaseURL},
		{"ALOWARE_BASE_URL", c.AlowareBaseURL},
		{"VERITY_BASE_URL", c.VerityBaseURL},
		{"CLERK_API_URL", c.ClerkAPIURL},
	}
	for _, u := range upstreams {
		if strings.HasPrefix(strings.ToLower(u.value), "http://") {
			r.problem(u.name, "must use https in production")
		}
	}
	if c.AllowUnsignedWebhooks {
		r.problem("DF_ALLOW_UNSIGNED_WEBHOOKS", "must be false in production; webhook verification cannot be switched off there")
	}
	if n := len(c.AdminSecret); n > 0 && n < 16 {
		r.problem("DF_ADMIN_SECRET", "must be at least 16 characters in production (it has %d)", n)
	}
}

// RequireDatabase reports a missing DATABASE_URL, for the commands that
// need a database (serve, mcp, migrate).
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return &FieldError{Var: "DATABASE_URL", Reason: "is not set; set it to a PostgreSQL connection string " +
			"(postgres://user:password@host:5432/dbname or host=... dbname=...)"}
	}
	return nil
}

// Secrets returns every non-empty secret value, for log redaction.
func (c Config) Secrets() []string {
	candidates := []string{
		c.AdminSecret, c.MiddlewareAPIKey, c.GHLAPIKey, c.AlowareAPIToken,
		c.AlowareWebhookBasicPass, c.AlowareWebhookBearerToken, c.VerityAPIKey,
		c.VerityWebhookSecret, c.ClerkSecretKey, c.MCPHTTPToken, c.SentryDSN, c.MetricsToken,
	}
	if pw, err := databasePassword(c.DatabaseURL); err == nil {
		candidates = append(candidates, pw)
	}
	// Sentry's key is the DSN's user; logged alone it must go too.
	candidates = append(candidates, urlUserinfo(c.SentryDSN)...)
	for _, u := range []string{c.GHLBaseURL, c.AlowareBaseURL, c.VerityBaseURL, c.ClerkAPIURL, c.AlertWebhookURL, c.AlertmanagerURL} {
		if info := urlUserinfo(u); len(info) == 2 {
			candidates = append(candidates, info[1]) // password only
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range candidates {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Redacted returns variable name → value for a startup log line. Secrets
// (and DATABASE_URL, which holds one) show as "[set]" / "[unset]"; URLs show
// without credentials or query; the alert webhook shows only its origin
// because its path is often itself a token (Slack-style hooks).
func (c Config) Redacted() map[string]string {
	m := map[string]string{
		"DF_ENV":                        c.Env,
		"DF_LISTEN_ADDR":                c.ListenAddr,
		"DATABASE_URL":                  setOrUnset(c.DatabaseURL),
		"LOG_LEVEL":                     c.LogLevel,
		"DF_WORKERS":                    strconv.Itoa(c.Workers),
		"DF_MAX_ATTEMPTS":               strconv.Itoa(c.MaxAttempts),
		"DF_LEASE_DURATION":             c.LeaseDuration.String(),
		"DF_RETRY_BASE":                 c.RetryBase.String(),
		"DF_BREAKER_COOLDOWN":           c.BreakerCooldown.String(),
		"GHL_RATE_LIMIT_PER_10S":        strconv.Itoa(c.GHLRatePer10s),
		"ALOWARE_RATE_LIMIT_PER_MINUTE": strconv.Itoa(c.AlowareRatePerMinute),
		"DF_POLL_INTERVAL":              c.PollInterval.String(),
		"DF_SHUTDOWN_TIMEOUT":           c.ShutdownTimeout.String(),
		"DF_MAX_BODY_BYTES":             strconv.FormatInt(c.MaxBodyBytes, 10),
		"DF_AUTO_MIGRATE":               strconv.FormatBool(c.AutoMigrate),
		"DF_INTAKE_RATE_LIMIT":          strconv.Itoa(c.IntakeRate.Limit),
		"DF_INTAKE_RATE_BURST":          strconv.Itoa(c.IntakeRate.Burst),

		"DF_ADMIN_SECRET":            setOrUnset(c.AdminSecret),
		"DF_MIDDLEWARE_API_KEY":      setOrUnset(c.MiddlewareAPIKey),
		"DF_ALLOW_UNSIGNED_WEBHOOKS": strconv.FormatBool(c.AllowUnsignedWebhooks),

		"GHL_API_KEY":                  setOrUnset(c.GHLAPIKey),
		"GHL_LOCATION_ID":              c.GHLLocationID,
		"GHL_CONVERSATION_PROVIDER_ID": c.GHLConversationProviderID,
		"GHL_BASE_URL":                 urlForLog(c.GHLBaseURL, true),
		"GHL_WEBHOOK_PUBLIC_KEY":       setOrDefault(c.GHLWebhookPublicKey),
		"GHL_WEBHOOK_RSA_PUBLIC_KEY":   setOrDefault(c.GHLWebhookRSAPublicKey),

		"ALOWARE_API_TOKEN":              setOrUnset(c.AlowareAPIToken),
		"ALOWARE_BASE_URL":               urlForLog(c.AlowareBaseURL, true),
		"ALOWARE_WEBHOOK_BASIC_USER":     setOrUnset(c.AlowareWebhookBasicUser),
		"ALOWARE_WEBHOOK_BASIC_PASS":     setOrUnset(c.AlowareWebhookBasicPass),
		"ALOWARE_WEBHOOK_BEARER_TOKEN":   setOrUnset(c.AlowareWebhookBearerToken),
		"ALOWARE_WEBHOOK_ALLOWED_EVENTS": strings.Join(c.AlowareWebhookAllowedEvents, ","),

		"VERITY_BASE_URL":       urlForLog(c.VerityBaseURL, true),
		"VERITY_API_KEY":        setOrUnset(c.VerityAPIKey),
		"VERITY_WEBHOOK_SECRET": setOrUnset(c.VerityWebhookSecret),

		"CLERK_SECRET_KEY": setOrUnset(c.ClerkSecretKey),
		"CLERK_API_URL":    urlForLog(c.ClerkAPIURL, true),

		"ALERT_WEBHOOK_URL": urlForLog(c.AlertWebhookURL, false),
		"ALERTMANAGER_URL":  urlForLog(c.AlertmanagerURL, true),
		"SENTRY_DSN":        setOrUnset(c.SentryDSN),

		"DF_MCP_HTTP_TOKEN":    setOrUnset(c.MCPHTTPToken),
		"DF_MCP_ALLOWED_USERS": strings.Join(c.MCPAllowedUsers, ","),
		"DF_MCP_READ_ONLY":     strconv.FormatBool(c.MCPReadOnly),
		"DF_MCP_TOOLSETS":      strings.Join(c.MCPToolsets, ","),
		"DF_METRICS_TOKEN":     setOrUnset(c.MetricsToken),

		"DF_INSTANCE_ID": c.InstanceID,
	}
	for src, rt := range c.IntakeRateOverride {
		m["DF_INTAKE_RATE_LIMIT_"+strings.ToUpper(src)] = strconv.Itoa(rt.Limit)
		m["DF_INTAKE_RATE_BURST_"+strings.ToUpper(src)] = strconv.Itoa(rt.Burst)
	}
	return m
}

// IntakeRate is one webhook source's token bucket: Limit deliveries a
// second on average, Burst at once. Limit 0 switches limiting off.
type IntakeRate struct {
	Limit int
	Burst int
}

// IntakeRateFor returns the bucket of a webhook source: its override when
// one is set, else the common DF_INTAKE_RATE_LIMIT / DF_INTAKE_RATE_BURST.
func (c Config) IntakeRateFor(source string) IntakeRate {
	if rt, ok := c.IntakeRateOverride[source]; ok {
		return rt
	}
	return c.IntakeRate
}

// FieldError is one configuration problem. Its message is one sentence
// naming the variable; it never carries the value of a secret.
type FieldError struct {
	Var    string // environment variable name
	Reason string // what is wrong and what is expected
}

func (e *FieldError) Error() string { return e.Var + " " + e.Reason }

func setOrUnset(s string) string {
	if s == "" {
		return "[unset]"
	}
	return "[set]"
}

func setOrDefault(s string) string {
	if s == "" {
		return "[default]"
	}
	return "[set]"
}

// urlForLog shows scheme://host (and path when withPath) of a validated URL.
func urlForLog(s string, withPath bool) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[set]"
	}
	out := u.Scheme + "://" + u.Host
	if withPath {
		out += u.EscapedPath()
	}
	return out
}

// urlUserinfo returns the user and, when present, the password of a URL.
func urlUserinfo(s string) []string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return nil
	}
	info := []string{u.User.Username()}
	if pw, ok := u.User.Password(); ok {
		info = append(info, pw)
	}
	return info
}

// defaultInstanceID is hostname-<6 random hex>, unique per process so that
// two replicas on one host hold distinct leases.
func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "df-middleware"
	}
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes instead)
	return fmt.Sprintf("%s-%s", host, hex.EncodeToString(b[:]))
}

// intakeRate reads DF_INTAKE_RATE_LIMIT<suffix> (default
// DefaultIntakeRateLimit; 0 = off) and DF_INTAKE_RATE_BURST<suffix>; a
// burst left unset is twice its limit.
func (r *reader) intakeRate(suffix string) IntakeRate {
	limitVar, burstVar := "DF_INTAKE_RATE_LIMIT"+suffix, "DF_INTAKE_RATE_BURST"+suffix
	rt := IntakeRate{Limit: r.int(limitVar, DefaultIntakeRateLimit, 0)}
	rt.Burst = r.int(burstVar, twice(rt.Limit), 0)
	if rt.Limit > 0 && rt.Burst == 0 {
		// A bucket that holds no token refuses everything: never what was meant.
		r.problem(burstVar, "must be 1 or more while %s is on; set %s=0 to switch intake rate limiting off", limitVar, limitVar)
	}
	return rt
}

// intakeRateOverride reads the per-source variables of source; ok is false
// when neither is set (the source shares common). An override of the limit
// alone gets twice that limit as its burst; of the burst alone, the common
// limit.
func (r *reader) intakeRateOverride(source string, common IntakeRate) (IntakeRate, bool) {
	suffix := "_" + strings.ToUpper(source)
	switch {
	case r.str("DF_INTAKE_RATE_LIMIT"+suffix) != "":
		return r.intakeRate(suffix), true
	case r.str("DF_INTAKE_RATE_BURST"+suffix) != "":
		burstVar := "DF_INTAKE_RATE_BURST" + suffix
		rt := IntakeRate{Limit: common.Limit, Burst: r.int(burstVar, common.Burst, 0)}
		if rt.Limit > 0 && rt.Burst == 0 {
			r.problem(burstVar, "must be 1 or more while intake rate limiting is on")
		}
		return rt, true
	}
	return IntakeRate{}, false
}

// twice is 2n, saturating instead of overflowing.
func twice(n int) int {
	if n > math.MaxInt/2 {
		return math.MaxInt
	}
	return 2 * n
}
