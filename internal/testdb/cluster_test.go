package testdb

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The private cluster can be stopped and started under a client: data
// committed before the stop is there after the start, and while it is down
// connections are refused (not hung).
func TestClusterStopStart(t *testing.T) {
	c := StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}

	c.Stop()
	if c.Running() {
		t.Fatal("Running() after Stop")
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("the session survived Stop")
	}
	_ = conn.Close(ctx)
	start := time.Now()
	_, err = pgx.Connect(ctx, c.URL())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect while stopped: %v, want connection refused", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("connect while stopped took %v: it must be refused, not hang", d)
	}

	c.Start()
	c.Start() // no-op when running
	conn, err = pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatalf("connect after Start: %v", err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != 42 {
		t.Fatalf("committed row after restart: %d, %v", v, err)
	}
}
