package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

func insert(t *testing.T, st *store.Store, n int, eventType string) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for start := 0; start < n; start += 200 {
		var batch []store.NewEvent
		for i := start; i < min(n, start+200); i++ {
			batch = append(batch, store.NewEvent{Source: "texting", EventType: eventType,
				DedupeKey: fmt.Sprintf("k-%s-%d", eventType, i), Payload: []byte(`{}`)})
		}
		res, err := st.InsertEvents(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func startRunner(t *testing.T, st *store.Store, reg *queue.Registry, cfg queue.Config) (*queue.Runner, func()) {
	t.Helper()
	r := queue.New(st, reg, cfg, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return r, stop
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countStatus(t *testing.T, st *store.Store, status string) int {
	t.Helper()
	var n int
	if err := st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE status = $1`, status).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTwoPoolsProcessEachEventExactlyOnce(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	const n = 2000
	ids := insert(t, st, n, "work")

	var calls sync.Map // event id -> *atomic.Int32
	var byPool [2]atomic.Int64
	for pool := range 2 {
		reg := queue.NewRegistry()
		reg.Register("texting", "work", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
			c, _ := calls.LoadOrStore(j.ID, new(atomic.Int32))
			c.(*atomic.Int32).Add(1)
			byPool[pool].Add(1)
			return nil
		}))
		startRunner(t, st, reg, queue.Config{InstanceID: fmt.Sprintf("pool-%d", pool), Workers: 4, BatchSize: 8, PollInterval: 50 * time.Millisecond})
	}
	waitFor(t, 60*time.Second, "all events done", func() bool { return countStatus(t, st, store.StatusDone) == n })

	for _, id := range ids {
		c, ok := calls.Load(id)
		if !ok || c.(*atomic.Int32).Load() != 1 {
			got := int32(0)
			if ok {
				got = c.(*atomic.Int32).Load()
			}
			t.Fatalf("event %s handled %d times, want 1", id, got)
		}
	}
	if byPool[0].Load() == 0 || byPool[1].Load() == 0 {
		t.Fatalf("work split %d/%d: both pools should have taken events", byPool[0].Load(), byPool[1].Load())
	}
	var maxAttempts int
	if err := st.Pool.QueryRow(context.Background(), `SELECT max(attempts) FROM webhook_events`).Scan(&maxAttempts); err != nil {
		t.Fatal(err)
	}
	if maxAttempts != 1 {
		t.Fatalf("max attempts = %d, want 1", maxAttempts)
	}
}

func TestExpiredLeaseIsRescuedAndProcessedOnce(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	ids := insert(t, st, 1, "work")

	// A worker that claims and then dies: its lease expires almost at once.
	dead, err := st.ClaimJobs(ctx, "dead-worker", 10, 50*time.Millisecond)
	if err != nil || len(dead) != 1 {
		t.Fatalf("claim: %v, %d jobs", err, len(dead))
	}

	var calls atomic.Int32
	reg := queue.NewRegistry()
	reg.Register("texting", "work", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		calls.Add(1)
		return nil
	}))
	startRunner(t, st, reg, queue.Config{InstanceID: "live", Workers: 2, PollInterval: 50 * time.Millisecond, RescueInterval: 50 * time.Millisecond})
	waitFor(t, 20*time.Second, "rescued event done", func() bool { return countStatus(t, st, store.StatusDone) == 1 })

	// The dead worker wakes up and tries to record its stale attempt.
	written, err := st.CompleteJobs(ctx, []store.Outcome{{ID: dead[0].ID, LeaseToken: dead[0].LeaseToken, Status: store.StatusError, Error: "stale"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 0 {
		t.Fatal("a stale lease overwrote the rescued attempt's outcome")
	}
	ev, err := st.GetEvent(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || ev.Status != store.StatusDone || ev.Attempts != 2 {
		t.Fatalf("calls=%d status=%s attempts=%d, want 1 call, done, 2 attempts", calls.Load(), ev.Status, ev.Attempts)
	}
}

func TestFailingHandlerBacksOffThenEndsInError(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ids := insert(t, st, 1, "flaky")
	var mu sync.Mutex
	var times []time.Time
	reg := queue.NewRegistry()
	reg.Register("texting", "flaky", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return errors.New("upstream answered 502")
	}))
	base := 100 * time.Millisecond
	startRunner(t, st, reg, queue.Config{InstanceID: "w", Workers: 1, MaxAttempts: 4,
		Backoff: queue.Backoff{Base: base, Max: time.Second}, PollInterval: 20 * time.Millisecond})
	waitFor(t, 20*time.Second, "event in error", func() bool { return countStatus(t, st, store.StatusError) == 1 })

	ev, err := st.GetEvent(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if ev.Attempts != 4 || ev.ErrorMessage != "gave up after 4 attempts: upstream answered 502" || ev.ProcessedAt == nil {
		t.Fatalf("event = attempts %d, error %q, processed_at %v", ev.Attempts, ev.ErrorMessage, ev.ProcessedAt)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 4 {
		t.Fatalf("handler called %d times, want 4", len(times))
	}
	// Attempt k waits at least half of base·2^(k-1) (equal jitter).
	for k := 1; k < len(times); k++ {
		minWait := base * time.Duration(1<<(k-1)) / 2
		if gap := times[k].Sub(times[k-1]); gap < minWait {
			t.Errorf("retry %d came after %s, want at least %s", k, gap, minWait)
		}
	}
}

func TestOutcomeClassification(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	reg := queue.NewRegistry()
	var panicked atomic.Bool
	handlers := map[string]queue.HandlerFunc{
		"ok":        func(context.Context, queue.Job) error { return nil },
		"skip":      func(context.Context, queue.Job) error { return queue.Skip("echo of our own write") },
		"permanent": func(context.Context, queue.Job) error { return queue.Permanent(errors.New("contact rejected: 422")) },
		"panics": func(context.Context, queue.Job) error {
			if panicked.CompareAndSwap(false, true) {
				panic("boom")
			}
			return nil
		},
	}
	for typ, h := range handlers {
		reg.Register("texting", typ, "test", h)
	}
	want := map[string]struct {
		status, errPrefix string
		attempts          int
	}{
		"ok":         {store.StatusDone, "", 1},
		"skip":       {store.StatusSkipped, "echo of our own write", 1},
		"permanent":  {store.StatusError, "permanent failure: contact rejected: 422", 1},
		"panics":     {store.StatusDone, "", 2}, // the panic was retried
		"unregister": {store.StatusSkipped, "no handler registered for texting/unregister", 1},
	}
	idOf := map[string]string{}
	for typ := range want {
		idOf[typ] = insert(t, st, 1, typ)[0]
	}
	startRunner(t, st, reg, queue.Config{InstanceID: "w", Workers: 2, Backoff: queue.Backoff{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}, PollInterval: 20 * time.Millisecond})
	// One query for both statuses: two would miss an event moving from
	// processing back to pending between them.
	waitFor(t, 20*time.Second, "all finished", func() bool {
		var live int
		if err := st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'processing')`).Scan(&live); err != nil {
			t.Fatal(err)
		}
		return live == 0
	})
	for typ, w := range want {
		ev, err := st.GetEvent(context.Background(), idOf[typ])
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status != w.status || ev.Attempts != w.attempts || !strings.HasPrefix(ev.ErrorMessage, w.errPrefix) {
			t.Errorf("%s: status %s attempts %d error %.80q, want %s %d %q", typ, ev.Status, ev.Attempts, ev.ErrorMessage, w.status, w.attempts, w.errPrefix)
		}
	}
}

func TestShutdownLetsInFlightFinishAndHandsBackTheRest(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	insert(t, st, 1, "slow")
	started := make(chan struct{})
	reg := queue.NewRegistry()
	reg.Register("texting", "slow", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		close(started)
		select {
		case <-time.After(300 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	_, stop := startRunner(t, st, reg, queue.Config{InstanceID: "w", Workers: 1, ShutdownTimeout: 5 * time.Second, PollInterval: 20 * time.Millisecond})
	<-started
	stop()
	if got := countStatus(t, st, store.StatusDone); got != 1 {
		t.Fatalf("in-flight event not finished on graceful shutdown: %d done", got)
	}
}

func TestShutdownDeadlineReleasesLease(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ids := insert(t, st, 1, "stuck")
	started := make(chan struct{})
	reg := queue.NewRegistry()
	reg.Register("texting", "stuck", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}))
	_, stop := startRunner(t, st, reg, queue.Config{InstanceID: "w", Workers: 1, ShutdownTimeout: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	<-started
	stop()
	ev, err := st.GetEvent(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	// The interrupted attempt is recorded as a retry, due soon, lease cleared.
	if ev.Status != store.StatusPending || ev.LockedBy != "" {
		t.Fatalf("after shutdown: status %s locked_by %q, want pending and unlocked", ev.Status, ev.LockedBy)
	}
}

func TestOneLeaderAmongReplicas(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	var runners []*queue.Runner
	var stops []func()
	for i := range 3 {
		r, stop := startRunner(t, st, queue.NewRegistry(), queue.Config{InstanceID: fmt.Sprintf("r%d", i), Workers: 0, PollInterval: 50 * time.Millisecond})
		runners = append(runners, r)
		stops = append(stops, stop)
	}
	leaders := func() (n int, idx int) {
		for i, r := range runners {
			if r.IsLeader() {
				n++
				idx = i
			}
		}
		return n, idx
	}
	waitFor(t, 10*time.Second, "a leader", func() bool { n, _ := leaders(); return n == 1 })
	time.Sleep(300 * time.Millisecond)
	n, old := leaders()
	if n != 1 {
		t.Fatalf("%d leaders, want 1", n)
	}
	stops[old]()
	waitFor(t, 10*time.Second, "a new leader", func() bool {
		n, idx := leaders()
		return n == 1 && idx != old
	})
}

// A live worker keeps its leases: a handler that overruns its lease (an
// upstream call that ignores cancellation, a completer behind a busy
// database) is not rescued and run a second time while this worker still
// holds the event, because the runner renews the leases it holds.
func TestLiveWorkerRenewsItsLeasesSoNothingRunsTwice(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ids := insert(t, st, 3, "slow")
	var calls atomic.Int32
	reg := queue.NewRegistry()
	reg.Register("texting", "slow", "test", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		calls.Add(1)
		time.Sleep(600 * time.Millisecond) // two leases long, deaf to ctx
		return nil
	}))
	startRunner(t, st, reg, queue.Config{InstanceID: "live", Workers: 3, Lease: 300 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, RescueInterval: 30 * time.Millisecond})
	// A second replica's rescuer, as eager as it gets.
	stopRescue := make(chan struct{})
	var rescued atomic.Int64
	go func() {
		for {
			select {
			case <-stopRescue:
				return
			case <-time.After(20 * time.Millisecond):
			}
			res, err := st.RescueExpiredLeases(context.Background(), 10)
			if err == nil {
				rescued.Add(int64(res.Requeued + res.Failed))
			}
		}
	}()
	waitFor(t, 20*time.Second, "slow events done", func() bool { return countStatus(t, st, store.StatusDone) == 3 })
	close(stopRescue)
	if n := rescued.Load(); n != 0 {
		t.Errorf("the rescuer took %d leases from a live worker", n)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times for 3 events, want 3", n)
	}
	for _, id := range ids {
		if ev, err := st.GetEvent(context.Background(), id); err != nil || ev.Attempts != 1 {
			t.Errorf("event %s: attempts %d (%v), want 1", id, ev.Attempts, err)
		}
	}
}
