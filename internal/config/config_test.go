package config

import (
	"errors"
	"maps"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(getenv(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Env", c.Env, EnvDevelopment},
		{"ListenAddr", c.ListenAddr, "127.0.0.1:3002"},
		{"DatabaseURL", c.DatabaseURL, ""},
		{"LogLevel", c.LogLevel, "info"},
		{"Workers", c.Workers, 16 * runtime.NumCPU()},
		{"MaxAttempts", c.MaxAttempts, 10},
		{"LeaseDuration", c.LeaseDuration, 5 * time.Minute},
		{"PollInterval", c.PollInterval, 2 * time.Second},
		{"ShutdownTimeout", c.ShutdownTimeout, 25 * time.Second},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(1 << 20)},
		{"AutoMigrate", c.AutoMigrate, true},
		{"AllowUnsignedWebhooks", c.AllowUnsignedWebhooks, false},
		{"GHLBaseURL", c.GHLBaseURL, "https://services.leadconnectorhq.com"},
		{"AlowareBaseURL", c.AlowareBaseURL, "https://app.aloware.com"},
		{"ClerkAPIURL", c.ClerkAPIURL, "https://api.clerk.com/v1"},
		{"VerityBaseURL", c.VerityBaseURL, ""},
		{"MCPReadOnly", c.MCPReadOnly, false},
		{"MCPToolsets", strings.Join(c.MCPToolsets, ","), "all"},
		{"AllowedEvents", len(c.AlowareWebhookAllowedEvents), 0},
		{"IntakeRate", c.IntakeRate, IntakeRate{Limit: DefaultIntakeRateLimit, Burst: DefaultIntakeRateBurst}},
		{"IntakeRateOverride", len(c.IntakeRateOverride), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	for _, src := range WebhookSources {
		if got := c.IntakeRateFor(src); got != (IntakeRate{Limit: 2000, Burst: 4000}) {
			t.Errorf("IntakeRateFor(%s) = %+v, want 2000/s, burst 4000", src, got)
		}
	}
	if !regexp.MustCompile(`^.+-[0-9a-f]{6}$`).MatchString(c.InstanceID) {
		t.Errorf("InstanceID = %q, want hostname-<6 hex>", c.InstanceID)
	}
	if err := c.RequireDatabase(); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("RequireDatabase = %v, want an error naming DATABASE_URL", err)
	}
}

func TestLoadValues(t *testing.T) {
	c, err := Load(getenv(map[string]string{
		"DF_ENV":                         " Production ",
		"PORT":                           "8080",
		"DATABASE_URL":                   "postgres://u:pw@db:5432/app",
		"LOG_LEVEL":                      "WARN",
		"DF_WORKERS":                     "0",
		"DF_MAX_ATTEMPTS":                "3",
		"DF_LEASE_DURATION":              "90s",
		"DF_MAX_BODY_BYTES":              "2048",
		"DF_AUTO_MIGRATE":                "false",
		"DF_ADMIN_SECRET":                "0123456789abcdef",
		"ALOWARE_WEBHOOK_ALLOWED_EVENTS": " contact-created, ,call-ended ,",
		"DF_MCP_TOOLSETS":                "Events, ops,events",
		"DF_MCP_READ_ONLY":               "1",
		"DF_INSTANCE_ID":                 "replica-a",
		"VERITY_BASE_URL":                "https://verity.example.com/api",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Env", c.Env, EnvProduction},
		{"ListenAddr", c.ListenAddr, "127.0.0.1:8080"},
		{"LogLevel", c.LogLevel, "warn"},
		{"Workers", c.Workers, 0},
		{"MaxAttempts", c.MaxAttempts, 3},
		{"LeaseDuration", c.LeaseDuration, 90 * time.Second},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(2048)},
		{"AutoMigrate", c.AutoMigrate, false},
		{"AllowedEvents", strings.Join(c.AlowareWebhookAllowedEvents, "|"), "contact-created|call-ended"},
		{"MCPToolsets", strings.Join(c.MCPToolsets, ","), "events,ops"},
		{"MCPReadOnly", c.MCPReadOnly, true},
		{"InstanceID", c.InstanceID, "replica-a"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.RequireDatabase(); err != nil {
		t.Errorf("RequireDatabase = %v", err)
	}
	c, err = Load(getenv(map[string]string{"PORT": "9000", "DF_LISTEN_ADDR": "0.0.0.0:3002"}))
	if err != nil || c.ListenAddr != "0.0.0.0:3002" {
		t.Errorf("DF_LISTEN_ADDR: got %q, %v", c.ListenAddr, err)
	}
}

func TestLoadProblems(t *testing.T) {
	const secret = "s3cr3t-value-xyz" // a value that must never show in errors
	tests := []struct {
		name string
		env  map[string]string
		vars []string // variables the error must name
	}{
		{"bad env", map[string]string{"DF_ENV": "staging"}, []string{"DF_ENV"}},
		{"bad log level", map[string]string{"LOG_LEVEL": "verbose"}, []string{"LOG_LEVEL"}},
		{"workers not a number", map[string]string{"DF_WORKERS": "many"}, []string{"DF_WORKERS"}},
		{"negative workers", map[string]string{"DF_WORKERS": "-1"}, []string{"DF_WORKERS"}},
		{"zero attempts", map[string]string{"DF_MAX_ATTEMPTS": "0"}, []string{"DF_MAX_ATTEMPTS"}},
		{"bad duration", map[string]string{"DF_LEASE_DURATION": "5 minutes"}, []string{"DF_LEASE_DURATION"}},
		{"zero duration", map[string]string{"DF_POLL_INTERVAL": "0s"}, []string{"DF_POLL_INTERVAL"}},
		{"negative duration", map[string]string{"DF_SHUTDOWN_TIMEOUT": "-5s"}, []string{"DF_SHUTDOWN_TIMEOUT"}},
		{"zero body", map[string]string{"DF_MAX_BODY_BYTES": "0"}, []string{"DF_MAX_BODY_BYTES"}},
		{"intake rate not a number", map[string]string{"DF_INTAKE_RATE_LIMIT": "fast"}, []string{"DF_INTAKE_RATE_LIMIT"}},
		{"negative intake rate", map[string]string{"DF_INTAKE_RATE_LIMIT": "-1"}, []string{"DF_INTAKE_RATE_LIMIT"}},
		{"fractional intake rate", map[string]string{"DF_INTAKE_RATE_LIMIT": "2.5"}, []string{"DF_INTAKE_RATE_LIMIT"}},
		{"negative intake burst", map[string]string{"DF_INTAKE_RATE_BURST": "-4"}, []string{"DF_INTAKE_RATE_BURST"}},
		{"zero burst while limiting", map[string]string{"DF_INTAKE_RATE_BURST": "0"}, []string{"DF_INTAKE_RATE_BURST", "DF_INTAKE_RATE_LIMIT=0"}},
		{"bad source rate", map[string]string{"DF_INTAKE_RATE_LIMIT_GHL": "lots"}, []string{"DF_INTAKE_RATE_LIMIT_GHL"}},
		{"zero source burst", map[string]string{"DF_INTAKE_RATE_LIMIT_ALOWARE": "10", "DF_INTAKE_RATE_BURST_ALOWARE": "0"}, []string{"DF_INTAKE_RATE_BURST_ALOWARE"}},
		{"zero source burst alone", map[string]string{"DF_INTAKE_RATE_BURST_TEXTING": "0"}, []string{"DF_INTAKE_RATE_BURST_TEXTING"}},
		{"bad bool", map[string]string{"DF_AUTO_MIGRATE": "yes please"}, []string{"DF_AUTO_MIGRATE"}},
		{"bad read only", map[string]string{"DF_MCP_READ_ONLY": "maybe"}, []string{"DF_MCP_READ_ONLY"}},
		{"port zero", map[string]string{"PORT": "0"}, []string{"PORT"}},
		{"port too big", map[string]string{"PORT": "70000"}, []string{"PORT"}},
		{"port not a number", map[string]string{"PORT": "http"}, []string{"PORT"}},
		{"listen addr without port", map[string]string{"DF_LISTEN_ADDR": "localhost"}, []string{"DF_LISTEN_ADDR"}},
		{"listen addr bad port", map[string]string{"DF_LISTEN_ADDR": "localhost:abc"}, []string{"DF_LISTEN_ADDR"}},
		{"relative url", map[string]string{"GHL_BASE_URL": "services.leadconnectorhq.com"}, []string{"GHL_BASE_URL"}},
		{"ftp url", map[string]string{"ALOWARE_BASE_URL": "ftp://app.aloware.com"}, []string{"ALOWARE_BASE_URL"}},
		{"url without host", map[string]string{"VERITY_BASE_URL": "https://"}, []string{"VERITY_BASE_URL"}},
		{"bad clerk url", map[string]string{"CLERK_API_URL": "::"}, []string{"CLERK_API_URL"}},
		{"alert url with secret", map[string]string{"ALERT_WEBHOOK_URL": "hooks/" + secret}, []string{"ALERT_WEBHOOK_URL"}},
		{"bad alertmanager url", map[string]string{"ALERTMANAGER_URL": "alertmanager:9093"}, []string{"ALERTMANAGER_URL"}},
		{"basic user without pass", map[string]string{"ALOWARE_WEBHOOK_BASIC_USER": "aloware"}, []string{"ALOWARE_WEBHOOK_BASIC_USER", "ALOWARE_WEBHOOK_BASIC_PASS"}},
		{"basic pass without user", map[string]string{"ALOWARE_WEBHOOK_BASIC_PASS": secret}, []string{"ALOWARE_WEBHOOK_BASIC_USER", "ALOWARE_WEBHOOK_BASIC_PASS"}},
		{"unknown toolset", map[string]string{"DF_MCP_TOOLSETS": "ops,admin"}, []string{"DF_MCP_TOOLSETS", "admin"}},
		{"database url unclosed quote", map[string]string{"DATABASE_URL": "host=db password='" + secret}, []string{"DATABASE_URL"}},
		{"database url wrong scheme", map[string]string{"DATABASE_URL": "mysql://u:" + secret + "@db/app"}, []string{"DATABASE_URL"}},
		{"database url bad url", map[string]string{"DATABASE_URL": "postgres://u:" + secret + "@db:port/app"}, []string{"DATABASE_URL"}},

		{"production http upstreams", map[string]string{
			"DF_ENV": "production", "GHL_BASE_URL": "http://ghl.local", "ALOWARE_BASE_URL": "http://aloware.local",
			"VERITY_BASE_URL": "http://verity.local", "CLERK_API_URL": "HTTP://clerk.local/v1",
		}, []string{"GHL_BASE_URL", "ALOWARE_BASE_URL", "VERITY_BASE_URL", "CLERK_API_URL", "https"}},
		{"production unsigned webhooks", map[string]string{"DF_ENV": "production", "DF_ALLOW_UNSIGNED_WEBHOOKS": "true"}, []string{"DF_ALLOW_UNSIGNED_WEBHOOKS"}},
		{"production short admin secret", map[string]string{"DF_ENV": "production", "DF_ADMIN_SECRET": "s3cr3t"}, []string{"DF_ADMIN_SECRET", "16"}},
		{"production basic pair", map[string]string{"DF_ENV": "production", "ALOWARE_WEBHOOK_BASIC_PASS": secret}, []string{"ALOWARE_WEBHOOK_BASIC_USER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(getenv(tt.env))
			if err == nil {
				t.Fatal("Load returned no error")
			}
			msg := err.Error()
			for _, v := range tt.vars {
				if !strings.Contains(msg, v) {
					t.Errorf("error %q does not mention %s", msg, v)
				}
			}
			for _, leak := range []string{secret, "s3cr3t"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks a secret value", msg)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Var == "" {
				t.Errorf("error %v holds no *FieldError", err)
			}
		})
	}
}

func TestIntakeRate(t *testing.T) {
	off := IntakeRate{}
	def := IntakeRate{Limit: DefaultIntakeRateLimit, Burst: DefaultIntakeRateBurst}
	tests := []struct {
		name   string
		env    map[string]string
		want   map[string]IntakeRate // by source; sources not named get the common rate
		common IntakeRate
	}{
		{"defaults", nil, nil, def},
		{"limit sets a burst of twice it", map[string]string{"DF_INTAKE_RATE_LIMIT": "50"}, nil, IntakeRate{50, 100}},
		{"limit and burst", map[string]string{"DF_INTAKE_RATE_LIMIT": " 50 ", "DF_INTAKE_RATE_BURST": "7"}, nil, IntakeRate{50, 7}},
		{"zero switches it off", map[string]string{"DF_INTAKE_RATE_LIMIT": "0"}, nil, off},
		{"off ignores the burst", map[string]string{"DF_INTAKE_RATE_LIMIT": "0", "DF_INTAKE_RATE_BURST": "9"}, nil, IntakeRate{0, 9}},
		{"burst alone keeps the default limit", map[string]string{"DF_INTAKE_RATE_BURST": "1"}, nil, IntakeRate{DefaultIntakeRateLimit, 1}},
		{"huge limit saturates the burst", map[string]string{"DF_INTAKE_RATE_LIMIT": strconv.Itoa(math.MaxInt)}, nil, IntakeRate{math.MaxInt, math.MaxInt}},
		{"source limit override", map[string]string{"DF_INTAKE_RATE_LIMIT_GHL": "10"},
			map[string]IntakeRate{"ghl": {10, 20}}, def},
		{"source override of both", map[string]string{"DF_INTAKE_RATE_LIMIT_TEXTING": "5", "DF_INTAKE_RATE_BURST_TEXTING": "6"},
			map[string]IntakeRate{"texting": {5, 6}}, def},
		{"source burst override keeps the common limit", map[string]string{"DF_INTAKE_RATE_LIMIT": "30", "DF_INTAKE_RATE_BURST_BROADCAST": "3"},
			map[string]IntakeRate{"broadcast": {30, 3}}, IntakeRate{30, 60}},
		{"one source off, the others on", map[string]string{"DF_INTAKE_RATE_LIMIT_ALOWARE": "0"},
			map[string]IntakeRate{"aloware": off}, def},
		{"one source on, the others off", map[string]string{"DF_INTAKE_RATE_LIMIT": "0", "DF_INTAKE_RATE_LIMIT_GHL": "100"},
			map[string]IntakeRate{"ghl": {100, 200}}, off},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(getenv(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.IntakeRate != tt.common {
				t.Errorf("IntakeRate = %+v, want %+v", c.IntakeRate, tt.common)
			}
			if len(c.IntakeRateOverride) != len(tt.want) {
				t.Errorf("IntakeRateOverride = %+v, want overrides of %+v only", c.IntakeRateOverride, tt.want)
			}
			for _, src := range WebhookSources {
				want, ok := tt.want[src]
				if !ok {
					want = tt.common
				}
				if got := c.IntakeRateFor(src); got != want {
					t.Errorf("IntakeRateFor(%s) = %+v, want %+v", src, got, want)
				}
			}
			red := c.Redacted()
			if red["DF_INTAKE_RATE_LIMIT"] != strconv.Itoa(tt.common.Limit) || red["DF_INTAKE_RATE_BURST"] != strconv.Itoa(tt.common.Burst) {
				t.Errorf("Redacted() shows %s/%s, want %+v", red["DF_INTAKE_RATE_LIMIT"], red["DF_INTAKE_RATE_BURST"], tt.common)
			}
			for src, want := range tt.want {
				if got := red["DF_INTAKE_RATE_LIMIT_"+strings.ToUpper(src)]; got != strconv.Itoa(want.Limit) {
					t.Errorf("Redacted() shows %s limit %q, want %d", src, got, want.Limit)
				}
			}
		})
	}
}

func TestDevelopmentAllowsWhatProductionRefuses(t *testing.T) {
	_, err := Load(getenv(map[string]string{
		"GHL_BASE_URL":               "http://127.0.0.1:4010",
		"DF_ALLOW_UNSIGNED_WEBHOOKS": "true",
		"DF_ADMIN_SECRET":            "short",
	}))
	if err != nil {
		t.Errorf("development Load: %v", err)
	}
}

func TestLoadReportsAllProblems(t *testing.T) {
	_, err := Load(getenv(map[string]string{
		"DF_ENV":                     "production",
		"DF_WORKERS":                 "-2",
		"PORT":                       "99999",
		"DF_POLL_INTERVAL":           "soon",
		"DF_ALLOW_UNSIGNED_WEBHOOKS": "true",
		"DF_MCP_TOOLSETS":            "nope",
		"GHL_BASE_URL":               "http://ghl.local",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T is not joined", err)
	}
	var vars []string
	for _, e := range joined.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		vars = append(vars, fe.Var)
	}
	slices.Sort(vars)
	want := []string{"DF_ALLOW_UNSIGNED_WEBHOOKS", "DF_MCP_TOOLSETS", "DF_POLL_INTERVAL", "DF_WORKERS", "GHL_BASE_URL", "PORT"}
	if !slices.Equal(vars, want) {
		t.Errorf("problems for %v, want %v", vars, want)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("error has %d lines, want one per problem:\n%v", n, err)
	}
}

var secretEnv = map[string]string{
	"DATABASE_URL":                 "postgres://app:db-pass-1@db:5432/app?sslmode=disable",
	"DF_ADMIN_SECRET":              "admin-secret-0123456789",
	"DF_MIDDLEWARE_API_KEY":        "mw-key-1",
	"GHL_API_KEY":                  "ghl-key-1",
	"GHL_LOCATION_ID":              "loc-1",
	"ALOWARE_API_TOKEN":            "aloware-token-1",
	"ALOWARE_WEBHOOK_BASIC_USER":   "aloware-user",
	"ALOWARE_WEBHOOK_BASIC_PASS":   "aloware-pass-1",
	"ALOWARE_WEBHOOK_BEARER_TOKEN": "aloware-bearer-1",
	"VERITY_API_KEY":               "verity-key-1",
	"VERITY_WEBHOOK_SECRET":        "verity-hook-1",
	"CLERK_SECRET_KEY":             "sk_test_clerk",
	"DF_MCP_HTTP_TOKEN":            "mcp-token-1",
	"SENTRY_DSN":                   "https://sentrypub@o1.ingest.sentry.io/2",
	"ALERT_WEBHOOK_URL":            "https://hook:alert-pass-1@hooks.example.com/T000/B000/tokenpath?x=1",
	"ALERTMANAGER_URL":             "http://alertmanager:9093/api/v2/alerts",
	"DF_MCP_TOOLSETS":              "ops,events",
}

func TestSecrets(t *testing.T) {
	c, err := Load(getenv(secretEnv))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Secrets()
	want := []string{
		"admin-secret-0123456789", "mw-key-1", "ghl-key-1", "aloware-token-1", "aloware-pass-1",
		"aloware-bearer-1", "verity-key-1", "verity-hook-1", "sk_test_clerk", "mcp-token-1",
		"https://sentrypub@o1.ingest.sentry.io/2", "db-pass-1", "sentrypub", "alert-pass-1",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q\nwant %q", got, want)
	}
	if s := (Config{}).Secrets(); len(s) != 0 {
		t.Errorf("empty config has secrets %q", s)
	}
}

func TestDatabasePassword(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"", ""},
		{"postgres://u:p%40ss@a:1,b:2/db", "p@ss"},
		{"postgresql:///db?host=/tmp&password=qp", "qp"},
		{"postgres://u@db/app", ""},
		{"host=/var/run/postgresql dbname=app", ""},
		{"host=db password=plain user=u", "plain"},
		{"host = db password = 'with space \\' quote' user=u", "with space ' quote"},
		{`password=esc\ aped`, "esc aped"},
	}
	for _, tt := range tests {
		got, err := databasePassword(tt.dsn)
		if err != nil || got != tt.want {
			t.Errorf("databasePassword(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
		}
	}
	for _, bad := range []string{"justaword", "host=db =x", "password='open", "mysql://x"} {
		if _, err := databasePassword(bad); err == nil {
			t.Errorf("databasePassword(%q) returned no error", bad)
		}
	}
}

func TestRedacted(t *testing.T) {
	c, err := Load(getenv(secretEnv))
	if err != nil {
		t.Fatal(err)
	}
	red := c.Redacted()
	want := map[string]string{
		"DF_ENV":                       "development",
		"DATABASE_URL":                 "[set]",
		"DF_ADMIN_SECRET":              "[set]",
		"GHL_API_KEY":                  "[set]",
		"GHL_LOCATION_ID":              "loc-1",
		"ALOWARE_WEBHOOK_BASIC_PASS":   "[set]",
		"ALOWARE_WEBHOOK_BEARER_TOKEN": "[set]",
		"VERITY_WEBHOOK_SECRET":        "[set]",
		"CLERK_SECRET_KEY":             "[set]",
		"SENTRY_DSN":                   "[set]",
		"DF_MCP_HTTP_TOKEN":            "[set]",
		"GHL_WEBHOOK_PUBLIC_KEY":       "[default]",
		"ALERT_WEBHOOK_URL":            "https://hooks.example.com",
		"ALERTMANAGER_URL":             "http://alertmanager:9093/api/v2/alerts",
		"GHL_BASE_URL":                 "https://services.leadconnectorhq.com",
		"VERITY_BASE_URL":              "",
		"DF_MCP_TOOLSETS":              "ops,events",
		"DF_AUTO_MIGRATE":              "true",
		"DF_LEASE_DURATION":            "5m0s",
	}
	for k, v := range want {
		if red[k] != v {
			t.Errorf("Redacted()[%s] = %q, want %q", k, red[k], v)
		}
	}
	joined := strings.Join(slices.Collect(maps.Values(red)), " ")
	for _, s := range c.Secrets() {
		if strings.Contains(joined, s) {
			t.Errorf("Redacted() contains secret %q", s)
		}
	}
	empty, _ := Load(getenv(nil))
	if got := empty.Redacted()["DF_ADMIN_SECRET"]; got != "[unset]" {
		t.Errorf("unset secret shows %q", got)
	}
}
