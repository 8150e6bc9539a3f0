package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/alert"
)

// startAlertmanager runs Debian's Alertmanager (package
// prometheus-alertmanager, which `make test` installs) routing every alert
// to webhookURL, and returns its base URL.
func startAlertmanager(t *testing.T, webhookURL string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		bin, err = exec.LookPath("alertmanager")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("Alertmanager is not installed (apt-get install prometheus-alertmanager; make alert-rules installs it)")
		}
		t.Skip("Alertmanager not installed (apt-get install prometheus-alertmanager)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: test
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: %s
        send_resolved: true
`, webhookURL)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("alertmanager log:\n%s", b)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager at %s not ready: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A real Alertmanager receives our pushes to /api/v2/alerts and notifies a
// webhook receiver: what it sends passes the same strict decoding as our
// own webhook notifications, carries our labels and annotations, and has
// the fingerprint we computed — our payload is Alertmanager's shape.
func TestRealAlertmanagerAgreesWithOurNotifications(t *testing.T) {
	t.Parallel()
	viaAM := newReceiver(t, 0)
	direct := newReceiver(t, 0)
	am := startAlertmanager(t, viaAM.srv.URL)
	h := start(t, alertEnv(direct.srv.URL, map[string]string{"DF_WORKERS": "0", "ALERTMANAGER_URL": am}))
	h.injectPending(501)

	ours := direct.waitFor(alert.QueueDepthWarning, "firing", 20*time.Second)
	theirs := viaAM.waitFor(alert.QueueDepthWarning, "firing", 20*time.Second)
	a, b := ours.Alerts[0], theirs.Alerts[0]
	if a.Fingerprint != b.Fingerprint {
		t.Errorf("fingerprint: ours %s, Alertmanager's %s", a.Fingerprint, b.Fingerprint)
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			t.Errorf("label %s: ours %q, Alertmanager's %q", k, v, b.Labels[k])
		}
	}
	for _, k := range []string{"summary", "runbook", "runbook_url"} {
		if a.Annotations[k] != b.Annotations[k] {
			t.Errorf("annotation %s: ours %q, Alertmanager's %q", k, a.Annotations[k], b.Annotations[k])
		}
	}
	if !a.StartsAt.Equal(b.StartsAt) {
		t.Errorf("startsAt: ours %s, Alertmanager's %s", a.StartsAt, b.StartsAt)
	}

	// Drain the queue: the resolved alert reaches Alertmanager too.
	if _, err := h.st.Pool.Exec(context.Background(),
		`UPDATE webhook_events SET status = 'done', processed_at = now() WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	direct.waitFor(alert.QueueDepthWarning, "resolved", 20*time.Second)
	res := viaAM.waitFor(alert.QueueDepthWarning, "resolved", 20*time.Second)
	if res.Alerts[0].EndsAt.Before(res.Alerts[0].StartsAt) {
		t.Errorf("Alertmanager's resolved alert: %+v", res.Alerts[0])
	}
}
