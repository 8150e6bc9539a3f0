package chaos

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/df-middleware/df-middleware/internal/sandbox"
)

// checkOpts tunes the invariant check of one scenario.
type checkOpts struct {
	dbURL string
	sb    *sandboxProc // the upstream effects are checked when set
	// settle bounds the wait for the run's events to leave pending and
	// processing.
	settle time.Duration
	// faultEnd, when set, is when the fault ended: the recovery figures
	// are measured from it.
	faultEnd time.Time
	// orphans are the ids of events that a killed process held a lease on:
	// their upstream write may legitimately have been repeated.
	orphans map[string]bool
}

// eventRow is a webhook_events row of the run.
type eventRow struct {
	id, status, errMsg      string
	attempts                int
	receivedAt, processedAt time.Time
}

// checkInvariant waits for the queue to settle, then checks from the
// database and the sandbox that every acknowledged event is stored once,
// ended in a final status (done, or error for a poison event) and had its
// effect exactly once. It fills the common figures of res and appends every
// violation to res.Problems.
func checkInvariant(t *testing.T, res *Result, recs []record, o checkOpts) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.settle+2*time.Minute)
	defer cancel()
	conn := connectRetry(ctx, t, o.dbURL)
	defer conn.Close(context.Background())

	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.Key
	}
	// 1. Wait for the run's events to settle.
	deadline := time.Now().Add(o.settle)
	var live int
	for {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM webhook_events
			WHERE dedupe_key = ANY($1) AND status IN ('pending', 'processing')`, keys).Scan(&live); err != nil {
			t.Fatalf("count live events: %v", err)
		}
		if live == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	// 2. The rows.
	rows, err := conn.Query(ctx, `SELECT dedupe_key, id::text, status, attempts, coalesce(error_message, ''),
		received_at, coalesce(processed_at, 'epoch'::timestamptz) FROM webhook_events WHERE dedupe_key = ANY($1)`, keys)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	byKey := map[string]eventRow{}
	for rows.Next() {
		var k string
		var r eventRow
		if err := rows.Scan(&k, &r.id, &r.status, &r.attempts, &r.errMsg, &r.receivedAt, &r.processedAt); err != nil {
			t.Fatalf("scan event: %v", err)
		}
		byKey[k] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("read events: %v", err)
	}
	var total int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM webhook_events`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != len(byKey) {
		res.problem("%d rows in webhook_events match no request the load driver sent", total-len(byKey))
	}

	res.Sent = len(recs)
	res.Refused, res.RefusedButStored, res.Ended = map[string]int{}, map[string]int{}, map[string]int{}
	var intake []time.Duration
	var lostKeys, stuckKeys, wrongKeys []string
	for _, r := range recs {
		row, stored := byKey[r.Key]
		if stored {
			res.Ended[row.status]++
		}
		if !r.Acked {
			res.Refused[r.refusal()]++
			if stored {
				res.RefusedButStored[r.refusal()]++
				if r.Code == 500 {
					res.problem("request %s was answered 500 but its event %s was stored", r.Key, row.id)
				}
			}
			continue
		}
		res.Acknowledged++
		intake = append(intake, r.Latency)
		if !stored {
			res.Lost++
			lostKeys = append(lostKeys, r.Key)
			continue
		}
		if r.EventID != "" && r.EventID != row.id {
			res.problem("request %s was acknowledged with event id %s but is stored as %s", r.Key, r.EventID, row.id)
		}
		want := "done"
		if r.Poison {
			want = "error"
		}
		switch {
		case row.status == "pending" || row.status == "processing":
			res.Stuck++
			stuckKeys = append(stuckKeys, fmt.Sprintf("%s (%s, %d attempts: %s)", row.id, row.status, row.attempts, row.errMsg))
		case row.status != want:
			wrongKeys = append(wrongKeys, fmt.Sprintf("%s ended %s, want %s (%d attempts: %s)", row.id, row.status, want, row.attempts, row.errMsg))
		}
	}
	if res.Lost > 0 {
		res.problem("%d acknowledged events are not in webhook_events, e.g. %v", res.Lost, first(lostKeys, 5))
	}
	if res.Stuck > 0 {
		res.problem("%d acknowledged events still pending or processing %s after the load: %v", res.Stuck, o.settle, first(stuckKeys, 5))
	}
	if len(wrongKeys) > 0 {
		res.problem("%d events ended in an unexpected status: %v", len(wrongKeys), first(wrongKeys, 5))
	}
	for code, n := range res.RefusedButStored {
		t.Logf("%d requests refused with %s were stored anyway (a redelivery finds them as duplicates)", n, code)
	}

	// 3. Processed twice: successful sync operations per event and direction...
	ids := make([]string, 0, len(byKey))
	idToRec := map[string]record{}
	for _, r := range recs {
		if row, ok := byKey[r.Key]; ok {
			ids = append(ids, row.id)
			idToRec[row.id] = r
		}
	}
	twice := map[string]string{}    // event id → evidence: processed twice
	rewrites := map[string]string{} // event id → evidence: an idempotent write repeated
	srows, err := conn.Query(ctx, `SELECT correlation_id::text, direction, count(*) FROM sync_log
		WHERE status = 'success' AND correlation_id = ANY($1::uuid[])
		GROUP BY 1, 2 HAVING count(*) > 1`, ids)
	if err != nil {
		t.Fatalf("read sync_log: %v", err)
	}
	for srows.Next() {
		var id, dir string
		var n int
		if err := srows.Scan(&id, &dir, &n); err != nil {
			t.Fatal(err)
		}
		twice[id] = fmt.Sprintf("%d successful %s syncs", n, dir)
	}
	srows.Close()
	// ... and the effects the sandbox saw.
	if o.sb != nil {
		st, err := o.sb.state(ctx)
		if err != nil {
			t.Fatalf("sandbox state: %v", err)
		}
		notes := notesByMessage(st)
		contacts := map[string]int{}
		for _, c := range st.AlowareContacts {
			contacts[c.PhoneNumber]++
		}
		var missing []string
		for _, r := range recs {
			row, ok := byKey[r.Key]
			if !ok {
				continue
			}
			var effects int
			var what string
			switch r.Kind {
			case sandbox.KindGHLContact:
				// The Aloware write is an upsert by phone: a repeated write
				// leaves one contact. Two contacts would be a duplicate.
				effects, what = st.AlowareWrites[r.Phone], "Aloware writes for "+r.Phone
				if n := contacts[r.Phone]; n > 1 {
					twice[row.id] = fmt.Sprintf("%d Aloware contacts for %s", n, r.Phone)
				} else if effects > 1 {
					rewrites[row.id] = fmt.Sprintf("%d %s, %d attempts", effects, what, row.attempts)
				}
			case sandbox.KindTextingMessage:
				// A note is not idempotent: a second one is a duplicate.
				effects, what = notes[r.ID], "GHL notes for "+r.ID
				if effects > 1 {
					twice[row.id] = fmt.Sprintf("%d %s", effects, what)
				}
			}
			if row.status == "done" && effects == 0 {
				missing = append(missing, row.id+": "+what)
			}
			if r.Poison && effects != 0 {
				res.problem("poison event %s had an effect: %d %s", row.id, effects, what)
			}
		}
		if len(missing) > 0 {
			res.problem("%d events ended done without their upstream effect, e.g. %v", len(missing), first(missing, 5))
		}
	}
	var dupes, again []string
	for id, why := range rewrites {
		if o.orphans[id] {
			twice[id] = why // counted with the crash re-runs below
			continue
		}
		res.IdempotentRewrites++
		again = append(again, id+": "+why)
	}
	for id, why := range twice {
		if o.orphans[id] {
			res.RedoneAfterCrash++
			t.Logf("event %s (in flight on the killed process) redone: %s", id, why)
			continue
		}
		res.Duplicated++
		dupes = append(dupes, id+": "+why)
	}
	if res.Duplicated > 0 {
		slices.Sort(dupes)
		res.problem("%d events processed more than once: %v", res.Duplicated, first(dupes, 5))
		for _, d := range first(dupes, 5) {
			id, _, _ := strings.Cut(d, ":")
			logSyncEvidence(ctx, t, conn, id)
		}
	}
	if len(again) > 0 {
		slices.Sort(again)
		t.Logf("%d events repeated their idempotent upstream write on a retry: %v", len(again), first(again, 5))
		res.observe("idempotent writes repeated by a retry", "%d, e.g. %s", len(again), strings.Join(first(again, 3), "; "))
	}

	// 4. Latency and recovery.
	res.IntakeLatencyMS = summarise(intake)
	var proc []time.Duration
	var lastOfFault time.Time
	for _, row := range byKey {
		if row.status == "done" {
			proc = append(proc, row.processedAt.Sub(row.receivedAt))
		}
		if !o.faultEnd.IsZero() && row.receivedAt.Before(o.faultEnd) && row.processedAt.After(lastOfFault) {
			lastOfFault = row.processedAt
		}
	}
	res.ProcessLatencyMS = summarise(proc)
	if !o.faultEnd.IsZero() {
		res.RecoveryFirstAckS = firstAckAfter(recs, o.faultEnd)
		if !lastOfFault.IsZero() {
			res.RecoveryDrainS = secondsPtr(max(0, lastOfFault.Sub(o.faultEnd)))
		}
	}
}

// logSyncEvidence logs an event's row and its sync_log rows, the evidence
// of a double processing.
func logSyncEvidence(ctx context.Context, t *testing.T, conn *pgx.Conn, id string) {
	var status, msg string
	var attempts int
	if err := conn.QueryRow(ctx, `SELECT status, attempts, coalesce(error_message, '') FROM webhook_events WHERE id = $1`, id).
		Scan(&status, &attempts, &msg); err == nil {
		t.Logf("evidence: event %s ended %s after %d attempts (%q)", id, status, attempts, msg)
	}
	rows, err := conn.Query(ctx, `SELECT direction, status, started_at, finished_at, coalesce(target_id, ''), coalesce(error_message, '')
		FROM sync_log WHERE correlation_id = $1 ORDER BY started_at`, id)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var dir, st, target, emsg string
		var started, finished time.Time
		if rows.Scan(&dir, &st, &started, &finished, &target, &emsg) == nil {
			t.Logf("evidence: sync_log %s %s %s → %s target %s %s", dir, st, started.Format("15:04:05.000"),
				finished.Format("15:04:05.000"), target, emsg)
		}
	}
}

// notesByMessage counts GHL notes per texting message id ("Texting inbound
// SMS <id>: …", the sync handler's note).
func notesByMessage(st sandbox.State) map[string]int {
	out := map[string]int{}
	for _, n := range st.GHLNotes {
		f := strings.Fields(n.Body)
		if len(f) >= 4 && f[0] == "Texting" && f[2] == "SMS" {
			out[strings.TrimSuffix(f[3], ":")]++
		}
	}
	return out
}

// connectRetry connects to the database, retrying while it starts.
func connectRetry(ctx context.Context, t *testing.T, url string) *pgx.Conn {
	t.Helper()
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func (r *Result) observe(name, format string, args ...any) {
	r.Observations = append(r.Observations, Observation{Name: name, Value: fmt.Sprintf(format, args...)})
}

// newResult starts the figures of a scenario.
func newResult(name string) *Result {
	return &Result{Scenario: name, Mode: modeName(), Started: time.Now().UTC(), Settings: map[string]string{},
		Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())}
}

// finish stamps the duration, writes the result file and fails the test
// with every problem.
func finish(t *testing.T, res *Result) {
	t.Helper()
	res.DurationS = math.Round(time.Since(res.Started).Seconds()*10) / 10
	res.Pass = len(res.Problems) == 0
	writeResult(t, res)
	for _, p := range res.Problems {
		t.Error(p)
	}
}

func summarise(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return msRound(d[max(0, min(i, len(d)-1))])
	}
	return Latency{P50: q(0.5), P99: q(0.99), Max: msRound(d[len(d)-1])}
}

func msRound(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}

func first[T any](s []T, n int) []T { return s[:min(n, len(s))] }
