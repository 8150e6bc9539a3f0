package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
)

// process is a child process in its own process group, its stderr (and
// stdout) in a log file of the test's temporary directory; the end of the
// log is printed when the test fails.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	mu      sync.Mutex
	exitErr error
}

func startProcess(t *testing.T, name, bin string, args, env []string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("---- end of %s log (%s) ----\n%s", name, logPath, p.tail(60))
		}
		if t.Failed() || os.Getenv("DF_CHAOS_KEEP_LOGS") == "1" {
			keepLog(t, name, logPath)
		}
	})
	return p
}

// keepLog copies a process log into DF_CHAOS_OUT/logs when DF_CHAOS_OUT is
// set (the temporary directory goes with the test): the logs of a failed
// scenario, or all of them with DF_CHAOS_KEEP_LOGS=1.
func keepLog(t *testing.T, name, logPath string) {
	out := os.Getenv("DF_CHAOS_OUT")
	if out == "" {
		return
	}
	dir := filepath.Join(out, "logs")
	b, err := os.ReadFile(logPath)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		dst := filepath.Join(dir, t.Name()+"-"+name+".log")
		if err = os.WriteFile(dst, b, 0o644); err == nil {
			t.Logf("full %s log kept in %s", name, dst)
		}
	}
	if err != nil {
		t.Logf("keep %s log: %v", name, err)
	}
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// tail returns the last n lines of the log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLine is the part of a df-middleware log line the tests read.
type logLine struct {
	Timestamp time.Time      `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Metadata  map[string]any `json:"metadata"`
}

// logLines returns the JSON log lines whose message is one of msgs.
func (p *process) logLines(msgs ...string) []logLine {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return nil
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"message"`)) {
			continue
		}
		var l logLine
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		for _, m := range msgs {
			if l.Message == m {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP polls url until it answers 200, failing the test after timeout
// or when p exits first.
func waitHTTP(t *testing.T, p *process, url string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("%s exited before %s answered:\n%s", p.name, url, p.tail(30))
		}
		if resp, err := client.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s did not answer 200 within %s:\n%s", p.name, url, timeout, p.tail(30))
}

// sandboxProc is a running cmd/sandbox with its control surface.
type sandboxProc struct {
	*process
	url string
}

// startSandbox starts the sandbox with the rate limits lifted (the
// scenarios measure the middleware, not the providers' quotas) and the
// Aloware imitation answering after alowareLatency.
func startSandbox(t *testing.T, alowareLatency time.Duration) *sandboxProc {
	t.Helper()
	_, bin := binaries(t)
	addr := freeAddr(t)
	p := startProcess(t, "sandbox", bin, []string{"serve", "--addr", addr,
		"--ghl-burst", "-1", "--ghl-daily", "-1", "--aloware-per-minute", "-1"}, baseEnv())
	sb := &sandboxProc{process: p, url: "http://" + addr}
	waitHTTP(t, p, sb.url+"/_sandbox/state", 30*time.Second)
	if alowareLatency > 0 {
		sb.setFaults(t, sandbox.UpstreamAloware, sandbox.Faults{Latency: alowareLatency})
	}
	return sb
}

// setFaults replaces the faults of one upstream (a zero Faults clears them).
func (s *sandboxProc) setFaults(t *testing.T, upstream string, f sandbox.Faults) {
	t.Helper()
	var resp *http.Response
	var err error
	if f == (sandbox.Faults{}) {
		req, _ := http.NewRequest(http.MethodDelete, s.url+"/_sandbox/faults?upstream="+upstream, nil)
		resp, err = http.DefaultClient.Do(req)
	} else {
		body, _ := json.Marshal(f)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		m["upstream"] = upstream
		body, _ = json.Marshal(m)
		resp, err = http.Post(s.url+"/_sandbox/faults", "application/json", bytes.NewReader(body))
	}
	if err != nil {
		t.Fatalf("sandbox faults: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sandbox faults: %d %s", resp.StatusCode, b)
	}
}

// state fetches the sandbox's state.
func (s *sandboxProc) state(ctx context.Context) (sandbox.State, error) {
	var st sandbox.State
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/_sandbox/state", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("sandbox state: HTTP %d", resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// service is one df-middleware serve process.
type service struct {
	*process
	addr     string
	url      string
	instance string
}

// startService starts `df-middleware serve` with env and waits until
// /readyz answers.
func startService(t *testing.T, name, addr, instance string, env []string) *service {
	t.Helper()
	bin, _ := binaries(t)
	p := startProcess(t, name, bin, []string{"serve"}, env)
	s := &service{process: p, addr: addr, url: "http://" + addr, instance: instance}
	waitHTTP(t, p, s.url+"/readyz", 60*time.Second)
	return s
}

// metric reads one sample of /metrics: the value of the series whose line
// starts with series (name plus labels as Prometheus prints them).
func metric(ctx context.Context, client *http.Client, baseURL, series string) (float64, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// metricSum adds the values of every series of a metric name whose label
// set contains every one of labels (e.g. `status="done"`).
func metricSum(ctx context.Context, client *http.Client, baseURL, name string, labels ...string) (float64, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}
