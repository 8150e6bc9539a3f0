package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, func(string) string { return "" }, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "df-middleware ") {
		t.Fatalf("version: code %d out %q", code, out.String())
	}
	if code := run(nil, func(string) string { return "" }, nil, &out, &errOut); code != 2 {
		t.Fatalf("no command: code %d", code)
	}
	if code := run([]string{"bogus"}, func(string) string { return "" }, nil, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: code %d", code)
	}
}

// Invalid configuration: every problem reported at once, as JSON log lines,
// no secret value printed, exit code 2.
func TestConfigProblemsAllReported(t *testing.T) {
	env := map[string]string{
		"DF_ENV": "production", "PORT": "0", "DF_WORKERS": "-1",
		"DF_ALLOW_UNSIGNED_WEBHOOKS": "true", "DF_ADMIN_SECRET": "short-secret",
		"DATABASE_URL": "postgres://u:hunter2-db-password@localhost/db",
	}
	var out, errOut bytes.Buffer
	code := run([]string{"serve"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	if code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	logs := errOut.String()
	for _, want := range []string{"PORT", "DF_WORKERS", "DF_ALLOW_UNSIGNED_WEBHOOKS", "DF_ADMIN_SECRET"} {
		if !strings.Contains(logs, want) {
			t.Errorf("problem with %s not reported:\n%s", want, logs)
		}
	}
	for _, secret := range []string{"short-secret", "hunter2-db-password"} {
		if strings.Contains(logs, secret) {
			t.Errorf("secret %q printed", secret)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON log line: %q", sc.Text())
		}
	}
	if out.Len() != 0 {
		t.Fatalf("stdout written: %q", out.String())
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "df-middleware")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

func startServe(t *testing.T, bin string, env []string) proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	var mu sync.Mutex
	buf := &bytes.Buffer{}
	cmd.Stderr = lockedWriter{&mu, buf}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return proc{cmd, buf, &mu}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("service not ready within 30s")
}

// The durability promise: a 2xx means the event is stored. Send webhooks
// concurrently, SIGKILL the service mid-load, restart it, and check that
// every acknowledged event is in the table, ends processed, and was
// finished exactly once (a lease-guarded finish can happen only once; the
// worker logs each committed finish).
func TestSIGKILLMidLoadLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := buildBinary(t)
	dbURL := testdb.NewURL(t)
	addr := freePort(t)
	const secret = "kill-test-webhook-secret"
	env := append(os.Environ(),
		"DATABASE_URL="+dbURL, "DF_LISTEN_ADDR="+addr, "VERITY_WEBHOOK_SECRET="+secret,
		"LOG_LEVEL=debug", "DF_WORKERS=4", "DF_LEASE_DURATION=2s", "DF_POLL_INTERVAL=100ms",
	)
	first := startServe(t, bin, env)
	waitReady(t, addr)

	var (
		acked   sync.Map // id -> true
		nAcked  atomic.Int64
		nFailed atomic.Int64
		seq     atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 16 {
		wg.Go(func() {
			for !stop.Load() {
				body := fmt.Appendf(nil, `{"eventType":"message.received","messageId":"kill-%d","from":"+13105550100","body":"x"}`, seq.Add(1))
				req, _ := http.NewRequest("POST", "http://"+addr+"/api/webhooks/texting", bytes.NewReader(body))
				req.Header.Set("X-Texting-Signature", intake.SignHMAC(body, []byte(secret)))
				resp, err := client.Do(req)
				if err != nil {
					nFailed.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var r struct{ ID string }
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					acked.Store(r.ID, true)
					nAcked.Add(1)
				} else {
					nFailed.Add(1)
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	ackedAtKill := nAcked.Load()
	time.Sleep(300 * time.Millisecond)
	second := startServe(t, bin, env)
	waitReady(t, addr)
	time.Sleep(700 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("acknowledged %d (%d before the kill), refused or failed %d", nAcked.Load(), ackedAtKill, nFailed.Load())
	if ackedAtKill < 100 {
		t.Fatalf("only %d events acknowledged before the kill: load too light to prove anything", ackedAtKill)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Leases of the killed process expire after 2 s and are rescued.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var live int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'processing')`).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending or processing after 60s", live)
		}
		time.Sleep(200 * time.Millisecond)
	}

	status := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT id::text, status FROM webhook_events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		status[id] = st
	}
	rows.Close()
	missing := 0
	acked.Range(func(k, _ any) bool {
		st, ok := status[k.(string)]
		if !ok {
			missing++
		} else if st != "skipped" {
			t.Errorf("event %s ended %s, want skipped (no handler)", k, st)
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d acknowledged events are not in the table", missing)
	}

	finishes := map[string]int{}
	for _, p := range []proc{first, second} {
		p.mu.Lock()
		sc := bufio.NewScanner(bytes.NewReader(p.stderr.Bytes()))
		p.mu.Unlock()
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Message  string
				Metadata struct {
					EventID string `json:"event_id"`
				}
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "event finished" {
				finishes[line.Metadata.EventID]++
			}
		}
	}
	for id, n := range finishes {
		if n > 1 {
			t.Errorf("event %s finished %d times", id, n)
		}
	}
	// The kill may land between a finish's commit and its log line, so a
	// few events may have no line; most must.
	if len(finishes) < len(status)*9/10 {
		t.Fatalf("only %d of %d events logged a finish", len(finishes), len(status))
	}
}
