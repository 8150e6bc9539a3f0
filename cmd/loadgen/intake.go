package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cmdIntake posts signed texting webhooks of event type bench.noop (no
// handler, so workers mark them skipped) and measures the acknowledged rate
// and latency. A 202 with "accepted" is a success, a 200 with "duplicate" a
// duplicate, anything else an error.
func cmdIntake(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("intake", flag.ExitOnError)
	var cfg loadConfig
	cfg.register(fs)
	baseURL := fs.String("url", envOr("DF_BENCH_URL", "http://127.0.0.1:3002"), "base URL of the service")
	path := fs.String("path", "/api/webhooks/texting", "intake path")
	secret := fs.String("secret", envOr("VERITY_WEBHOOK_SECRET", ""), "HMAC secret (default $VERITY_WEBHOOK_SECRET)")
	eventType := fs.String("event-type", "bench.noop", "eventType of the webhooks")
	bodySize := fs.Int("body-size", 1024, "approximate body size in bytes")
	prefix := fs.String("id-prefix", "", "prefix of the messageIds (default: unique per run)")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	_ = fs.Parse(args)
	if err := cfg.validate(); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("-secret or VERITY_WEBHOOK_SECRET is required")
	}
	if *prefix == "" {
		*prefix = "bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	target := strings.TrimRight(*baseURL, "/") + *path

	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * cfg.Concurrency,
			MaxIdleConnsPerHost: 2 * cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
	defer client.CloseIdleConnections()

	// Everything but the messageId and timestamp is fixed: build it once.
	head := `{"eventType":` + strconv.Quote(*eventType) + `,"messageId":"`
	pad := strings.Repeat("x", max(0, *bodySize-220))
	mid := `","conversationId":"c","from":"+13105550100","to":"+18555550199","body":"` + pad + `","timestamp":"`
	key := []byte(*secret)

	op := func(ctx context.Context, w int, seq uint64) (outcome, string) {
		var b bytes.Buffer
		b.Grow(len(head) + len(mid) + 96)
		b.WriteString(head)
		b.WriteString(*prefix)
		b.WriteByte('_')
		b.WriteString(strconv.FormatUint(seq, 10))
		b.WriteString(mid)
		b.WriteString(time.Now().UTC().Format(time.RFC3339))
		b.WriteString(`"}`)
		body := b.Bytes()
		mac := hmac.New(sha256.New, key)
		mac.Write(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return outcomeError, err.Error()
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Texting-Signature", hex.EncodeToString(mac.Sum(nil)))
		resp, err := client.Do(req)
		if err != nil {
			return outcomeError, classifyNetErr(err)
		}
		respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted && bytes.Contains(respBody, []byte(`"accepted"`)):
			return outcomeOK, ""
		case resp.StatusCode == http.StatusOK && bytes.Contains(respBody, []byte(`"duplicate"`)):
			return outcomeDuplicate, ""
		default:
			return outcomeError, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, firstLine(strings.TrimSpace(string(respBody))))
		}
	}

	// One request first, so a wrong URL or secret fails fast and clearly.
	if o, detail := op(ctx, 0, 0); o == outcomeError {
		return fmt.Errorf("first request to %s failed: %s", target, detail)
	}
	mode := "closed loop"
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("paced at %.0f/s", cfg.Rate)
	}
	logf("intake: %s, %d workers, warm-up %s, %s recorded → %s", mode, cfg.Concurrency, cfg.Warmup, cfg.Duration, target)
	res := runLoad(ctx, cfg, op)
	res.Mode = "intake"
	res.Target = target
	res.TotalSent++ // the probe
	logf("intake: %.0f req/s (%.0f acknowledged/s), p50 %.2f ms, p99 %.2f ms, %d errors",
		res.PerSecond, res.OKPerSecond, res.Latency.P50, res.Latency.P99, res.Errors)
	return writeJSON(res)
}

// classifyNetErr shortens transport errors so that samples group.
func classifyNetErr(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return "transport: " + s
}
