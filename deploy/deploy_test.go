package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	rulesFile        = "prometheus/alerts.yml"
	rulesTestFile    = "prometheus/alerts_test.yml"
	prometheusConfig = "prometheus/prometheus.yml"
	alertmanagerFile = "alertmanager/alertmanager.yml"
	runbookURLPrefix = "https://github.com/df-middleware/df-middleware/blob/main/docs/alerting.md#"
)

// wantAlerts are the alerts alerts.yml must define: the names, severities and
// thresholds of the in-process evaluator (internal/alert), which operators see
// whichever side fires. upstreams lists the values of the upstream label when
// the alert exists once per upstream.
var wantAlerts = []struct {
	name, severity, runbook string
	upstreams               []string
}{
	{name: "QueueDepthCritical", severity: "critical", runbook: "runbook://queue-backup"},
	{name: "QueueDepthWarning", severity: "warning", runbook: "runbook://queue-backup"},
	{name: "ErrorRateCritical", severity: "critical", runbook: "runbook://recent-errors"},
	{name: "ErrorRateWarning", severity: "warning", runbook: "runbook://recent-errors"},
	{name: "DatabaseUnavailable", severity: "critical", runbook: "runbook://health"},
	{name: "UpstreamFailureRateHigh", severity: "critical", runbook: "runbook://sync-failures",
		upstreams: []string{"ghl", "aloware", "verity"}},
	{name: "LatencyP95High", severity: "warning", runbook: "runbook://queue-backup"},
	{name: "ProcessingDelayHigh", severity: "warning", runbook: "runbook://queue-backup"},
}

// rule is the part of a Prometheus rule this test reads.
type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRulesMatchEvaluator checks alerts.yml without promtool: exactly the
// expected alerts, each with the labels and annotations the receivers rely on.
func TestAlertRulesMatchEvaluator(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse %s: %v", rulesFile, err)
	}
	if len(f.Groups) != 1 || f.Groups[0].Name != "df-middleware" {
		t.Fatalf("%s: want one rule group named df-middleware, got %d groups", rulesFile, len(f.Groups))
	}
	byName := map[string][]rule{}
	for _, r := range f.Groups[0].Rules {
		if r.Alert == "" {
			t.Errorf("%s: rule %q is not an alerting rule", rulesFile, r.Record)
			continue
		}
		byName[r.Alert] = append(byName[r.Alert], r)
	}
	for _, want := range wantAlerts {
		rules := byName[want.name]
		delete(byName, want.name)
		if len(rules) == 0 {
			t.Errorf("alert %s: missing", want.name)
			continue
		}
		var upstreams []string
		for _, r := range rules {
			checkRule(t, r, want.severity, want.runbook)
			if u, ok := r.Labels["upstream"]; ok {
				upstreams = append(upstreams, u)
			}
		}
		slices.Sort(upstreams)
		if wantUp := slices.Sorted(slices.Values(want.upstreams)); !slices.Equal(upstreams, wantUp) {
			t.Errorf("alert %s: upstream labels %q, want %q", want.name, upstreams, wantUp)
		}
		if len(want.upstreams) == 0 && len(rules) != 1 {
			t.Errorf("alert %s: defined %d times, want once", want.name, len(rules))
		}
	}
	for name := range byName {
		t.Errorf("alert %s: not one of the evaluator's alerts (add it to wantAlerts and internal/alert, or remove it)", name)
	}
}

func checkRule(t *testing.T, r rule, severity, runbook string) {
	t.Helper()
	if strings.TrimSpace(r.Expr) == "" {
		t.Errorf("alert %s: empty expr", r.Alert)
	}
	if got := r.Labels["severity"]; got != severity {
		t.Errorf("alert %s: severity %q, want %q", r.Alert, got, severity)
	}
	if got := r.Labels["service"]; got != "df-middleware" {
		t.Errorf("alert %s: service label %q, want df-middleware", r.Alert, got)
	}
	for _, a := range []string{"summary", "description", "runbook", "runbook_url"} {
		if strings.TrimSpace(r.Annotations[a]) == "" {
			t.Errorf("alert %s: annotation %s missing or empty", r.Alert, a)
		}
	}
	if !strings.Contains(r.Annotations["description"], "$value") {
		t.Errorf("alert %s: the description does not show the measured value ($value): %q", r.Alert, r.Annotations["description"])
	}
	if got := r.Annotations["runbook"]; got != runbook {
		t.Errorf("alert %s: runbook %q, want %q", r.Alert, got, runbook)
	}
	if got, want := r.Annotations["runbook_url"], runbookURLPrefix+strings.ToLower(r.Alert); got != want {
		t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, got, want)
	}
}

// TestPromtoolRules lints the rules and runs their unit tests (alerts_test.yml).
func TestPromtoolRules(t *testing.T) {
	promtool := lookTool(t, "promtool")
	run(t, promtool, "check", "rules", rulesFile)
	run(t, promtool, "test", "rules", rulesTestFile)
}

// TestPromtoolConfig runs the full config check, which also loads the rule
// files relative to the config. The full check also stats the scrape's
// credentials_file, which exists only in production, so it runs on a copy
// pointing at a stand-in token, with alerts.yml beside it.
func TestPromtoolConfig(t *testing.T) {
	promtool := lookTool(t, "promtool")
	cfg, err := os.ReadFile(prometheusConfig)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	credentials := regexp.MustCompile(`(?m)^(\s*credentials_file:).*$`)
	cfg = credentials.ReplaceAll(cfg, []byte("${1} "+token))
	for name, data := range map[string][]byte{"token": []byte("stand-in\n"), "prometheus.yml": cfg, "alerts.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run(t, promtool, "check", "config", filepath.Join(dir, "prometheus.yml"))
}

// TestAmtoolConfig validates the example Alertmanager configuration.
func TestAmtoolConfig(t *testing.T) {
	amtool := lookTool(t, "amtool")
	run(t, amtool, "check-config", alertmanagerFile)
}

// lookTool finds a command on PATH; without it the test is skipped, except
// under CI=true where a check that did not run is a failure.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI=true): %v; make alert-rules installs it", name, err)
		}
		t.Skipf("%s is not installed (make alert-rules installs it): %v", name, err)
	}
	return path
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out)
}
