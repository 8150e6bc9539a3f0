package chaos

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// slowResult is how one slow connection ended.
type slowResult struct {
	cutAfter time.Duration // from the first byte to the server closing the connection
	status   string        // the status line the server sent before closing, if any
	cut      bool          // false: still open when the client gave up
}

// dribble opens a connection, writes head, then one chunk of drip every
// second until the server closes the connection or giveUp passes.
func dribble(addr string, head []byte, drip func(i int) []byte, giveUp time.Duration) slowResult {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return slowResult{status: "dial: " + err.Error()}
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan string, 1)
	go func() {
		// Whatever the server answers, then EOF (or a reset) when it closes.
		line, _ := bufio.NewReader(conn).ReadString('\n')
		_, _ = io.Copy(io.Discard, conn)
		closed <- strings.TrimSpace(line)
	}()
	if _, err := conn.Write(head); err != nil {
		return slowResult{status: "write: " + err.Error()}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case line := <-closed:
			return slowResult{cutAfter: time.Since(start), status: line, cut: true}
		case <-tick.C:
			if time.Since(start) > giveUp {
				return slowResult{cutAfter: time.Since(start)}
			}
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(drip(i)) // a failed write means closed: the reader says so
		}
	}
}

// slowSummary renders the cut times of a group of slow connections.
func slowSummary(rs []slowResult) (cut int, maxCut time.Duration, statuses map[string]int) {
	statuses = map[string]int{}
	for _, r := range rs {
		if r.cut {
			cut++
			maxCut = max(maxCut, r.cutAfter)
		}
		s := r.status
		if s == "" {
			s = "closed without an answer"
		}
		statuses[s]++
	}
	return cut, maxCut, statuses
}

// TestSlowClients holds slowloris and slow-body connections open and sends
// oversized bodies and headers while normal webhooks flow: the listener
// keeps answering, and each abuse is cut at its limit.
func TestSlowClients(t *testing.T) {
	setup(t)
	res := newResult("slowclients")
	sec := newSecrets(t)
	sb := startSandbox(t, 0)
	dbURL := testdb.NewURL(t)
	addr := freeAddr(t)
	svc := startService(t, "serve", addr, "slow-1", serviceEnv(withPoolSize(dbURL, poolSize()), sb.url, addr, "slow-1", sec, nil))
	res.Settings = map[string]string{"ReadHeaderTimeout": "5s", "ReadTimeout": "30s", "MaxHeaderBytes": "64 KiB",
		"DF_MAX_BODY_BYTES": "1 MiB (default)"}

	spec := loadSpec{Kind: sandbox.KindGHLContact, Rate: pick(20.0, 50.0), Targets: fixed(svc.url), Timeout: 10 * time.Second}
	nLoris, nBody, nBig, nHeader := pick(100, 500), pick(20, 100), pick(20, 100), pick(5, 20)
	const headerTimeout, readTimeout = 5 * time.Second, 30 * time.Second
	duration := readTimeout + pick(6*time.Second, 15*time.Second)
	res.Load = describeLoad(spec, duration)
	res.Fault = fmt.Sprintf("%d slowloris connections (a header line a second), %d slow bodies (10 bytes a second of a 100 kB body), "+
		"%d bodies of 2 MiB, %d headers of 100 KiB", nLoris, nBody, nBig, nHeader)
	load := newLoadDriver(t, spec, sec)
	load.start()
	time.Sleep(time.Second)
	abuseStart := time.Now()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var loris, bodies []slowResult
	giveUp := readTimeout + 10*time.Second
	lorisHead := []byte("POST /api/webhooks/ghl HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n")
	for range nLoris {
		wg.Go(func() {
			r := dribble(addr, lorisHead, func(i int) []byte { return fmt.Appendf(nil, "X-Slow-%d: y\r\n", i) }, giveUp)
			mu.Lock()
			loris = append(loris, r)
			mu.Unlock()
		})
	}
	bodyHead := []byte("POST /api/webhooks/ghl HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"type\":")
	for range nBody {
		wg.Go(func() {
			r := dribble(addr, bodyHead, func(int) []byte { return []byte("\"aaaaaaaa\"") }, giveUp)
			mu.Lock()
			bodies = append(bodies, r)
			mu.Unlock()
		})
	}
	// Oversized bodies and headers, through a normal client.
	big := bytes.Repeat([]byte("x"), 2<<20)
	bigCodes, headerCodes := map[string]int{}, map[string]int{}
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(body []byte, header string) string {
		req, _ := http.NewRequest(http.MethodPost, svc.url+"/api/webhooks/ghl", bytes.NewReader(body))
		if header != "" {
			req.Header.Set("X-Big", header)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "error: " + err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return strconv.Itoa(resp.StatusCode)
	}
	for range nBig {
		wg.Go(func() {
			c := post(big, "")
			mu.Lock()
			bigCodes[c]++
			mu.Unlock()
		})
	}
	hugeHeader := strings.Repeat("h", 100<<10)
	for range nHeader {
		wg.Go(func() {
			c := post([]byte(`{}`), hugeHeader)
			mu.Lock()
			headerCodes[c]++
			mu.Unlock()
		})
	}
	wg.Wait()
	abuseEnd := time.Now()
	if rest := duration - time.Since(abuseStart); rest > 0 {
		time.Sleep(rest)
	}
	load.stop()
	recs := load.snapshot()
	checkInvariant(t, res, recs, checkOpts{dbURL: dbURL, sb: sb, settle: pick(60*time.Second, 3*time.Minute)})

	// Normal requests during the abuse: all answered, promptly.
	var during, baseline []time.Duration
	for _, r := range recs {
		if r.Sent.After(abuseStart) && r.Sent.Before(abuseEnd) {
			during = append(during, r.Latency)
		} else if r.Sent.Before(abuseStart) {
			baseline = append(baseline, r.Latency)
		}
		if !r.Acked {
			res.problem("normal request %s not acknowledged during the abuse: %s", r.Key, r.refusal())
		}
	}
	lat, base := summarise(during), summarise(baseline)
	res.observe("normal requests before the abuse", "%d; p50 %.0f ms, p99 %.0f ms, max %.0f ms", len(baseline), base.P50, base.P99, base.Max)
	res.observe("normal requests during the abuse", "%d, all acknowledged; p50 %.0f ms, p99 %.0f ms, max %.0f ms", len(during), lat.P50, lat.P99, lat.Max)
	if len(during) == 0 {
		res.problem("no normal request was sent during the abuse")
	}
	// Bounds far below the timeouts the abusers run into; looser in the
	// reduced form, which shares the CPUs with the rest of `go test ./...`.
	p99Bound, maxBound := pick(3000.0, 1000.0), pick(5000.0, 3000.0)
	if lat.P99 > p99Bound || lat.Max > maxBound {
		res.problem("normal requests slowed down during the abuse: p99 %.0f ms, max %.0f ms (bounds %.0f ms, %.0f ms)", lat.P99, lat.Max, p99Bound, maxBound)
	}

	// The server cuts at its timeout; the slack covers the client noticing
	// on a busy machine (the reduced form shares it with go test ./...).
	slack := pick(5*time.Second, 3*time.Second)
	cut, maxCut, statuses := slowSummary(loris)
	res.observe("slowloris connections", "%d of %d cut, the last after %s (ReadHeaderTimeout %s); answers %v", cut, len(loris), seconds(maxCut), headerTimeout, statuses)
	if cut != len(loris) || maxCut > headerTimeout+slack {
		res.problem("slowloris: %d of %d connections cut, the last after %s (want all within %s)", cut, len(loris), maxCut, headerTimeout+slack)
	}
	cut, maxCut, statuses = slowSummary(bodies)
	res.observe("slow-body connections", "%d of %d cut, the last after %s (ReadTimeout %s); answers %v", cut, len(bodies), seconds(maxCut), readTimeout, statuses)
	if cut != len(bodies) || maxCut > readTimeout+slack {
		res.problem("slow bodies: %d of %d connections cut, the last after %s (want all within %s)", cut, len(bodies), maxCut, readTimeout+slack)
	}
	res.observe("2 MiB bodies", "answered %v", bigCodes)
	if bigCodes["413"] != nBig {
		res.problem("2 MiB bodies answered %v, want %d × 413", bigCodes, nBig)
	}
	res.observe("100 KiB headers", "answered %v", headerCodes)
	if headerCodes["431"] != nHeader {
		res.problem("100 KiB headers answered %v, want %d × 431", headerCodes, nHeader)
	}
	finish(t, res)
}
