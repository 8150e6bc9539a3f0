package errgroups

import (
	"fmt"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/df-middleware/df-middleware/internal/observe"
)

// Sentry forwards error groups to Sentry with the error_groups fingerprint,
// so Sentry's issues and the error_groups rows are the same groups. It uses
// a client of its own, never sentry-go's global hub.
type Sentry struct {
	client *sentry.Client
	once   sync.Once
	mu     sync.RWMutex
	closed bool
}

// SentryOptions are the client settings beside the DSN.
type SentryOptions struct {
	Environment string // DF_ENV
	Release     string // the build version
	ServerName  string // e.g. the instance id; the host name when empty
}

// NewSentry returns a forwarder for dsn.
func NewSentry(dsn string, o SentryOptions) (*Sentry, error) {
	c, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         dsn,
		Environment: o.Environment,
		Release:     o.Release,
		ServerName:  o.ServerName,
		// Events are built here from redacted text; nothing about
		// requests or users is attached.
		SendDefaultPII: false,
	})
	if err != nil {
		return nil, fmt.Errorf("SENTRY_DSN: %w", err)
	}
	return &Sentry{client: c}, nil
}

// Forward sends one event for the group: fingerprint as in error_groups,
// component and class as tags, the redacted sample as message, and how
// many occurrences it stands for.
func (s *Sentry) Forward(g observe.ErrorGroup, sample, eventID string, count int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelError
	ev.Logger = observe.ServiceName
	ev.Message = sample
	ev.Fingerprint = []string{g.Fingerprint}
	ev.Exception = []sentry.Exception{{Type: g.Class, Value: sample}}
	ev.Tags = map[string]string{"component": g.Component, "error_class": g.Class}
	grp := sentry.Context{"fingerprint": g.Fingerprint, "count": count, "normalized_message": g.Message}
	if eventID != "" {
		grp["event_id"] = eventID
	}
	ev.Contexts = map[string]sentry.Context{"error_group": grp}
	s.client.CaptureEvent(ev, nil, nil)
}

// Close sends buffered events (waiting at most timeout) and stops the
// client; later Forward calls do nothing. Safe to call more than once.
func (s *Sentry) Close(timeout time.Duration) {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.client.Flush(timeout)
		s.client.Close()
	})
}
