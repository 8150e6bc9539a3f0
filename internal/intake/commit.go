package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

// maxBatch bounds one group commit. Larger batches stopped helping in
// measurements on this kind of machine; see DESIGN.md "Performance facts".
const maxBatch = 64

// ErrStopped is returned by Submit after the committer has stopped.
var ErrStopped = errors.New("intake committer stopped")

type submission struct {
	ev   store.NewEvent
	done chan commitResult
}

type commitResult struct {
	res store.InsertResult
	err error
}

// Committer stores accepted deliveries with group commit: one goroutine
// takes every submission queued while the previous batch was committing and
// writes them in one transaction. Each caller is answered only after the
// transaction holding its row has committed, so a 2xx still means "durable"
// while one WAL flush serves many requests.
type Committer struct {
	st      *store.Store
	queue   chan submission
	stop    chan struct{}
	stopped chan struct{}
	timeout time.Duration
	// OnQuery, when set, times each batch insert (query "insert_events");
	// set it before Run.
	OnQuery func(query string, d time.Duration, err error)
}

// NewCommitter returns a committer; call Run to start its flusher.
func NewCommitter(st *store.Store) *Committer {
	return &Committer{
		st:      st,
		queue:   make(chan submission, 4*maxBatch),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		timeout: 10 * time.Second,
	}
}

// Submit queues one event and waits until it is durable or failed.
func (c *Committer) Submit(ctx context.Context, ev store.NewEvent) (store.InsertResult, error) {
	s := submission{ev: ev, done: make(chan commitResult, 1)}
	select {
	case c.queue <- s:
	case <-c.stopped:
		return store.InsertResult{}, ErrStopped
	case <-ctx.Done():
		return store.InsertResult{}, ctx.Err()
	}
	select {
	case r := <-s.done:
		return r.res, r.err
	case <-ctx.Done():
		// The row may still commit; a retried delivery then finds it as a
		// duplicate, so nothing is lost or doubled.
		return store.InsertResult{}, ctx.Err()
	}
}

// Run flushes batches until Stop is called, then flushes what is queued.
func (c *Committer) Run() {
	defer close(c.stopped)
	batch := make([]submission, 0, maxBatch)
	for {
		var first submission
		select {
		case first = <-c.queue:
		case <-c.stop:
			// Answer whatever was queued before stopping.
			for {
				select {
				case s := <-c.queue:
					c.flush([]submission{s})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case s := <-c.queue:
				batch = append(batch, s)
			default:
				break fill
			}
		}
		c.flush(batch)
	}
}

// Stop ends Run after it has answered every queued submission.
func (c *Committer) Stop() {
	close(c.stop)
	<-c.stopped
}

func (c *Committer) flush(batch []submission) {
	evs := make([]store.NewEvent, len(batch))
	for i, s := range batch {
		evs[i] = s.ev
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	res, err := c.st.InsertEvents(ctx, evs)
	if c.OnQuery != nil {
		c.OnQuery("insert_events", time.Since(start), err)
	}
	for i, s := range batch {
		if err != nil {
			s.done <- commitResult{err: fmt.Errorf("store event: %w", err)}
			continue
		}
		if res[i].Err != nil {
			s.done <- commitResult{err: fmt.Errorf("store event: %w", res[i].Err)}
			continue
		}
		s.done <- commitResult{res: res[i]}
	}
}
