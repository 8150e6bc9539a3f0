// Package health checks the service's dependencies for /health, /readyz
// and the check_health tool.
package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
)

// Dependency states.
const (
	OK            = "ok"
	Degraded      = "degraded"
	Down          = "down"
	NotConfigured = "not_configured"
)

// Check is one dependency's state with its evidence.
type Check struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Message   string  `json:"message,omitempty"`
}

// Report is the body of GET /health: the original service's shape
// (status, timestamp, service) plus per-dependency states and details.
type Report struct {
	Status       string            `json:"status"`
	Timestamp    string            `json:"timestamp"`
	Service      string            `json:"service"`
	Dependencies map[string]string `json:"dependencies"`
	Checks       map[string]Check  `json:"checks"`
}

// Checker is one named dependency check.
type Checker interface {
	Name() string
	Check(ctx context.Context) Check
}

// CheckFunc adapts a function to Checker.
type CheckFunc struct {
	N string
	F func(ctx context.Context) Check
}

// Name returns the dependency name.
func (c CheckFunc) Name() string { return c.N }

// Check runs the function.
func (c CheckFunc) Check(ctx context.Context) Check { return c.F(ctx) }

// Service runs the checks.
type Service struct {
	Checkers []Checker
	Timeout  time.Duration
	Now      func() time.Time
}

// Run checks every dependency concurrently, each within Timeout. The overall
// status is down when the database is down (the service cannot accept work),
// degraded when anything else is degraded or down, else ok.
func (s *Service) Run(ctx context.Context) Report {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	rep := Report{Service: "df-middleware", Timestamp: now().UTC().Format(time.RFC3339Nano),
		Dependencies: map[string]string{}, Checks: map[string]Check{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.Checkers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			res := c.Check(cctx)
			mu.Lock()
			rep.Dependencies[c.Name()] = res.Status
			rep.Checks[c.Name()] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.Status = OK
	for name, st := range rep.Dependencies {
		switch {
		case name == "database" && st == Down:
			rep.Status = Down
		case (st == Down || st == Degraded) && rep.Status == OK:
			rep.Status = Degraded
		}
	}
	return rep
}

// Database pings PostgreSQL.
func Database(st *store.Store) Checker {
	return CheckFunc{N: "database", F: func(ctx context.Context) Check {
		start := time.Now()
		err := st.Ping(ctx)
		c := Check{Status: OK, LatencyMS: ms(time.Since(start))}
		if err != nil {
			c.Status, c.Message = Down, "database unreachable: "+err.Error()
		}
		return c
	}}
}

// QueueOptions tunes the job_queue check.
type QueueOptions struct {
	WorkersRunning func() bool
	MaxDueAge      time.Duration // oldest due event older than this: degraded
	MaxDepth       int64         // more due events than this: degraded
}

// JobQueue reports the queue degraded when due work waits too long, grows
// too deep, or leases expire unrescued.
func JobQueue(st *store.Store, o QueueOptions) Checker {
	if o.MaxDueAge <= 0 {
		o.MaxDueAge = 10 * time.Minute
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = 1000
	}
	return CheckFunc{N: "job_queue", F: func(ctx context.Context) Check {
		start := time.Now()
		qs, err := st.QueueStats(ctx)
		c := Check{Status: OK, LatencyMS: ms(time.Since(start))}
		if err != nil {
			c.Status, c.Message = Down, "queue unreadable: "+err.Error()
			return c
		}
		workers := "workers running"
		if o.WorkersRunning != nil && !o.WorkersRunning() {
			workers = "no workers in this process (DF_WORKERS=0 or stopping)"
		}
		c.Message = fmt.Sprintf("%d due, %d processing, %d error; oldest due %.0fs; %s",
			qs.DuePending, qs.ByStatus[store.StatusProcessing], qs.ByStatus[store.StatusError], qs.OldestDueAgeSeconds, workers)
		if qs.OldestDueAgeSeconds > o.MaxDueAge.Seconds() || qs.DuePending > o.MaxDepth || qs.ExpiredLeases > 0 {
			c.Status = Degraded
		}
		return c
	}}
}

// Static reports a fixed state, for upstreams whose clients are not wired yet.
func Static(name, status, message string) Checker {
	return CheckFunc{N: name, F: func(context.Context) Check { return Check{Status: status, Message: message} }}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
