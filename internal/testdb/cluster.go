package testdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private, disposable PostgreSQL server for tests that must
// stop and start the database under the service (the machine's shared
// server must never be restarted: other tests use it). It listens on a free
// TCP port of 127.0.0.1 only (no Unix socket), trusts every local
// connection, and is removed, data and all, when the test ends.
//
// Start and Stop call t.Fatal on failure, so call them from the test's own
// goroutine.
type Cluster struct {
	t       testing.TB
	bindir  string
	dir     string // temporary root, removed at cleanup
	data    string
	logFile string
	port    int
	asUser  string // "postgres" when the test runs as root, else ""

	mu      sync.Mutex
	running bool
}

// StartCluster initialises a cluster in a fresh temporary directory with the
// newest PostgreSQL server binaries of the machine (Debian's
// /usr/lib/postgresql/*/bin, else initdb on PATH), starts it and registers
// its removal with t.Cleanup. Running as root, the server runs as the
// postgres user (initdb refuses root). Without server binaries the test is
// skipped, unless CI=true, where it fails.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bindir, err := serverBinDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testdb.StartCluster: %v", err)
		}
		t.Skipf("testdb.StartCluster: %v", err)
	}
	c := &Cluster{t: t, bindir: bindir}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
	}
	// Not t.TempDir(): its parent directories are private to this user, and
	// the server may run as another one.
	c.dir, err = os.MkdirTemp("", "dfm-pgcluster-")
	if err != nil {
		t.Fatalf("testdb.StartCluster: %v", err)
	}
	t.Cleanup(c.cleanup)
	if c.asUser != "" {
		u, err := user.Lookup(c.asUser)
		if err != nil {
			c.skipOrFail("running as root and there is no %q user to run PostgreSQL as: %v", c.asUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			t.Fatalf("testdb.StartCluster: chown %s: %v", c.dir, err)
		}
	}
	c.data = filepath.Join(c.dir, "data")
	c.logFile = filepath.Join(c.dir, "postgres.log")
	c.port = freeTCPPort(t)

	// -N: initdb need not fsync a cluster that lives for one test; the
	// server itself keeps fsync on, so commits stay as durable as in
	// production (the point of crash tests).
	if out, err := c.run("initdb", "-D", c.data, "--username=postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "-N"); err != nil {
		t.Fatalf("testdb.StartCluster: initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\n# testdb.StartCluster\nlisten_addresses = '127.0.0.1'\nport = %d\n"+
		"unix_socket_directories = ''\nmax_connections = 200\nshared_buffers = 32MB\n", c.port)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("testdb.StartCluster: %v", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testdb.StartCluster: write postgresql.conf: %v", err)
	}
	c.Start()
	return c
}

// URL is the connection URL of the cluster's postgres database as the
// postgres superuser.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Port is the TCP port the cluster listens on (the same after a restart).
func (c *Cluster) Port() int { return c.port }

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return c.logFile }

// Running reports whether the server was started and not stopped since.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Start starts the server and waits until it accepts connections. Starting
// a running cluster is a no-op.
func (c *Cluster) Start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.data, "-l", c.logFile, "-w", "-t", "60", "start"); err != nil {
		c.t.Fatalf("testdb.Cluster.Start: pg_ctl start: %v\n%s\n%s", err, out, c.logTail())
	}
	c.running = true
	// pg_ctl -w waits for "ready"; check that TCP connections work too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL())
		if err == nil {
			_ = conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			c.t.Fatalf("testdb.Cluster.Start: server started but refuses %s: %v\n%s", c.URL(), err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down in fast mode (open sessions are ended,
// in-flight transactions rolled back, committed data kept) and waits until
// it has exited; connections are then refused. Stopping a stopped cluster
// is a no-op.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		c.t.Fatalf("testdb.Cluster.Stop: pg_ctl stop: %v\n%s\n%s", err, out, c.logTail())
	}
	c.running = false
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	running := c.running
	c.running = false
	c.mu.Unlock()
	if running {
		if out, err := c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
			c.t.Logf("testdb.Cluster: stopping the server at cleanup: %v\n%s", err, out)
		}
	}
	if c.t.Failed() {
		if tail := c.logTail(); tail != "" {
			c.t.Logf("testdb.Cluster: end of the server log %s:\n%s", c.logFile, tail)
		}
	}
	_ = os.RemoveAll(c.dir)
}

// run runs one of the server binaries, as the postgres user when root.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	bin := filepath.Join(c.bindir, name)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = c.dir
	// pg_ctl start leaves the postmaster running with our stdout/stderr
	// unless they are redirected; CombinedOutput would then wait for it.
	// The server's output goes to the -l log file.
	out, err := os.CreateTemp(c.dir, "cmd-*.out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	runErr := cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return b, runErr
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) skipOrFail(format string, args ...any) {
	c.t.Helper()
	if os.Getenv("CI") == "true" {
		c.t.Fatalf("testdb.StartCluster: "+format, args...)
	}
	c.t.Skipf("testdb.StartCluster: "+format, args...)
}

// serverBinDir finds a directory holding initdb and pg_ctl: the newest
// major version under /usr/lib/postgresql (Debian), else initdb on PATH.
// scripts/devdb.sh searches the same places.
func serverBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH; install the postgresql package")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testdb: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
