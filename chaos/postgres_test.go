package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// healthSample is one GET /health.
type healthSample struct {
	at       time.Time
	latency  time.Duration
	code     int // 0: no answer
	database string
}

// pollHealth samples /health every interval until stop is closed.
func pollHealth(url string, interval time.Duration, stop <-chan struct{}) func() []healthSample {
	var mu sync.Mutex
	var samples []healthSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 15 * time.Second}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			s := healthSample{at: time.Now()}
			if resp, err := client.Get(url + "/health"); err == nil {
				var body struct {
					Dependencies map[string]string `json:"dependencies"`
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				_ = json.Unmarshal(b, &body)
				s.code, s.database = resp.StatusCode, body.Dependencies["database"]
			}
			s.latency = time.Since(s.at)
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() []healthSample {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return samples
	}
}

// TestPostgresRestart stops and restarts the service's PostgreSQL under
// load: intake answers 503 at once while it is down (never a hang, never a
// 500), /health says so, and the service recovers without a restart.
func TestPostgresRestart(t *testing.T) {
	setup(t)
	res := newResult("postgres")
	cluster := testdb.StartCluster(t)
	sec := newSecrets(t)
	sb := startSandbox(t, 0)
	addr := freeAddr(t)
	dbURL := cluster.URL()
	svc := startService(t, "serve", addr, "pg-1", serviceEnv(dbURL, sb.url, addr, "pg-1", sec, nil))
	res.Settings = map[string]string{"database": "private cluster (testdb.StartCluster), stopped with pg_ctl stop -m fast"}

	spec := loadSpec{Kind: sandbox.KindGHLContact, Rate: pick(40.0, 100.0), Targets: fixed(svc.url), Timeout: 30 * time.Second}
	before, down, after := pick(4*time.Second, 15*time.Second), pick(5*time.Second, 30*time.Second), pick(6*time.Second, 20*time.Second)
	res.Load = describeLoad(spec, before+down+after)
	load := newLoadDriver(t, spec, sec)
	stopPoll := make(chan struct{})
	samples := pollHealth(svc.url, 250*time.Millisecond, stopPoll)
	load.start()

	time.Sleep(before)
	stopAt := time.Now()
	cluster.Stop()
	stoppedAt := time.Now()
	time.Sleep(down)
	startAt := time.Now()
	cluster.Start()
	startedAt := time.Now()
	res.Fault = fmt.Sprintf("PostgreSQL stopped after %s of load (shutdown took %s), down %s, started again (took %s)",
		before, seconds(stoppedAt.Sub(stopAt)), seconds(startAt.Sub(stoppedAt)), seconds(startedAt.Sub(startAt)))
	time.Sleep(after)
	load.stop()
	close(stopPoll)
	health := samples()
	recs := load.snapshot()

	checkInvariant(t, res, recs, checkOpts{dbURL: dbURL, sb: sb, settle: pick(60*time.Second, 3*time.Minute), faultEnd: startedAt})
	if !svc.running() {
		res.problem("the service exited during the database outage (it must recover by itself)")
	}

	// Intake while the database was down: 503, promptly.
	var whileDown []time.Duration
	byCode := map[string]int{}
	for _, r := range recs {
		if r.Code != 0 && r.Code/100 == 5 && r.Code != http.StatusServiceUnavailable {
			res.problem("request %s answered %d (want 503 when the database cannot take the write)", r.Key, r.Code)
		}
		if r.Err == "timeout" {
			res.problem("request %s hung for %s without an answer", r.Key, r.Latency)
		}
		if r.Sent.After(stoppedAt) && r.Sent.Before(startAt) {
			whileDown = append(whileDown, r.Latency)
			byCode[r.refusal()]++
			if r.Acked {
				res.problem("request %s was acknowledged while the database was down", r.Key)
			}
		}
	}
	down503 := summarise(whileDown)
	if len(whileDown) == 0 {
		res.problem("no request was sent while the database was down")
	} else if down503.Max > 11000 {
		res.problem("an intake request took %.0f ms while the database was down (a hang: the committer gives up after 10 s)", down503.Max)
	}

	// Health while down and after.
	var sawDown bool
	var healthBack time.Time
	for _, s := range health {
		if s.at.After(stoppedAt) && s.at.Add(s.latency).Before(startAt) && s.code == http.StatusServiceUnavailable && s.database == "down" {
			sawDown = true
		}
		if s.at.After(startedAt) && healthBack.IsZero() && s.code == http.StatusOK && s.database == "ok" {
			healthBack = s.at.Add(s.latency)
		}
		if s.at.After(stoppedAt) && s.at.Before(startAt) && s.code == 0 {
			res.problem("/health gave no answer at %s while the database was down", s.at.Format(time.RFC3339Nano))
		}
	}
	if !sawDown {
		res.problem("/health never reported 503 with the database down during the outage")
	}
	if healthBack.IsZero() {
		res.problem("/health did not report the database ok again after the restart")
	} else {
		res.observe("/health ok again after the restart", "%s", seconds(healthBack.Sub(startedAt)))
	}
	res.observe("requests while the database was down", "%d, answered %v", len(whileDown), byCode)
	res.observe("intake latency while down", "p50 %.0f ms, p99 %.0f ms, max %.0f ms", down503.P50, down503.P99, down503.Max)
	res.observe("/health while down", "%v", map[bool]string{true: "503, database down", false: "not seen"}[sawDown])
	res.observe("service restarted", "no (same process throughout)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, ok := metric(ctx, http.DefaultClient, svc.url, `database_connections_active`); ok {
		res.observe("database_connections_active at the end", "%.0f", v)
	}
	finish(t, res)
}
