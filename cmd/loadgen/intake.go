package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/df-middleware/df-middleware/internal/sandbox"
)

// cmdIntake posts signed webhooks and measures the acknowledged rate and
// latency. A 202 with "accepted" is a success, a 200 with "duplicate" a
// duplicate, anything else an error.
//
//   - -source texting (default): texting webhooks of event type bench.noop
//     (no handler, so workers mark them skipped), X-Texting-Signature.
//   - -source ghl: GHL ContactCreate webhooks, each with a unique contact id,
//     email, E.164 phone number (+1310555xxxx, then other exchanges),
//     webhookId and a fresh timestamp, signed with the Ed25519 key of
//     -ghl-key (X-GHL-Signature); the service needs its public half in
//     GHL_WEBHOOK_PUBLIC_KEY. With upstreams configured, each becomes an
//     Aloware contact (the end-to-end benchmark through the sandbox).
func cmdIntake(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("intake", flag.ExitOnError)
	var cfg loadConfig
	cfg.register(fs)
	baseURL := fs.String("url", envOr("DF_BENCH_URL", "http://127.0.0.1:3002"), "base URL of the service")
	source := fs.String("source", "texting", "texting (bench.noop, HMAC) or ghl (ContactCreate, Ed25519)")
	path := fs.String("path", "", "intake path (default /api/webhooks/<source>)")
	secret := fs.String("secret", envOr("VERITY_WEBHOOK_SECRET", ""), "texting: HMAC secret (default $VERITY_WEBHOOK_SECRET)")
	ghlKeyFile := fs.String("ghl-key", "", "ghl: PEM PKCS#8 Ed25519 private key to sign with (e.g. .dev/sandbox-ghl-signing-key.pem)")
	locationID := fs.String("location-id", envOr("GHL_LOCATION_ID", sandbox.DevGHLLocationID), "ghl: locationId of the webhooks")
	phoneOffset := fs.Int64("phone-offset", 0, "ghl: index of the first phone number (0 = +13105550000); runs against one sandbox need disjoint ranges")
	eventType := fs.String("event-type", "bench.noop", "texting: eventType of the webhooks")
	bodySize := fs.Int("body-size", 1024, "texting: approximate body size in bytes")
	prefix := fs.String("id-prefix", "", "prefix of the message / contact / webhook ids (default: unique per run)")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	_ = fs.Parse(args)
	if err := cfg.validate(); err != nil {
		return err
	}
	if *prefix == "" {
		*prefix = "bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	var build func(seq uint64) (body []byte, header, value string)
	switch *source {
	case "texting":
		if *secret == "" {
			return errors.New("-secret or VERITY_WEBHOOK_SECRET is required")
		}
		build = textingBuilder(*secret, *eventType, *prefix, *bodySize)
	case "ghl":
		if *ghlKeyFile == "" {
			return errors.New("-source ghl needs -ghl-key FILE (a PEM PKCS#8 Ed25519 private key)")
		}
		pemBytes, err := os.ReadFile(*ghlKeyFile)
		if err != nil {
			return err
		}
		key, err := sandbox.ParseEd25519PrivateKey(pemBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", *ghlKeyFile, err)
		}
		if *phoneOffset < 0 || *phoneOffset >= maxBenchPhones {
			return fmt.Errorf("-phone-offset must be within 0..%d", maxBenchPhones-1)
		}
		build = ghlBuilder(key, *locationID, *prefix, *phoneOffset)
	default:
		return fmt.Errorf("-source %q: want texting or ghl", *source)
	}
	if *path == "" {
		*path = "/api/webhooks/" + *source
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

	op := func(ctx context.Context, w int, seq uint64) (outcome, string) {
		body, sigHeader, sig := build(seq)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return outcomeError, err.Error()
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(sigHeader, sig)
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
	if *source != "texting" {
		res.Mode = "intake " + *source
	}
	res.Target = target
	res.TotalSent++ // the probe
	logf("intake: %.0f req/s (%.0f acknowledged/s), p50 %.2f ms, p99 %.2f ms, %d errors",
		res.PerSecond, res.OKPerSecond, res.Latency.P50, res.Latency.P99, res.Errors)
	return writeJSON(res)
}

// textingBuilder: bench.noop texting webhooks of about bodySize bytes; only
// the messageId and the timestamp change, the rest is built once.
func textingBuilder(secret, eventType, prefix string, bodySize int) func(uint64) ([]byte, string, string) {
	head := `{"eventType":` + strconv.Quote(eventType) + `,"messageId":"`
	pad := strings.Repeat("x", max(0, bodySize-220))
	mid := `","conversationId":"c","from":"+13105550100","to":"+18555550199","body":"` + pad + `","timestamp":"`
	key := []byte(secret)
	return func(seq uint64) ([]byte, string, string) {
		var b bytes.Buffer
		b.Grow(len(head) + len(mid) + 96)
		b.WriteString(head)
		b.WriteString(prefix)
		b.WriteByte('_')
		b.WriteString(strconv.FormatUint(seq, 10))
		b.WriteString(mid)
		b.WriteString(time.Now().UTC().Format(time.RFC3339))
		b.WriteString(`"}`)
		body := b.Bytes()
		mac := hmac.New(sha256.New, key)
		mac.Write(body)
		return body, "X-Texting-Signature", hex.EncodeToString(mac.Sum(nil))
	}
}

// maxBenchPhones is how many distinct numbers benchPhone makes: 800
// exchanges (200–999) × 10,000 lines of area code 310.
const maxBenchPhones = 800 * 10_000

// benchPhone returns phone number n (mod maxBenchPhones) in E.164: the first
// 10,000 are +1310555xxxx, then the exchanges after 555, wrapping to 200.
func benchPhone(n int64) string {
	n %= maxBenchPhones
	exchange := 200 + (355+n/10_000)%800
	return fmt.Sprintf("+1310%03d%04d", exchange, n%10_000)
}

// ghlContactCreate is the body of a GHL ContactCreate webhook (the shape of
// shared/fixtures and sandbox.SampleWebhook).
type ghlContactCreate struct {
	Type         string   `json:"type"`
	LocationID   string   `json:"locationId"`
	ID           string   `json:"id"`
	FirstName    string   `json:"firstName"`
	LastName     string   `json:"lastName"`
	Name         string   `json:"name"`
	Email        string   `json:"email"`
	Phone        string   `json:"phone"`
	DND          bool     `json:"dnd"`
	Tags         []string `json:"tags"`
	Source       string   `json:"source"`
	DateAdded    string   `json:"dateAdded"`
	CustomFields []any    `json:"customFields"`
	Timestamp    string   `json:"timestamp"`
	WebhookID    string   `json:"webhookId"`
}

// ghlBuilder: signed GHL ContactCreate webhooks, every id, email and phone
// number unique (phone number phoneOffset+seq; the probe request is seq 0).
func ghlBuilder(key ed25519.PrivateKey, locationID, prefix string, phoneOffset int64) func(uint64) ([]byte, string, string) {
	return func(seq uint64) ([]byte, string, string) {
		now := time.Now().UTC()
		n := strconv.FormatUint(seq, 10)
		last := "Load " + n
		body, err := json.Marshal(ghlContactCreate{
			Type:         "ContactCreate",
			LocationID:   locationID,
			ID:           prefix + "c" + n,
			FirstName:    "Bench",
			LastName:     last,
			Name:         "Bench " + last,
			Email:        prefix + "." + n + "@example.com",
			Phone:        benchPhone(phoneOffset + int64(seq)),
			Tags:         []string{"bench"},
			Source:       "df-loadgen",
			DateAdded:    now.Format("2006-01-02T15:04:05.000Z"),
			CustomFields: []any{},
			Timestamp:    now.Format(time.RFC3339),
			WebhookID:    prefix + "-" + n,
		})
		if err != nil {
			panic(err) // a fixed struct of strings always marshals
		}
		return body, "X-GHL-Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
	}
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
