// Package errgroups records failures into error_groups: each error is
// fingerprinted (type chain plus a message with ids, numbers and hex
// normalised away) so that one kind of failure is one row with a count,
// first and last seen, a sample and the last event it hit.
package errgroups

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
)

// Recorder writes error groups. A nil *Recorder records nothing.
type Recorder struct {
	st  *store.Store
	log zerolog.Logger
}

// New returns a recorder over st.
func New(st *store.Store, log zerolog.Logger) *Recorder {
	return &Recorder{st: st, log: log}
}

// Record counts err in its group. It never fails its caller: recording is
// best effort, bounded in time, and a failure to record is logged.
func (r *Recorder) Record(ctx context.Context, component string, err error, eventID string) observe.ErrorGroup {
	if r == nil || err == nil {
		return observe.ErrorGroup{}
	}
	g := observe.Fingerprint(component, err)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if rerr := r.st.RecordError(ctx, g.Fingerprint, component, g.Class, err.Error(), eventID); rerr != nil {
		r.log.Warn().Err(rerr).Str("fingerprint", g.Fingerprint).Msg("could not record error group")
	}
	return g
}
