package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/df-middleware/df-middleware/internal/store"
)

// Config tunes a Runner. Zero fields take the defaults of withDefaults.
type Config struct {
	InstanceID      string        // locked_by of this process's leases
	Workers         int           // handlers running at once; 0 runs no worker
	BatchSize       int           // most rows one claim takes
	Lease           time.Duration // how long a claim is ours
	PollInterval    time.Duration // fallback when no NOTIFY arrives
	MaxAttempts     int           // attempts before an event ends in error
	Backoff         Backoff       // wait between attempts
	HandlerTimeout  time.Duration // one handler call; below Lease so a slow call cannot outlive its lease
	ShutdownTimeout time.Duration // how long in-flight handlers may finish on shutdown
	RescueInterval  time.Duration // how often the leader returns expired leases
}

func (c Config) withDefaults() Config {
	if c.InstanceID == "" {
		c.InstanceID = "df-middleware"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 32
	}
	if c.Lease <= 0 {
		c.Lease = 5 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Backoff.Base <= 0 {
		c.Backoff.Base = 2 * time.Second
	}
	if c.Backoff.Max <= 0 {
		c.Backoff.Max = 30 * time.Minute
	}
	if c.HandlerTimeout <= 0 || c.HandlerTimeout >= c.Lease {
		c.HandlerTimeout = c.Lease / 2
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.RescueInterval <= 0 {
		c.RescueInterval = min(c.Lease/4, 15*time.Second)
	}
	return c
}

// Duty is periodic work that only the leader replica does.
type Duty struct {
	Name     string
	Interval time.Duration
	Run      func(ctx context.Context) error
}

// Runner is the worker pool of one process.
type Runner struct {
	st  *store.Store
	reg *Registry
	cfg Config
	log zerolog.Logger

	wake      chan struct{} // new work may be due
	slotFreed chan struct{} // a claimed job finished
	available atomic.Int64  // jobs we may still claim: Workers + BatchSize - claimed-but-unfinished
	leader    atomic.Bool
	duties    []Duty
	running   atomic.Bool

	heldMu sync.Mutex
	held   map[string]heldLease // every claimed, not yet recorded job

	// listening is signalled when the LISTEN session (re)connects: the
	// database answers again.
	listening chan struct{}

	// OnFinished, when set, is called after an outcome is committed (tests
	// and metrics hook in here).
	OnFinished func(store.Outcome, Job)
	// OnExecuted, when set, is called after a handler ran, with the outcome
	// it led to and how long it took (metrics hook in here).
	OnExecuted func(job Job, out store.Outcome, d time.Duration)
	// OnQuery, when set, times the claim and completion statements; query is
	// "claim_jobs" or "complete_jobs". Set these hooks before Run.
	OnQuery func(query string, d time.Duration, err error)
}

// New builds a Runner; call Run to start it.
func New(st *store.Store, reg *Registry, cfg Config, log zerolog.Logger) *Runner {
	r := &Runner{
		st: st, reg: reg, cfg: cfg.withDefaults(), log: log,
		wake:      make(chan struct{}, 1),
		slotFreed: make(chan struct{}, 1),
		held:      map[string]heldLease{},
		listening: make(chan struct{}, 1),
	}
	r.AddDuty(Duty{Name: "rescue-expired-leases", Interval: r.cfg.RescueInterval, Run: r.rescue})
	return r
}

// Config returns the effective configuration.
func (r *Runner) Config() Config { return r.cfg }

// AddDuty registers periodic leader work; call before Run.
func (r *Runner) AddDuty(d Duty) { r.duties = append(r.duties, d) }

// Wake tells idle workers that new work may be due.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// IsLeader reports whether this process holds the leader lock.
func (r *Runner) IsLeader() bool { return r.leader.Load() }

// Running reports whether the worker pool is running (false when Workers is 0).
func (r *Runner) Running() bool { return r.running.Load() }

// Run processes events until ctx is cancelled, then lets in-flight handlers
// finish within ShutdownTimeout, writes their outcomes and hands back any
// lease still held.
func (r *Runner) Run(ctx context.Context) error {
	var bg sync.WaitGroup
	bg.Go(func() { r.lead(ctx) })
	if r.cfg.Workers > 0 {
		bg.Go(func() { r.listen(ctx) })
		r.runWorkers(ctx)
	} else {
		<-ctx.Done()
	}
	bg.Wait()
	return nil
}

func (r *Runner) runWorkers(ctx context.Context) {
	r.running.Store(true)
	defer r.running.Store(false)

	// Handlers get a context that outlives ctx by ShutdownTimeout, so a
	// SIGTERM lets the current calls finish instead of cutting them off.
	handlerCtx, cancelHandlers := afterDone(ctx, r.cfg.ShutdownTimeout)
	defer cancelHandlers()
	// Outcomes get a little longer than handlers, to be written after the
	// last handler returns.
	commitCtx, cancelCommits := afterDone(ctx, r.cfg.ShutdownTimeout+10*time.Second)
	defer cancelCommits()

	// Claims run ahead of the executors by up to one batch, so a claim moves
	// many rows per transaction instead of one per idle worker, and the
	// executors never wait for a claim while there is a backlog.
	slots := r.cfg.Workers + r.cfg.BatchSize
	jobs := make(chan claimedJob, slots)
	outcomes := make(chan finished, slots)
	r.available.Store(int64(slots))

	var execs sync.WaitGroup
	for range r.cfg.Workers {
		execs.Go(func() {
			for cj := range jobs {
				if ctx.Err() != nil {
					// Shutting down: leave prefetched jobs unstarted; their
					// leases are handed back below.
					continue
				}
				out, sc := r.executeTraced(handlerCtx, cj)
				outcomes <- finished{out, cj.Job, sc}
				r.available.Add(1)
				select {
				case r.slotFreed <- struct{}{}:
				default:
				}
			}
		})
	}
	var completer sync.WaitGroup
	completer.Go(func() { r.complete(commitCtx, outcomes) })
	heartbeatCtx, stopHeartbeat := context.WithCancel(commitCtx)
	var heartbeat sync.WaitGroup
	heartbeat.Go(func() { r.renewLeases(heartbeatCtx) })

	r.dispatch(ctx, jobs)
	close(jobs)
	execs.Wait()
	close(outcomes)
	completer.Wait()
	stopHeartbeat()
	heartbeat.Wait()

	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if n, err := r.st.ReleaseLeases(releaseCtx, r.cfg.InstanceID); err != nil {
		r.log.Error().Err(err).Msg("could not hand back leases on shutdown; the leader will rescue them when they expire")
	} else if n > 0 {
		r.log.Info().Int64("released", n).Msg("handed back unfinished leases")
	}
}

// dispatch claims due events in batches and queues them for the executors,
// until ctx ends. It claims once at least half a batch of room is free (or
// everything is), so claims stay large under load and immediate when idle.
func (r *Runner) dispatch(ctx context.Context, jobs chan<- claimedJob) {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	failures := 0
	threshold := max(1, r.cfg.BatchSize/2)
	for ctx.Err() == nil {
		free := int(r.available.Load())
		if free < threshold {
			select {
			case <-r.slotFreed:
			case <-ctx.Done():
			}
			continue
		}
		want := min(free, r.cfg.BatchSize)
		claimStart := time.Now()
		claimed, err := r.st.ClaimJobs(ctx, r.cfg.InstanceID, want, r.cfg.Lease)
		if r.OnQuery != nil {
			r.OnQuery("claim_jobs", time.Since(claimStart), err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := min(time.Duration(failures)*time.Second, 10*time.Second)
			r.log.Error().Err(err).Dur("retry_in", wait).Msg("claim failed")
			// The LISTEN session's reconnection cuts the wait short: after a
			// database outage processing resumes with intake, not a backoff
			// later. (Ordinary wake-ups do not: NOTIFYs from other
			// replicas would turn the backoff into a busy loop.)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.listening:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		failures = 0
		r.hold(claimed)
		r.available.Add(-int64(len(claimed)))
		// The lease runs from the claim; executors measure what is left of it.
		leaseEnd := time.Now().Add(r.cfg.Lease * 9 / 10)
		for _, j := range claimed {
			jobs <- claimedJob{Job: j, leaseEnd: leaseEnd}
		}
		if len(claimed) == want {
			continue // more may be due right now
		}
		select {
		case <-r.wake:
		case <-poll.C:
		case <-ctx.Done():
		}
	}
}

// claimedJob is a job with the local time by which it must be finished, a
// margin inside its lease so the rescuer never hands it to another worker
// while this one still runs it.
type claimedJob struct {
	Job
	leaseEnd time.Time
}

type finished struct {
	out store.Outcome
	job Job
	sc  trace.SpanContext // the job span, for the log line written after it ended
}

// maxErrorLen bounds the error text stored on an event.
const maxErrorLen = 2000

// tracerName is the instrumentation scope of the service's spans (as
// observe.TracerName; queue does not import observe).
const tracerName = "github.com/df-middleware/df-middleware"

// executeTraced runs execute inside the job's span: a new root span (a job
// runs long after, and apart from, the request that stored it) with a link
// to the intake request's span, whose context intake stored on the event.
// The handler's context carries the span, so upstream and database calls
// nest under it.
func (r *Runner) executeTraced(ctx context.Context, cj claimedJob) (store.Outcome, trace.SpanContext) {
	tracer := otel.GetTracerProvider().Tracer(tracerName)
	name := "job " + cj.Source + "/" + cj.EventType
	if _, sdk := otel.GetTracerProvider().(*sdktrace.TracerProvider); !sdk {
		// Tracing off: the no-op tracer, and no attributes built for it.
		ctx, span := tracer.Start(ctx, name, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer))
		defer span.End()
		return r.execute(ctx, cj), span.SpanContext()
	}
	// Attributes and the link go in at the start, in one slice each: a
	// recording span's later SetAttributes and AddLink calls cost more (they
	// lock and deduplicate), and this runs for every job.
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("df.event.id", cj.ID),
			attribute.String("df.event.source", cj.Source),
			attribute.String("df.event.type", cj.EventType),
			attribute.Int("df.job.attempt", cj.Attempts),
		)}
	if cj.TraceParent != "" {
		link := propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": cj.TraceParent, "tracestate": cj.TraceState})
		if sc := trace.SpanContextFromContext(link); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("link.kind", "intake")}}))
		}
	}
	ctx, span := tracer.Start(ctx, name, opts...)
	defer span.End()
	out := r.execute(ctx, cj)
	span.SetAttributes(attribute.String("df.job.outcome", out.Status))
	if out.Status == store.StatusError || out.Status == store.StatusPending {
		span.SetStatus(codes.Error, out.Error)
	}
	return out, span.SpanContext()
}

// execute runs the handler of one job and turns its result into an outcome.
func (r *Runner) execute(ctx context.Context, cj claimedJob) store.Outcome {
	job := cj.Job
	out := store.Outcome{ID: job.ID, LeaseToken: job.LeaseToken}
	left := time.Until(cj.leaseEnd)
	if left < min(time.Second, r.cfg.Lease/10) {
		// It waited in the prefetch queue for most of its lease (slow
		// handlers, few workers): starting now could overlap a rescue.
		out.Status = store.StatusPending
		out.Error = "lease nearly expired before the job started; returned to the queue"
		return out
	}
	h, ok := r.reg.Lookup(job.Source, job.EventType)
	if !ok {
		out.Status = store.StatusSkipped
		out.Error = fmt.Sprintf("no handler registered for %s/%s", job.Source, job.EventType)
		return out
	}
	hctx, cancel := context.WithTimeout(ctx, min(r.cfg.HandlerTimeout, left))
	started := time.Now()
	err := callHandler(hctx, h, job)
	ran := time.Since(started)
	cancel()
	if r.OnExecuted != nil {
		defer func() { r.OnExecuted(job, out, ran) }()
	}

	var skip *skipError
	var after *retryAfterError
	switch {
	case err == nil:
		out.Status = store.StatusDone
	case errors.As(err, &skip):
		out.Status = store.StatusSkipped
		out.Error = truncate(skip.reason)
	case IsPermanent(err):
		out.Status = store.StatusError
		out.Error = truncate("permanent failure: " + err.Error())
	case job.Attempts >= r.cfg.MaxAttempts:
		out.Status = store.StatusError
		out.Error = truncate(fmt.Sprintf("gave up after %d attempts: %v", job.Attempts, err))
	default:
		out.Status = store.StatusPending
		out.Error = truncate(fmt.Sprintf("attempt %d failed: %v", job.Attempts, err))
		out.RetryIn = r.cfg.Backoff.Delay(job.Attempts)
		if errors.As(err, &after) && after.after > out.RetryIn {
			// An upstream's Retry-After is honoured, but never beyond the
			// longest backoff: a day-long hint must not park events for a day.
			out.RetryIn = min(after.after, r.cfg.Backoff.Max)
		}
	}
	return out
}

// callHandler turns a handler panic into a retryable error so one bad event
// cannot take the worker pool down.
func callHandler(ctx context.Context, h Handler, job Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h.Handle(ctx, job)
}

// truncate bounds an error for storage. PostgreSQL text refuses invalid
// UTF-8 and NUL bytes, and one refused row would fail the whole completion
// batch, so both are cleaned and the cut falls on a character boundary.
func truncate(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// complete writes outcomes in batches: whatever has queued up while the
// previous batch committed goes into the next one statement.
func (r *Runner) complete(ctx context.Context, outcomes <-chan finished) {
	batch := make([]finished, 0, 128)
	for first := range outcomes {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < cap(batch) {
			select {
			case f, ok := <-outcomes:
				if !ok {
					break fill
				}
				batch = append(batch, f)
			default:
				break fill
			}
		}
		r.commit(ctx, batch)
	}
}

func (r *Runner) commit(ctx context.Context, batch []finished) {
	outs := make([]store.Outcome, len(batch))
	for i, f := range batch {
		outs[i] = f.out
	}
	var written []string
	for attempt := 1; ; attempt++ {
		var err error
		completeStart := time.Now()
		written, err = r.st.CompleteJobs(ctx, outs)
		if r.OnQuery != nil {
			r.OnQuery("complete_jobs", time.Since(completeStart), err)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			r.log.Error().Err(err).Int("events", len(outs)).Msg("could not record outcomes before shutdown; their leases will expire and the events run again")
			r.unhold(outs)
			return
		}
		wait := min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)
		r.log.Error().Err(err).Int("events", len(outs)).Dur("retry_in", wait).Msg("recording outcomes failed")
		sleep(ctx, wait)
	}
	r.unhold(outs)
	ok := make(map[string]bool, len(written))
	for _, id := range written {
		ok[id] = true
	}
	for _, f := range batch {
		if !ok[f.out.ID] {
			r.log.Warn().Str("event_id", f.out.ID).Msg("lease lost before the outcome was recorded; another attempt owns the event")
			continue
		}
		ev := r.log.Debug()
		if f.out.Status == store.StatusError {
			ev = r.log.Warn()
		}
		if f.sc.IsValid() {
			ev = ev.Ctx(trace.ContextWithSpanContext(context.Background(), f.sc))
		}
		ev.Str("event_id", f.out.ID).Str("source", f.job.Source).Str("event_type", f.job.EventType).
			Str("status", f.out.Status).Int("attempt", f.job.Attempts).Str("error", f.out.Error).
			Msg("event finished")
		if r.OnFinished != nil {
			r.OnFinished(f.out, f.job)
		}
	}
}

// hold records claimed jobs until their outcomes are recorded, so that
// renewLeases keeps their leases alive.
func (r *Runner) hold(jobs []Job) {
	// Renewal stops once a job could no longer be legitimately running: a
	// full lease of waiting in the prefetch queue, the handler's timeout,
	// and a lease more for recording the outcome. A handler that ignores its
	// context past that loses the event to the rescuer, as before renewal.
	until := time.Now().Add(2*r.cfg.Lease + r.cfg.HandlerTimeout)
	r.heldMu.Lock()
	for _, j := range jobs {
		r.held[j.ID] = heldLease{token: j.LeaseToken, until: until}
	}
	r.heldMu.Unlock()
}

// heldLease is a claimed job's lease token and the time after which its
// lease is no longer renewed.
type heldLease struct {
	token string
	until time.Time
}

func (r *Runner) unhold(outs []store.Outcome) {
	r.heldMu.Lock()
	for _, o := range outs {
		delete(r.held, o.ID)
	}
	r.heldMu.Unlock()
}

// renewLeases extends the leases of every job this process holds, every
// third of a lease, until ctx ends. A live worker therefore never loses a
// lease to the rescuer while it runs a job or waits to record its outcome
// (a slow handler near its deadline, a completer behind a busy database);
// only a process that stopped renewing — dead, or cut off from the
// database — sees its jobs rescued, one lease after its last renewal.
func (r *Runner) renewLeases(ctx context.Context) {
	tick := time.NewTicker(max(r.cfg.Lease/3, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		now := time.Now()
		r.heldMu.Lock()
		ids := make([]string, 0, len(r.held))
		tokens := make([]string, 0, len(r.held))
		for id, h := range r.held {
			if now.Before(h.until) {
				ids = append(ids, id)
				tokens = append(tokens, h.token)
			}
		}
		r.heldMu.Unlock()
		if len(ids) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, r.cfg.Lease/3)
		n, err := r.st.ExtendLeases(rctx, ids, tokens, r.cfg.Lease)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn().Err(err).Int("held", len(ids)).Msg("could not renew leases; they expire unless the next renewal succeeds")
		case err == nil && int(n) < len(ids):
			r.log.Debug().Int("held", len(ids)).Int64("renewed", n).Msg("some leases were recorded or rescued before renewal")
		}
	}
}

func (r *Runner) rescue(ctx context.Context) error {
	res, err := r.st.RescueExpiredLeases(ctx, r.cfg.MaxAttempts)
	if err != nil {
		return err
	}
	if res.Requeued+res.Failed > 0 {
		r.log.Warn().Int64("requeued", res.Requeued).Int64("failed", res.Failed).Msg("rescued expired leases")
		r.Wake()
	}
	return nil
}

// afterDone returns a context that ends grace after ctx ends (or when the
// returned cancel is called).
func afterDone(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
		case <-c.Done():
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-c.Done():
		}
	}()
	return c, cancel
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ProcessReport is what ProcessPending did and the queue it left.
type ProcessReport struct {
	Rescued        store.RescueResult `json:"rescued"`
	MadeDue        int64              `json:"made_due"`
	Queue          store.QueueStats   `json:"queue"`
	WorkersRunning bool               `json:"workers_running"`
	Leader         bool               `json:"leader"`
}

// ProcessPending is the operator's "process the queue now": it returns
// expired leases to the queue, optionally makes waiting retries due at once,
// and wakes the workers of every replica.
func (r *Runner) ProcessPending(ctx context.Context, dueNow bool) (ProcessReport, error) {
	var rep ProcessReport
	var err error
	if rep.Rescued, err = r.st.RescueExpiredLeases(ctx, r.cfg.MaxAttempts); err != nil {
		return rep, err
	}
	if dueNow {
		if rep.MadeDue, err = r.st.MakeDue(ctx); err != nil {
			return rep, err
		}
	}
	if err := r.st.Notify(ctx); err != nil {
		return rep, err
	}
	r.Wake()
	if rep.Queue, err = r.st.QueueStats(ctx); err != nil {
		return rep, err
	}
	rep.WorkersRunning = r.Running()
	rep.Leader = r.IsLeader()
	return rep, nil
}
