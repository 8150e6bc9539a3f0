package app_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/app"
	"github.com/df-middleware/df-middleware/internal/config"
	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/observe"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

const (
	adminSecret   = "admin-secret-for-tests-0001"
	webhookSecret = "verity-webhook-secret-0002"
	alowareBearer = "aloware-bearer-token-0003"
	alowareUser   = "aloware-user"
	alowarePass   = "aloware-pass-0004"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	t       *testing.T
	url     string
	st      *store.Store
	svc     *app.Service
	logs    *syncBuffer
	ghlEd   ed25519.PrivateKey
	ghlRSA  *rsa.PrivateKey
	stopped chan struct{}
	stop    context.CancelFunc
}

var (
	keysOnce sync.Once
	edKey    ed25519.PrivateKey
	rsaKey   *rsa.PrivateKey
)

func testKeys(t *testing.T) (ed25519.PrivateKey, *rsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		_, edKey, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return edKey, rsaKey
}

// start runs the whole service (store, migrations, intake, workers, admin)
// on a fresh database and a loopback port. extra overrides the environment.
func start(t *testing.T, extra map[string]string) *harness {
	t.Helper()
	ed, rk := testKeys(t)
	edDER, err := x509.MarshalPKIXPublicKey(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dbURL := testdb.NewURL(t)
	env := map[string]string{
		"DATABASE_URL":                 dbURL,
		"DF_ADMIN_SECRET":              adminSecret,
		"VERITY_WEBHOOK_SECRET":        webhookSecret,
		"ALOWARE_WEBHOOK_BEARER_TOKEN": alowareBearer,
		"ALOWARE_WEBHOOK_BASIC_USER":   alowareUser,
		"ALOWARE_WEBHOOK_BASIC_PASS":   alowarePass,
		"GHL_WEBHOOK_PUBLIC_KEY":       base64.StdEncoding.EncodeToString(edDER),
		"GHL_WEBHOOK_RSA_PUBLIC_KEY":   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})),
		"DF_POLL_INTERVAL":             "50ms",
		"DF_WORKERS":                   "2",
		"LOG_LEVEL":                    "debug",
		"DF_INSTANCE_ID":               "test-" + t.Name(),
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	log, err := observe.NewLogger(logs, cfg.LogLevel, cfg.Secrets())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, url: "http://" + ln.Addr().String(), svc: svc, logs: logs, ghlEd: ed, ghlRSA: rk,
		stopped: make(chan struct{}), stop: cancel}
	go func() { _ = svc.Run(ctx, ln); close(h.stopped) }()
	t.Cleanup(func() { cancel(); <-h.stopped })
	h.st, err = store.Open(context.Background(), cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.st.Close)
	return h
}

type reply struct {
	code int
	body map[string]any
	raw  string
}

func (h *harness) do(method, path string, header http.Header, body []byte) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (h *harness) admin(method, path string, body string) reply {
	return h.do(method, path, http.Header{"Authorization": {"Bearer " + adminSecret}}, []byte(body))
}

func (h *harness) count(where string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE `+where, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) waitStatus(id, status string) store.Event {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ev, err := h.st.GetEvent(context.Background(), id)
		if err == nil && ev.Status == status {
			return ev
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("event %s: status %q, want %q (err %v)", id, ev.Status, status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signers for each source.

func (h *harness) signGHL(body []byte) http.Header {
	return http.Header{intake.HeaderGHLSignature: {base64.StdEncoding.EncodeToString(ed25519.Sign(h.ghlEd, body))}}
}

func (h *harness) signGHLLegacy(body []byte) http.Header {
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, h.ghlRSA, crypto.SHA256, sum[:])
	if err != nil {
		h.t.Fatal(err)
	}
	return http.Header{intake.HeaderWHSignature: {base64.StdEncoding.EncodeToString(sig)}}
}

func signTexting(body []byte) http.Header {
	return http.Header{"X-Texting-Signature": {intake.SignHMAC(body, []byte(webhookSecret))}}
}

func signBroadcast(body []byte) http.Header {
	return http.Header{"X-Broadcast-Signature": {intake.SignHMAC(body, []byte(webhookSecret))}}
}

func alowareBearerAuth([]byte) http.Header {
	return http.Header{"Authorization": {"Bearer " + alowareBearer}}
}

func alowareBasicAuth([]byte) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(alowareUser+":"+alowarePass))}}
}

func nowGHL(typ, id string) []byte {
	return []byte(`{"type":"` + typ + `","locationId":"loc1","id":"` + id + `","phone":"+13105550100","timestamp":"` +
		time.Now().UTC().Format(time.RFC3339) + `","webhookId":"wh-` + id + `"}`)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
