package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// poisonPhone is a number no load-driver contact has (those are +1310…):
// the sandbox's Aloware fails every call that carries it.
const poisonPhone = "+14155550123"

// TestPoisonEvent sends events whose Aloware write always fails among
// healthy ones: each ends error after exactly DF_MAX_ATTEMPTS attempts,
// and the others end done without being held up.
func TestPoisonEvent(t *testing.T) {
	setup(t)
	res := newResult("poison")
	const maxAttempts = 3
	sec := newSecrets(t)
	sb := startSandbox(t, 0)
	sb.setFaults(t, sandbox.UpstreamAloware, sandbox.Faults{ErrorRate: 1, Status: 500, Match: poisonPhone})
	dbURL := testdb.NewURL(t)
	addr := freeAddr(t)
	extra := map[string]string{"DF_MAX_ATTEMPTS": fmt.Sprint(maxAttempts), "DF_RETRY_BASE": pick("200ms", "1s")}
	res.Settings = extra
	svc := startService(t, "serve", addr, "poison-1", serviceEnv(withPoolSize(dbURL, poolSize()), sb.url, addr, "poison-1", sec, extra))

	spec := loadSpec{Kind: sandbox.KindGHLContact, Rate: pick(30.0, 50.0), Targets: fixed(svc.url)}
	// One poison event at a time: each runs its attempts while healthy
	// events keep succeeding, as a lone bad record does in production.
	poisons, every := pick(2, 5), pick(4*time.Second, 10*time.Second)
	duration := time.Second + time.Duration(poisons)*every
	res.Load = describeLoad(spec, duration)
	res.Fault = fmt.Sprintf("%d GHL ContactCreate events with phone %s, one every %s; the sandbox's Aloware answers 500 to every call carrying that number",
		poisons, poisonPhone, every)
	load := newLoadDriver(t, spec, sec)
	load.start()
	keys := map[string]bool{}
	time.Sleep(time.Second)
	for i := range poisons {
		if i > 0 {
			time.Sleep(every)
		}
		r := load.send(sandbox.KindGHLContact, func(f map[string]any) { f["phone"] = poisonPhone })
		if !r.Acked {
			t.Fatalf("poison event not acknowledged: %d %s", r.Code, r.Err)
		}
		keys[r.Key] = true
	}
	time.Sleep(every)
	load.stop()
	load.markPoison(keys)
	recs := load.snapshot()

	checkInvariant(t, res, recs, checkOpts{dbURL: dbURL, sb: sb, settle: pick(60*time.Second, 3*time.Minute)})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connectRetry(ctx, t, dbURL)
	defer conn.Close(context.Background())
	var list []string
	for k := range keys {
		list = append(list, k)
	}
	rows, err := conn.Query(ctx, `SELECT id::text, status, attempts, coalesce(error_message, ''), processed_at - received_at
		FROM webhook_events WHERE dedupe_key = ANY($1)`, list)
	if err != nil {
		t.Fatal(err)
	}
	var took []string
	for rows.Next() {
		var id, status, msg string
		var attempts int
		var d time.Duration
		if err := rows.Scan(&id, &status, &attempts, &msg, &d); err != nil {
			t.Fatal(err)
		}
		if status != "error" || attempts != maxAttempts || !strings.Contains(msg, fmt.Sprintf("gave up after %d attempts", maxAttempts)) {
			res.problem("poison event %s ended %s after %d attempts (%q); want error after exactly %d", id, status, attempts, msg, maxAttempts)
		}
		took = append(took, seconds(d))
		if len(took) == 1 {
			res.observe("poison error message", "%s", firstRunes(msg, 200))
		}
	}
	rows.Close()
	if len(took) != poisons {
		res.problem("%d poison events stored, want %d", len(took), poisons)
	}
	res.observe("poison events", "%d, each ended error after %d attempts; receipt to error: %s", poisons, maxAttempts, strings.Join(took, ", "))
	res.observe("healthy events' processing latency", "p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		res.ProcessLatencyMS.P50, res.ProcessLatencyMS.P99, res.ProcessLatencyMS.Max)
	if res.ProcessLatencyMS.P99 > 5000 {
		res.problem("healthy events were held up: processing p99 %.0f ms", res.ProcessLatencyMS.P99)
	}
	finish(t, res)
}

func firstRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
