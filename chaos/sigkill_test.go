package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// fixed returns a Targets function for one base URL.
func fixed(url string) func() []string { return func() []string { return []string{url} } }

// leasedBy returns the ids of the events leased by instance right now.
func leasedBy(t *testing.T, dbURL, instance string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connectRetry(ctx, t, dbURL)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT id::text FROM webhook_events WHERE status = 'processing' AND locked_by = $1`, instance)
	if err != nil {
		t.Fatalf("leased events: %v", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}

// rescuedBy sums the "rescued expired leases" log lines of p.
func rescuedBy(p *process) (requeued, failed int) {
	for _, l := range p.logLines("rescued expired leases") {
		if v, ok := l.Metadata["requeued"].(float64); ok {
			requeued += int(v)
		}
		if v, ok := l.Metadata["failed"].(float64); ok {
			failed += int(v)
		}
	}
	return requeued, failed
}

// TestSIGKILL kills the service with SIGKILL under load and starts it
// again: nothing acknowledged is lost, the dead process's leases are
// rescued, and only the events it was running may repeat their write.
func TestSIGKILL(t *testing.T) {
	setup(t)
	res := newResult("sigkill")
	sec := newSecrets(t)
	sb := startSandbox(t, 100*time.Millisecond)
	dbURL := testdb.NewURL(t)
	addr := freeAddr(t)
	lease := "10s" // the dead process's leases are rescued within the run
	extra := map[string]string{"DF_LEASE_DURATION": lease}
	res.Settings = map[string]string{"DF_LEASE_DURATION": lease, "DF_WORKERS": pick("8", "16"), "pool_max_conns": fmt.Sprint(poolSize()), "sandbox Aloware latency": "100ms"}
	env := func(instance string) []string {
		return serviceEnv(withPoolSize(dbURL, poolSize()), sb.url, addr, instance, sec, extra)
	}
	first := startService(t, "serve-1", addr, "kill-1", env("kill-1"))

	spec := loadSpec{Kind: sandbox.KindGHLContact, Rate: pick(40.0, 100.0), Targets: fixed(first.url)}
	before, down, after := pick(4*time.Second, 20*time.Second), pick(time.Second, 5*time.Second), pick(6*time.Second, 35*time.Second)
	res.Load = describeLoad(spec, before+down+after)
	load := newLoadDriver(t, spec, sec)
	load.start()

	time.Sleep(before)
	first.kill()
	killedAt := time.Now()
	ackedAtKill := 0
	for _, r := range load.snapshot() {
		if r.Acked {
			ackedAtKill++
		}
	}
	orphans := leasedBy(t, dbURL, "kill-1")
	res.Fault = fmt.Sprintf("SIGKILL after %s of load, restarted %s later under another instance id", before, down)

	time.Sleep(down)
	restartAt := time.Now()
	second := startService(t, "serve-2", addr, "kill-2", env("kill-2"))
	readyAfter := time.Since(restartAt)
	time.Sleep(after)
	load.stop()
	recs := load.snapshot()

	checkInvariant(t, res, recs, checkOpts{dbURL: dbURL, sb: sb, settle: pick(60*time.Second, 3*time.Minute),
		faultEnd: restartAt, orphans: orphans})
	if ackedAtKill < 20 {
		res.problem("only %d events acknowledged before the kill: too light a load to prove anything", ackedAtKill)
	}
	requeued, failed := rescuedBy(second.process)
	if requeued+failed < len(orphans) {
		res.problem("the restarted service rescued %d leases, but the killed one held %d", requeued+failed, len(orphans))
	}
	var duringDown int
	for _, r := range recs {
		if r.Sent.After(killedAt) && r.Sent.Before(restartAt.Add(readyAfter)) && !r.Acked {
			duringDown++
		}
	}
	res.observe("acknowledged before the kill", "%d", ackedAtKill)
	res.observe("events leased by the killed process", "%d", len(orphans))
	res.observe("leases rescued by the restarted process", "%d requeued, %d given up", requeued, failed)
	res.observe("requests refused while the service was down", "%d", duringDown)
	res.observe("restart to ready", "%s", seconds(readyAfter))
	finish(t, res)
}
