package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// SinkResult is the JSON output of otlp-sink (printed when it stops).
type SinkResult struct {
	Mode    string    `json:"mode"`
	Addr    string    `json:"addr"`
	Started time.Time `json:"started"`
	WallS   float64   `json:"wall_s"`
	// Requests answered 200 on POST /v1/traces; Bytes of their bodies as
	// received (compressed when the exporter compresses).
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
	// Spans counted by walking the protobuf wire format of each
	// ExportTraceServiceRequest (no decoding into messages).
	Spans        int64 `json:"spans"`
	Rejected     int64 `json:"rejected"` // other paths/methods, unreadable bodies
	DecodeErrors int64 `json:"decode_errors,omitempty"`
}

// cmdOTLPSink runs a minimal OTLP/HTTP trace receiver: POST /v1/traces is
// read, its spans counted, and answered 200 with an empty (valid)
// ExportTraceServiceResponse. It prints its counts on SIGINT/SIGTERM.
func cmdOTLPSink(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("otlp-sink", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4318", "listen address")
	_ = fs.Parse(args)

	res := SinkResult{Mode: "otlp-sink", Addr: *addr, Started: time.Now().UTC()}
	var requests, nbytes, spans, rejected, decodeErrs atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			rejected.Add(1)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			rejected.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		requests.Add(1)
		nbytes.Add(int64(len(body)))
		raw := body
		if r.Header.Get("Content-Encoding") == "gzip" {
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				raw, err = io.ReadAll(zr)
				if err != nil {
					raw = nil
				}
			} else {
				raw = nil
			}
		}
		if n, err := countSpans(raw); err != nil || raw == nil {
			decodeErrs.Add(1)
		} else {
			spans.Add(n)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // empty body = empty ExportTraceServiceResponse
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {}) // readiness probe, not counted
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		rejected.Add(1)
		http.NotFound(w, r)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logf("otlp-sink: listening on %s", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	res.WallS = time.Since(res.Started).Seconds()
	res.Requests, res.Bytes, res.Spans = requests.Load(), nbytes.Load(), spans.Load()
	res.Rejected, res.DecodeErrors = rejected.Load(), decodeErrs.Load()
	logf("otlp-sink: %d requests, %d bytes, %d spans, %d rejected", res.Requests, res.Bytes, res.Spans, res.Rejected)
	return writeJSON(res)
}

// countSpans counts the spans of an ExportTraceServiceRequest from its wire
// format: resource_spans (1) → scope_spans (2) → spans (2).
func countSpans(b []byte) (int64, error) {
	var n int64
	err := eachField(b, 1, func(rs []byte) error {
		return eachField(rs, 2, func(ss []byte) error {
			return eachField(ss, 2, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls fn with the payload of every length-delimited field num
// of message b, skipping the other fields.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		fnum, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if fnum == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(fnum, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}

// ScrapeResult is the JSON output of scrape (printed when it stops).
type ScrapeResult struct {
	Mode       string           `json:"mode"`
	URL        string           `json:"url"`
	IntervalMS int64            `json:"interval_ms"`
	Started    time.Time        `json:"started"`
	WallS      float64          `json:"wall_s"`
	Attempts   int64            `json:"attempts"`
	OK         int64            `json:"ok"` // HTTP 200 with a non-empty body
	Failed     int64            `json:"failed"`
	Failures   map[string]int64 `json:"failures,omitempty"`
	Bytes      int64            `json:"bytes"` // of the successful scrapes
	Latency    LatencyMS        `json:"latency"`
}

// cmdScrape GETs a Prometheus /metrics URL every -interval, as a Prometheus
// server would, until SIGINT/SIGTERM, then prints what it did.
func cmdScrape(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scrape", flag.ExitOnError)
	url := fs.String("url", "http://127.0.0.1:3002/metrics", "metrics URL")
	interval := fs.Duration("interval", time.Second, "scrape interval")
	timeout := fs.Duration("timeout", 10*time.Second, "per-scrape timeout")
	token := fs.String("token", os.Getenv("DF_METRICS_TOKEN"), "bearer token (default $DF_METRICS_TOKEN)")
	_ = fs.Parse(args)
	if *interval <= 0 {
		return errors.New("-interval must be positive")
	}

	res := ScrapeResult{Mode: "scrape", URL: *url, IntervalMS: interval.Milliseconds(),
		Started: time.Now().UTC(), Failures: map[string]int64{}}
	client := &http.Client{Timeout: *timeout}
	var lat []time.Duration
	var mu sync.Mutex
	scrape := func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return // stopped mid-scrape: not counted
		}
		res.Attempts++
		if err != nil {
			res.Failed++
			res.Failures[firstLine(err.Error())]++
			return
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n == 0 {
			res.Failed++
			res.Failures[fmt.Sprintf("HTTP %d", resp.StatusCode)]++
			return
		}
		res.OK++
		res.Bytes += n
		lat = append(lat, time.Since(t0))
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	scrape()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			scrape() // sequential: a slow scrape delays the next, as in Prometheus
		}
	}
	mu.Lock()
	defer mu.Unlock()
	res.WallS = time.Since(res.Started).Seconds()
	res.Latency = summarise(lat)
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	logf("scrape: %d of %d scrapes ok (%d bytes)", res.OK, res.Attempts, res.Bytes)
	return writeJSON(res)
}
