// Package store owns the PostgreSQL connection pool and every SQL statement
// of the service. Other packages call its typed methods; none of them builds
// SQL of its own.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultMaxConns is the pool size when DATABASE_URL does not set
// pool_max_conns. pgxpool's own default (max(4, NumCPU)) is too small for an
// intake flusher, a worker pool and admin reads sharing one pool.
const DefaultMaxConns = 20

// NotifyChannel is the LISTEN/NOTIFY channel that wakes idle workers when new
// events are committed.
const NotifyChannel = "df_webhook_events"

// Store wraps the pgx pool.
type Store struct {
	Pool *pgxpool.Pool
	url  string
}

// ErrNotFound is returned when a row asked for by id does not exist.
var ErrNotFound = errors.New("not found")

// Open connects to PostgreSQL with a pool of DefaultMaxConns and checks the
// connection.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenSized(ctx, url, DefaultMaxConns)
}

// OpenSized is Open with a pool of maxConns connections, unless
// DATABASE_URL sets pool_max_conns itself.
func OpenSized(ctx context.Context, url string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "df-middleware"
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		// DB spans (children of the request, job or tool span only; otelpgx
		// starts none without a recording parent). Installed only when
		// tracing is on, so a service without it pays nothing.
		cfg.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithDisableAcquireTracer())
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &Store{Pool: pool, url: url}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.Pool.Ping(ctx) }

// Connect opens a connection outside the pool, for sessions that must stay
// on one backend for a long time (LISTEN, the leader's advisory lock) and
// would otherwise hold a pool slot forever.
func (s *Store) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.Pool.Config().ConnConfig.Copy()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("dedicated connection: %w", err)
	}
	return conn, nil
}
