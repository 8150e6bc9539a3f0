package chaos

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
)

// full is DF_CHAOS=full: `make chaos` sizes (minutes, thousands of events).
// Otherwise the reduced form `make test` runs: every scenario, seconds long.
var full = os.Getenv("DF_CHAOS") == "full"

// pick returns the reduced or the full value of a setting.
func pick[T any](reduced, fullSize T) T {
	if full {
		return fullSize
	}
	return reduced
}

func modeName() string { return pick("reduced", "full") }

var (
	binDir   string // df-middleware and sandbox, built once per test binary
	buildErr error
	buildMu  sync.Mutex
	built    bool
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "dfm-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds df-middleware and sandbox on first use (so that
// `go test -run X ./chaos` selecting nothing builds nothing) and returns
// their paths. The binaries are built without -race even under `go test
// -race`: they are the system under test, and run as they ship.
func binaries(t *testing.T) (serve, sb string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	serve, sb = filepath.Join(binDir, "df-middleware"), filepath.Join(binDir, "sandbox")
	if !built {
		built = true
		for _, b := range []struct{ out, pkg string }{
			{serve, "github.com/df-middleware/df-middleware/cmd/df-middleware"},
			{sb, "github.com/df-middleware/df-middleware/cmd/sandbox"},
		} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				break
			}
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return serve, sb
}

// setup is the start of every scenario: skip under -short, run in parallel
// with the other scenarios in the reduced form (they mostly wait), one at a
// time at full size (so the figures do not disturb each other).
func setup(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos: starts the service, PostgreSQL clusters and the sandbox (skipped with -short)")
	}
	if !full {
		t.Parallel()
		// However many CPUs -parallel allows, at most a few scenarios at
		// once: each holds a dozen or more connections of the machine's
		// PostgreSQL, which the rest of `go test ./...` shares.
		scenarioSlots <- struct{}{}
		t.Cleanup(func() { <-scenarioSlots })
	}
}

var scenarioSlots = make(chan struct{}, 3)

// secrets shared by the service and the load driver of one scenario.
type secrets struct {
	ghlKey        ed25519.PrivateKey
	ghlPublic     string // base64 SPKI, for GHL_WEBHOOK_PUBLIC_KEY
	webhookSecret string // VERITY_WEBHOOK_SECRET
	adminSecret   string
}

func newSecrets(t *testing.T) secrets {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sandbox.Ed25519PublicKeyBase64(key)
	if err != nil {
		t.Fatal(err)
	}
	return secrets{ghlKey: key, ghlPublic: pub, webhookSecret: "chaos-webhook-" + sandbox.NewRunID(),
		adminSecret: "chaos-admin-secret-" + sandbox.NewRunID()}
}

func (s secrets) webhookSecrets() sandbox.WebhookSecrets {
	return sandbox.WebhookSecrets{GHLKey: s.ghlKey, GHLLocationID: sandbox.DevGHLLocationID, VerityWebhookSecret: s.webhookSecret}
}

// baseEnv is the part of a child's environment taken from ours: nothing
// that could point it at another database, upstream or trace collector.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// serviceEnv is the environment of a serve process pointed at dbURL and the
// sandbox at sandboxURL, listening on addr; extra overrides (KEY=value).
func serviceEnv(dbURL, sandboxURL, addr, instance string, sec secrets, extra map[string]string) []string {
	vars := map[string]string{
		"DATABASE_URL":                  dbURL,
		"DF_LISTEN_ADDR":                addr,
		"DF_ENV":                        "development",
		"DF_INSTANCE_ID":                instance,
		"LOG_LEVEL":                     "info",
		"DF_WORKERS":                    pick("8", "16"),
		"DF_POLL_INTERVAL":              "500ms",
		"DF_SHUTDOWN_TIMEOUT":           "5s",
		"DF_ADMIN_SECRET":               sec.adminSecret,
		"VERITY_WEBHOOK_SECRET":         sec.webhookSecret,
		"GHL_WEBHOOK_PUBLIC_KEY":        sec.ghlPublic,
		"GHL_API_KEY":                   sandbox.DevGHLAPIKey,
		"GHL_LOCATION_ID":               sandbox.DevGHLLocationID,
		"GHL_BASE_URL":                  sandboxURL + sandbox.PrefixGHL,
		"ALOWARE_API_TOKEN":             sandbox.DevAlowareToken,
		"ALOWARE_BASE_URL":              sandboxURL + sandbox.PrefixAloware,
		"GHL_RATE_LIMIT_PER_10S":        "1000000",
		"ALOWARE_RATE_LIMIT_PER_MINUTE": "100000000",
	}
	for k, v := range extra {
		vars[k] = v
	}
	env := baseEnv()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// poolSize is the connection pool of one service: its workers plus room for
// intake, the completer and the periodic readers (the service's own default
// is workers + 10; the reduced form shares the machine's PostgreSQL with
// the rest of `go test ./...` and stays smaller).
func poolSize() int { return pick(12, 26) }

// withPoolSize caps the service's connection pool, so that several
// services and the rest of `go test ./...` share the machine's PostgreSQL
// without running out of connections.
func withPoolSize(dbURL string, n int) string {
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%spool_max_conns=%d", dbURL, sep, n)
}

// outDir is where results go: DF_CHAOS_OUT, else a temporary directory.
var (
	outOnce sync.Once
	outPath string
)

func resultDir(t *testing.T) string {
	outOnce.Do(func() {
		outPath = os.Getenv("DF_CHAOS_OUT")
		if outPath == "" {
			outPath = filepath.Join(binDir, "results")
		}
	})
	if err := os.MkdirAll(outPath, 0o755); err != nil {
		t.Fatal(err)
	}
	return outPath
}

// writeResult stores res as <scenario>.json in the result directory and
// logs it.
func writeResult(t *testing.T, res *Result) {
	t.Helper()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(resultDir(t), res.Scenario+".json")
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s): sent %d, acknowledged %d, refused %v, lost %d, duplicated %d, redone after crash %d, idempotent rewrites %d, stuck %d, ended %v; results in %s",
		res.Scenario, res.Mode, res.Sent, res.Acknowledged, res.Refused, res.Lost, res.Duplicated, res.RedoneAfterCrash,
		res.IdempotentRewrites, res.Stuck, res.Ended, p)
	for _, o := range res.Observations {
		t.Logf("  %s: %s", o.Name, o.Value)
	}
}

// seconds renders a duration for observations.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func secondsPtr(d time.Duration) *float64 {
	v := float64(d.Milliseconds()) / 1000
	return &v
}
