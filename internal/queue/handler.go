// Package queue runs the work queue over webhook_events: it claims due
// events in batches under a lease, runs the handler registered for each
// (source, event type), and finishes each event with a status update that is
// guarded by the lease. Retries back off exponentially with jitter; a leader
// chosen with an advisory lock rescues expired leases.
package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

// Job is the claimed event a handler works on.
type Job = store.Job

// Handler processes one event. It returns nil when the work is done, an
// error made with Skip when there is nothing to do, one made with Permanent
// when retrying cannot help, and any other error to be retried with backoff.
type Handler interface {
	Handle(ctx context.Context, job Job) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job Job) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, job Job) error { return f(ctx, job) }

// Key names the events a handler takes.
type Key struct {
	Source    string `json:"source"`
	EventType string `json:"event_type"`
}

func (k Key) String() string { return k.Source + "/" + k.EventType }

// Registration is one entry of the registry, with a description for docs and
// tools.
type Registration struct {
	Key         Key
	Description string
	Handler     Handler
}

// Registry maps (source, event type) to handlers. The worker, the docs and
// the MCP tools all read this one table.
type Registry struct {
	mu          sync.RWMutex
	handlers    map[Key]Registration
	normalizers map[string]func(string) string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handlers: map[Key]Registration{}, normalizers: map[string]func(string) string{}}
}

// SetNormalizer makes registrations and lookups of one source compare event
// types through f — for providers whose event names vary in spelling
// ("Contact Created", "Contact-Created"). Set it before registering.
func (r *Registry) SetNormalizer(source string, f func(string) string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.normalizers[source] = f
}

func (r *Registry) key(source, eventType string) Key {
	if f := r.normalizers[source]; f != nil {
		eventType = f(eventType)
	}
	return Key{source, eventType}
}

// Register adds a handler; registering a key twice is a programming error.
func (r *Registry) Register(source, eventType, description string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.key(source, eventType)
	if _, dup := r.handlers[k]; dup {
		panic(fmt.Sprintf("queue: handler for %s registered twice", k))
	}
	r.handlers[k] = Registration{Key: k, Description: description, Handler: h}
}

// Lookup returns the handler for a key.
func (r *Registry) Lookup(source, eventType string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.handlers[r.key(source, eventType)]
	return reg.Handler, ok
}

// List returns every registration sorted by key.
func (r *Registry) List() []Registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Registration, 0, len(r.handlers))
	for _, reg := range r.handlers {
		out = append(out, reg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

// Skip marks an event as having nothing to do (an echo, an unsupported
// variant); it ends `skipped` with the reason recorded.
func Skip(reason string) error { return &skipError{reason} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks a failure that retrying cannot fix; the event ends `error`
// at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks a retryable failure that must not be retried sooner than
// after (an upstream's Retry-After).
func RetryAfter(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err, after}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// IsSkip reports whether err was made with Skip.
func IsSkip(err error) bool {
	var s *skipError
	return errors.As(err, &s)
}
