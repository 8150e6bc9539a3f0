package queue

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/df-middleware/df-middleware/internal/store"
)

// leaderLockKey is the advisory lock that elects the replica doing periodic
// duties. Held on a dedicated session: if that session dies, PostgreSQL
// releases the lock and another replica takes over.
const leaderLockKey int64 = 0x64666d6c656164 // "dfmlead"

// lead competes for the leader lock and, while holding it, runs the duties.
func (r *Runner) lead(ctx context.Context) {
	for ctx.Err() == nil {
		conn, err := r.st.Connect(ctx)
		if err != nil {
			r.log.Warn().Err(err).Msg("leader election: cannot connect; retrying")
			sleep(ctx, 5*time.Second)
			continue
		}
		r.holdOrWait(ctx, conn)
		r.leader.Store(false)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(closeCtx) // closing the session releases the lock
		cancel()
	}
}

// holdOrWait tries the lock every poll; once held it runs the duties until
// the session fails or ctx ends.
func (r *Runner) holdOrWait(ctx context.Context, conn *pgx.Conn) {
	retry := time.NewTicker(max(r.cfg.PollInterval, time.Second))
	defer retry.Stop()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLockKey).Scan(&got); err != nil {
			if ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("leader election: lock query failed")
			}
			return
		}
		if got {
			r.leader.Store(true)
			r.log.Info().Str("instance", r.cfg.InstanceID).Msg("became leader")
			r.runDuties(ctx, conn)
			r.log.Info().Str("instance", r.cfg.InstanceID).Msg("stepped down as leader")
			return
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Runner) runDuties(ctx context.Context, conn *pgx.Conn) {
	next := make([]time.Time, len(r.duties))
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		// A leader whose lock session is gone must stop at once: another
		// replica may already hold the lock.
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.Ping(pingCtx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("leader session lost")
			}
			return
		}
		now := time.Now()
		for i, d := range r.duties {
			if now.Before(next[i]) {
				continue
			}
			next[i] = now.Add(d.Interval)
			if err := d.Run(ctx); err != nil && ctx.Err() == nil {
				r.log.Error().Err(err).Str("duty", d.Name).Msg("leader duty failed")
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// listen wakes the dispatcher on every NOTIFY of a committed event; the
// poll in dispatch covers the time the listening session is down.
func (r *Runner) listen(ctx context.Context) {
	for ctx.Err() == nil {
		conn, err := r.st.Connect(ctx)
		if err != nil {
			sleep(ctx, 2*time.Second)
			continue
		}
		if _, err := conn.Exec(ctx, `LISTEN `+store.NotifyChannel); err == nil {
			r.Wake() // anything committed while we were not listening
			select {
			case r.listening <- struct{}{}:
			default:
			}
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					break
				}
				r.Wake()
			}
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(closeCtx)
		cancel()
		sleep(ctx, time.Second)
	}
}
