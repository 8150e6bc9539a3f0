package sandbox

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Sample webhooks, signed the way each provider signs them, for
// `sandbox deliver`: payload shapes follow shared/fixtures/*.json.

// Kinds of sample webhooks.
const (
	KindGHLContact         = "ghl-contact"         // GHL ContactCreate, Ed25519 X-GHL-Signature
	KindAlowareCall        = "aloware-call"        // Aloware OutboundPhoneCall-DispositionCompleted, Bearer/Basic
	KindTextingStop        = "texting-stop"        // texting optout.stop, X-Texting-Signature
	KindTextingMessage     = "texting-message"     // texting message.received, X-Texting-Signature
	KindBroadcastAnalytics = "broadcast-analytics" // broadcast analytics_updated, X-Broadcast-Signature
)

// WebhookKinds lists the kinds SampleWebhook builds.
var WebhookKinds = []string{KindGHLContact, KindAlowareCall, KindTextingStop, KindTextingMessage, KindBroadcastAnalytics}

// WebhookSecrets are the credentials deliveries are signed with: the
// service's intake must be configured with the matching values
// (GHL_WEBHOOK_PUBLIC_KEY = the public half of GHLKey, VERITY_WEBHOOK_SECRET,
// ALOWARE_WEBHOOK_BEARER_TOKEN or ALOWARE_WEBHOOK_BASIC_USER/PASS).
type WebhookSecrets struct {
	GHLKey              ed25519.PrivateKey
	GHLLocationID       string
	VerityWebhookSecret string
	AlowareBearerToken  string
	AlowareBasicUser    string
	AlowareBasicPass    string
}

// Webhook is one signed delivery: POST Body to the service's Path with Header.
type Webhook struct {
	Kind   string
	Path   string
	Body   []byte
	Header http.Header
}

// NewRunID returns a random id that makes a run's deliveries unique (GHL
// webhookIds, message ids) so that the service does not take them for
// duplicates of an earlier run.
func NewRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SampleWebhook builds delivery number seq (from 0) of a run of kind,
// stamped with now and signed with sec.
func SampleWebhook(kind, run string, seq int, now time.Time, sec WebhookSecrets) (Webhook, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(run))
	hv := int(h.Sum32() & 0x7fffffff)
	// A valid NANP number (exchange 200–999), unique within a run of 10,000.
	phone := fmt.Sprintf("+1310%03d%04d", 200+(hv+seq/10000)%800, seq%10000)
	ts := now.UTC().Format(time.RFC3339)
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("User-Agent", "df-sandbox-deliver/1")

	var path string
	var body any
	switch kind {
	case KindGHLContact:
		if len(sec.GHLKey) != ed25519.PrivateKeySize {
			return Webhook{}, errors.New("ghl-contact needs the GHL signing key (--ghl-signing-key)")
		}
		path = "/api/webhooks/ghl"
		loc := sec.GHLLocationID
		if loc == "" {
			loc = DevGHLLocationID
		}
		last := fmt.Sprintf("Contact %d", seq+1)
		body = map[string]any{
			"type":         "ContactCreate",
			"locationId":   loc,
			"id":           fmt.Sprintf("sbxwh%s%07d", run, seq),
			"firstName":    "Sample",
			"lastName":     last,
			"name":         "Sample " + last,
			"email":        fmt.Sprintf("sample.%s.%d@example.com", run, seq),
			"phone":        phone,
			"dnd":          false,
			"tags":         []string{"sandbox"},
			"source":       "df-sandbox",
			"dateAdded":    ghlTime(now),
			"customFields": []any{},
			"timestamp":    ts,
			"webhookId":    fmt.Sprintf("sbx-%s-%06d", run, seq),
		}
	case KindAlowareCall:
		path = "/api/webhooks/aloware"
		contactID := fmt.Sprintf("%d%06d", 1+hv%9000, seq)
		body = map[string]any{
			"event": "OutboundPhoneCall-DispositionCompleted",
			"body": map[string]any{
				"id":            fmt.Sprintf("%d%06d", 1+hv%9000, seq),
				"contact_id":    contactID,
				"user_id":       "12",
				"direction":     "outbound",
				"disposition":   "Interested",
				"duration":      184,
				"talk_time":     150,
				"has_recording": false,
				"created_at":    alowareTime(now),
				"contact":       map[string]any{"id": contactID, "phone_number": phone},
			},
		}
	case KindTextingStop, KindTextingMessage:
		path = "/api/webhooks/texting"
		ev, text := "optout.stop", "STOP"
		if kind == KindTextingMessage {
			ev, text = "message.received", fmt.Sprintf("Hello from the sandbox (#%d)", seq+1)
		}
		m := map[string]any{
			"eventType":      ev,
			"messageId":      fmt.Sprintf("txt_%s_%06d", run, seq),
			"conversationId": fmt.Sprintf("conv_%s_%06d", run, seq),
			"from":           phone,
			"to":             "+18555550199",
			"body":           text,
			"timestamp":      ts,
		}
		if kind == KindTextingStop {
			m["keyword"] = "STOP"
		}
		body = m
	case KindBroadcastAnalytics:
		path = "/api/webhooks/broadcast"
		sent := 1000 + hv%1000 + seq
		body = map[string]any{
			"eventType":   "analytics_updated",
			"broadcastId": fmt.Sprintf("bc_%04d", seq%5+1),
			"analytics": map[string]any{
				"sent": sent, "delivered": sent - 50, "failed": 50, "replied": 80 + seq%20, "optedOut": 5,
			},
			"timestamp": ts,
		}
	default:
		return Webhook{}, fmt.Errorf("unknown webhook kind %q (want one of %v)", kind, WebhookKinds)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return Webhook{}, err
	}

	switch kind {
	case KindGHLContact:
		hdr.Set("X-GHL-Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(sec.GHLKey, raw)))
	case KindAlowareCall:
		switch {
		case sec.AlowareBearerToken != "":
			hdr.Set("Authorization", "Bearer "+sec.AlowareBearerToken)
		case sec.AlowareBasicUser != "" && sec.AlowareBasicPass != "":
			hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(sec.AlowareBasicUser+":"+sec.AlowareBasicPass)))
		default:
			return Webhook{}, errors.New("aloware-call needs ALOWARE_WEBHOOK_BEARER_TOKEN (or ALOWARE_WEBHOOK_BASIC_USER and _PASS)")
		}
	default:
		if sec.VerityWebhookSecret == "" {
			return Webhook{}, fmt.Errorf("%s needs VERITY_WEBHOOK_SECRET", kind)
		}
		name := "X-Texting-Signature"
		if kind == KindBroadcastAnalytics {
			name = "X-Broadcast-Signature"
		}
		mac := hmac.New(sha256.New, []byte(sec.VerityWebhookSecret))
		mac.Write(raw)
		hdr.Set(name, hex.EncodeToString(mac.Sum(nil)))
	}
	return Webhook{Kind: kind, Path: path, Body: raw, Header: hdr}, nil
}

// LoadOrCreateEd25519Key reads a PEM PKCS#8 Ed25519 private key from path,
// or generates one and writes it there (mode 0600, parent directories
// 0700) when the file does not exist; created says which.
func LoadOrCreateEd25519Key(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err = ParseEd25519PrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, false, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
		return LoadOrCreateEd25519Key(path)
	}
	if err != nil {
		return nil, false, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// ParseEd25519PrivateKey parses a PEM "PRIVATE KEY" (PKCS#8) Ed25519 key.
func ParseEd25519PrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want Ed25519", k)
	}
	return ed, nil
}

// Ed25519PublicKeyBase64 renders the public half of key as base64 SPKI DER,
// the form GHL publishes and GHL_WEBHOOK_PUBLIC_KEY accepts.
func Ed25519PublicKeyBase64(key ed25519.PrivateKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}
