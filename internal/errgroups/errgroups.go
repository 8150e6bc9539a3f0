// Package errgroups records failures into error_groups: each error is
// fingerprinted (type chain plus a message with ids, numbers and hex
// normalised away) so that one kind of failure is one row with a count,
// first and last seen, a sample and the last event it hit.
package errgroups

import (
	"context"
	gosync "sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
)

// Recorder writes error groups. A nil *Recorder records nothing.
type Recorder struct {
	st      *store.Store
	log     zerolog.Logger
	redact  func(string) string // applied to every sample before it leaves Record/Add
	forward Forwarder           // nil: error_groups only

	mu      gosync.Mutex
	pending map[string]*entry // fingerprint → occurrences since the last flush
}

type entry struct {
	g       observe.ErrorGroup
	sample  string
	eventID string
	n       int64
}

// maxPending bounds the groups held between flushes; past it new groups
// are dropped (and logged) rather than growing memory in a failure storm.
const maxPending = 1000

// Forwarder receives every group written (once per Record call, once per
// group per flush for Add) with its redacted sample and the number of
// occurrences it stands for — e.g. Sentry.
type Forwarder interface {
	Forward(g observe.ErrorGroup, sample, eventID string, count int64)
	// Close sends what is buffered, waiting at most timeout.
	Close(timeout time.Duration)
}

// Option configures a Recorder.
type Option func(*Recorder)

// WithRedact scrubs every sample (stored and forwarded) with f: the same
// secret redaction and PII masking as the log writer (observe.NewRedactor).
func WithRedact(f func(string) string) Option {
	return func(r *Recorder) {
		if f != nil {
			r.redact = f
		}
	}
}

// WithForwarder also sends each group written to f.
func WithForwarder(f Forwarder) Option {
	return func(r *Recorder) { r.forward = f }
}

// New returns a recorder over st.
func New(st *store.Store, log zerolog.Logger, opts ...Option) *Recorder {
	r := &Recorder{st: st, log: log, redact: observe.MaskPII, pending: map[string]*entry{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Close flushes the forwarder (Sentry's buffer), waiting at most timeout.
// Call it after the last Flush; groups recorded later are still stored.
func (r *Recorder) Close(timeout time.Duration) {
	if r == nil || r.forward == nil {
		return
	}
	r.forward.Close(timeout)
}

// Record counts err in its group now. It never fails its caller: recording
// is best effort, bounded in time, and a failure to record is logged.
func (r *Recorder) Record(ctx context.Context, component string, err error, eventID string) observe.ErrorGroup {
	if r == nil || err == nil {
		return observe.ErrorGroup{}
	}
	g := observe.FingerprintScrubbed(component, err, r.redact)
	r.write(ctx, &entry{g: g, sample: r.redact(err.Error()), eventID: eventID, n: 1})
	return g
}

// Add counts err in its group at the next flush: hot paths (the queue's
// completer, upstream calls) must not wait on a database write, and a
// failure storm of one kind becomes one upsert a second, not thousands.
func (r *Recorder) Add(component string, err error, eventID string) {
	if r == nil || err == nil {
		return
	}
	g := observe.FingerprintScrubbed(component, err, r.redact)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.pending[g.Fingerprint]
	if !ok {
		if len(r.pending) >= maxPending {
			return
		}
		e = &entry{g: g}
		r.pending[g.Fingerprint] = e
	}
	e.n++
	e.sample = err.Error() // redacted once, at flush
	if eventID != "" {
		e.eventID = eventID
	}
}

// Run flushes what Add collected every interval until ctx ends, then once more.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.Flush(ctx)
		case <-ctx.Done():
			r.Flush(context.WithoutCancel(ctx))
			return
		}
	}
}

// Flush writes the collected groups.
func (r *Recorder) Flush(ctx context.Context) {
	if r == nil {
		return
	}
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[string]*entry, len(batch))
	r.mu.Unlock()
	for _, e := range batch {
		e.sample = r.redact(e.sample)
		r.write(ctx, e)
	}
}

func (r *Recorder) write(ctx context.Context, e *entry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := r.st.RecordError(ctx, e.g.Fingerprint, e.g.Component, e.g.Class, e.sample, e.eventID, e.n); err != nil {
		r.log.Warn().Err(err).Str("fingerprint", e.g.Fingerprint).Msg("could not record error group")
	}
	if r.forward != nil {
		r.forward.Forward(e.g, e.sample, e.eventID, e.n)
	}
}
