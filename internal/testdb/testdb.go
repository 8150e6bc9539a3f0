// Package testdb gives each test a fresh PostgreSQL database cloned from a
// template that carries the current migrations. Cloning a template costs a
// few tens of milliseconds, so every test can have its own database and run
// in parallel with the others without sharing rows.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/migrations"
)

// DefaultAdminURL is the machine's PostgreSQL; `make test` exports
// DF_TEST_DATABASE_URL when it had to start another one.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server on which test databases are created.
func AdminURL() string {
	if u := os.Getenv("DF_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// withDatabase returns base with its database name replaced.
func withDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("DF_TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// templateName changes whenever a migration file changes, so a stale
// template is never reused.
func templateName() (string, error) {
	h := sha256.New()
	entries, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(entries)
	for _, name := range entries {
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return "", err
		}
		h.Write([]byte(name))
		h.Write(b)
	}
	return "dfm_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// lockKey serialises template builds and clones across the test binaries
// that `go test ./...` runs in parallel.
const lockKey = 7_302_114_001

// NewURL creates a fresh migrated database and returns its URL; the database
// is dropped when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := AdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL at %s: %v (run `make test`, which starts one, or set DF_TEST_DATABASE_URL)", admin, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
		t.Fatalf("lock template: %v", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck

	tmpl, err := templateName()
	if err != nil {
		t.Fatalf("template name: %v", err)
	}
	if err := ensureTemplate(ctx, conn, admin, tmpl); err != nil {
		t.Fatalf("build template database: %v", err)
	}
	name := "dfm_test_" + randomHex(8)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl)); err != nil {
		t.Fatalf("clone template: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// New returns a Store on a fresh migrated database, closed when the test ends.
func New(t testing.TB) *store.Store {
	t.Helper()
	dbURL := NewURL(t)
	st, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func ensureTemplate(ctx context.Context, conn *pgx.Conn, admin, tmpl string) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	// Build under a scratch name and rename at the end, so a build that
	// dies half-way never leaves a template that looks finished.
	building := tmpl + "_building"
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building)); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return err
	}
	buildURL, err := withDatabase(admin, building)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, buildURL)
	if err != nil {
		return err
	}
	_, err = st.Migrate(ctx)
	st.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, tmpl))
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
