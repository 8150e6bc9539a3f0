package store_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// The Go bounds and the SQL function must put every duration in the same
// bucket.
func TestDurationBucketsMatchSQL(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	probe := []float64{0, 4.999, 5}
	for _, b := range store.DurationBucketBounds {
		probe = append(probe, b-0.001, b, b+0.001)
	}
	probe = append(probe, 1e9)
	for _, ms := range probe {
		var got int
		if err := st.Pool.QueryRow(ctx, `SELECT dfm_duration_bucket($1)`, ms).Scan(&got); err != nil {
			t.Fatal(err)
		}
		want := 0
		for want < len(store.DurationBucketBounds) && ms >= store.DurationBucketBounds[want] {
			want++
		}
		if got != want {
			t.Errorf("%v ms: SQL bucket %d, Go bucket %d", ms, got, want)
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	h := store.NewHistogram()
	if h.Percentile(0.95) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram")
	}
	// 90 durations in [100, 250) ms, 10 in [1000, 2500) ms, max 2000.
	h.Add(5, 90, 90*150, 240)
	h.Add(8, 10, 10*1800, 2000)
	if m := h.Mean(); math.Abs(m-(90*150+10*1800)/100.0) > 1e-9 {
		t.Errorf("mean %v", m)
	}
	if p := h.Percentile(0.5); p < 100 || p > 250 {
		t.Errorf("p50 %v outside its bucket", p)
	}
	if p := h.Percentile(0.95); p < 1000 || p > 2000 {
		t.Errorf("p95 %v outside [1000, max]", p)
	}
	if p := h.Percentile(1); p != 2000 {
		t.Errorf("p100 %v, want the max", p)
	}
	h.Add(-1, 5, 0, 0) // operations without a finish are not durations
	if h.N != 100 {
		t.Errorf("N %d", h.N)
	}
	top := store.NewHistogram()
	top.Add(len(store.DurationBucketBounds), 4, 4*5e6, 7e6) // open-ended last bucket
	if p := top.Percentile(0.5); p < 3.6e6 || p > 7e6 {
		t.Errorf("open bucket p50 %v", p)
	}
}

// Finishes written by the queue's own statements are counted once; claims,
// retries, replays and quarantines are not finishes.
func TestEventFinishRollup(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	var evs []store.NewEvent
	for i := range 6 {
		evs = append(evs, newEvent(fmt.Sprintf("r%d", i)))
	}
	res, err := st.InsertEvents(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := st.ClaimJobs(ctx, "w", 6, time.Minute)
	if err != nil || len(jobs) != 6 {
		t.Fatalf("claim %d, %v", len(jobs), err)
	}
	statuses := []string{store.StatusDone, store.StatusDone, store.StatusSkipped, store.StatusError, store.StatusPending, store.StatusPending}
	var outs []store.Outcome
	for i, j := range jobs {
		outs = append(outs, store.Outcome{ID: j.ID, LeaseToken: j.LeaseToken, Status: statuses[i], RetryIn: time.Hour})
	}
	if _, err := st.CompleteJobs(ctx, outs); err != nil {
		t.Fatal(err)
	}
	// Replaying and quarantining finished events adds no finish.
	if _, err := st.TransitionEvent(ctx, jobs[0].ID, store.ActionReplay, "", store.Actor{Name: "t", Interface: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TransitionEvent(ctx, jobs[1].ID, store.ActionQuarantine, "x", store.Actor{Name: "t", Interface: "test"}); err != nil {
		t.Fatal(err)
	}
	fs, err := st.EventFinishStats(ctx, 15)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Finished5 != 4 || fs.Histogram.N != 4 || fs.ByStatus["done"] != 2 || fs.ByStatus["skipped"] != 1 || fs.ByStatus["error"] != 1 || fs.BySource["texting"] != 4 {
		t.Fatalf("finish stats = %+v", fs)
	}
	_ = res
}

// InsertSyncLog and bulk inserts are both counted; the compaction folds the
// shards of closed hours without changing any total.
func TestSyncLogRollup(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	now := time.Now()
	for i := range 10 {
		fin := now.Add(time.Duration(20*(i+1)) * time.Millisecond)
		status := store.SyncSuccess
		if i >= 8 {
			status = store.SyncError
		}
		if err := st.InsertSyncLog(ctx, store.SyncLogEntry{Direction: "ghl_to_aloware", EntityType: "contact", Status: status, StartedAt: now, FinishedAt: &fin}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Pool.Exec(ctx, `INSERT INTO sync_log (direction, entity_type, status, started_at, finished_at)
		SELECT 'texting_to_ghl', 'message', 'success', now() - interval '3 hours', now() - interval '3 hours' + interval '7 ms'
		FROM generate_series(1, 500)`); err != nil {
		t.Fatal(err)
	}
	// Spread one closed hour over several shards, as concurrent writers would.
	if _, err := st.Pool.Exec(ctx, `INSERT INTO sync_log_rollup (hour, direction, entity_type, status, bucket, shard, n, sum_ms, max_ms)
		SELECT date_trunc('hour', now() - interval '3 hours'), 'texting_to_ghl', 'message', 'success', 1, s, 1, 7, 7
		FROM generate_series(1, 7) s ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	totals := func() map[string]int64 {
		_, rows, err := st.SyncStats(ctx, 24, "", "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, r := range rows {
			out[r.Direction+"/"+r.Status] += r.Count
		}
		return out
	}
	before := totals()
	if before["ghl_to_aloware/success"] != 8 || before["ghl_to_aloware/error"] != 2 || before["texting_to_ghl/success"] < 500 {
		t.Fatalf("rollup totals = %v", before)
	}
	if _, err := st.Pool.Exec(ctx, `SELECT dfm_compact_sync_log_rollup()`); err != nil {
		t.Fatal(err)
	}
	after := totals()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("compaction changed totals: %v → %v", before, after)
	}
	var sharded int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM sync_log_rollup WHERE shard <> 0 AND hour < date_trunc('hour', now())`).Scan(&sharded); err != nil {
		t.Fatal(err)
	}
	if sharded != 0 {
		t.Fatalf("%d sharded rows of closed hours left after compaction", sharded)
	}
	_, rows, err := st.SyncStats(ctx, 24, "ghl_to_aloware", "contact")
	if err != nil || len(rows) != 2 {
		t.Fatalf("filtered stats: %v, %v", rows, err)
	}
	if h := rows[1].Histogram; rows[1].Status != "success" || h.N != 8 || h.MaxMS < 159 || h.MaxMS > 161 {
		t.Fatalf("success histogram = %+v", h)
	}
	if n, err := st.PruneRollups(ctx); err != nil || n != 0 {
		t.Fatalf("prune: %d, %v", n, err)
	}
}

// A capped scan never skips or repeats a row: following next_cursor through
// scan-limited pages returns exactly the matching rows, in order.
func TestSearchEventsCappedScanCoversEverything(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	var evs []store.NewEvent
	for i := range 300 {
		e := newEvent(fmt.Sprintf("s%03d", i))
		if i%7 == 0 {
			e.EventType = "message.rare"
		}
		evs = append(evs, e)
	}
	res, err := st.InsertEvents(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := range res {
		if i%7 == 0 {
			want++
		}
	}
	for _, f := range []store.EventSearch{
		{EventType: "message.rare", Limit: 5, ScanCap: 17},
		{EventType: "message.rare", Limit: 100, ScanCap: 50},
		{PayloadContains: `"s1`, Limit: 7, ScanCap: 40},
		{Limit: 30, ScanCap: 30},
	} {
		seen := map[string]bool{}
		var last *store.Event
		limited := false
		for calls := 0; ; calls++ {
			page, err := st.SearchEvents(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			limited = limited || page.ScanLimited
			for i := range page.Events {
				e := page.Events[i]
				if seen[e.ID] {
					t.Fatalf("%+v: %s twice", f, e.ID)
				}
				seen[e.ID] = true
				if last != nil && (e.ReceivedAt.After(last.ReceivedAt) || e.ReceivedAt.Equal(last.ReceivedAt) && e.ID > last.ID) {
					t.Fatalf("%+v: order broken", f)
				}
				last = &e
			}
			if len(page.Events) > f.Limit {
				t.Fatalf("page of %d > limit %d", len(page.Events), f.Limit)
			}
			if page.NextCursor == "" {
				break
			}
			f.Cursor = page.NextCursor
			if calls > 400 {
				t.Fatal("no end")
			}
		}
		expect := want
		switch {
		case f.PayloadContains != "":
			expect = 100 // s100…s199
		case f.EventType == "":
			expect = 300
		}
		if len(seen) != expect {
			t.Errorf("%+v: %d events, want %d", f, len(seen), expect)
		}
		if f.EventType != "" && !limited {
			t.Errorf("%+v: a rare filter should hit the scan cap", f)
		}
	}
	if _, err := st.SearchEvents(ctx, store.EventSearch{Cursor: "x"}); err != store.ErrBadCursor {
		t.Errorf("bad cursor: %v", err)
	}
}

// A bulk replay changes the events and writes its audit rows in one
// transaction, and only events still in the filtered status.
func TestReplayMatching(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	var evs []store.NewEvent
	for i := range 12 {
		evs = append(evs, newEvent(fmt.Sprintf("b%d", i)))
	}
	res, err := st.InsertEvents(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range res {
		ids = append(ids, r.ID)
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE webhook_events SET status = 'error', error_message = 'boom' WHERE id = ANY($1)`, ids[:8]); err != nil {
		t.Fatal(err)
	}
	f := store.ReplayFilter{Status: store.StatusError, Source: "texting"}
	plan, err := st.PlanReplay(ctx, f, 1000, 3)
	if err != nil || plan.Matched != 8 || plan.Examined != 8 || len(plan.SampleIDs) != 3 || plan.ScanLimited {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	actor := store.Actor{Name: "tester", Interface: "mcp-stdio"}
	done, err := st.ReplayMatching(ctx, f, 5, 1000, "why", actor, map[string]any{"k": "v"})
	if err != nil || len(done) != 5 || done[0].PreviousStatus != "error" || done[0].PreviousError != "boom" {
		t.Fatalf("replayed %+v, %v", done, err)
	}
	var pending, audits, summaries int
	if err := st.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_events WHERE status = 'pending'),
		(SELECT count(*) FROM audit_log WHERE action = 'replay_event' AND actor = 'tester' AND interface = 'mcp-stdio' AND reason = 'why'),
		(SELECT count(*) FROM audit_log WHERE action = 'replay_events' AND details->>'replayed' = '5' AND details->>'k' = 'v')`).
		Scan(&pending, &audits, &summaries); err != nil {
		t.Fatal(err)
	}
	if pending != 9 || audits != 5 || summaries != 1 {
		t.Fatalf("pending %d, per-event audits %d, summaries %d", pending, audits, summaries)
	}
	if _, err := st.PlanReplay(ctx, store.ReplayFilter{Status: store.StatusPending}, 10, 1); err == nil {
		t.Fatal("pending is not a replayable status")
	}
}
