package intake

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrUnauthorized wraps every verification failure (HTTP 401, nothing
// stored). The error's own text says what is wrong and never includes a
// secret, credential or signature value.
var ErrUnauthorized = errors.New("unauthorized webhook")

// authError is a verification failure whose text is the detail alone;
// errors.Is(err, ErrUnauthorized) holds for it.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return ErrUnauthorized }

func unauthorized(msg string) error { return &authError{msg: msg} }

// Signature headers of GHL deliveries.
const (
	HeaderGHLSignature = "X-GHL-Signature" // base64 Ed25519 over the raw body (current)
	HeaderWHSignature  = "X-WH-Signature"  // base64 RSA-SHA256 PKCS#1 v1.5 over the raw body (legacy)
)

// Signature headers of the texting and broadcast systems, in order of
// preference: VerifyHMAC reads the first one present.
var (
	TextingSignatureHeaders   = []string{"X-Texting-Signature", "X-Signature"}
	BroadcastSignatureHeaders = []string{"X-Broadcast-Signature", "X-Signature"}
)

// DefaultMaxSkew is the replay window GHL recommends for a body's timestamp.
const DefaultMaxSkew = 5 * time.Minute

// maxSignatureLen bounds a base64 signature header before it is decoded
// (a 4096-bit RSA signature is 684 base64 characters).
const maxSignatureLen = 2048

var (
	errGHLMissing      = unauthorized("missing GHL signature: neither X-GHL-Signature nor X-WH-Signature is present")
	errGHLNoEd25519Key = unauthorized("X-GHL-Signature cannot be checked: no valid Ed25519 public key is configured")
	errGHLBadEncoding  = unauthorized("X-GHL-Signature is not a base64 Ed25519 signature")
	errGHLMismatch     = unauthorized("X-GHL-Signature does not match the body")
	errWHNoRSAKey      = unauthorized("X-WH-Signature (legacy RSA) is not accepted: no RSA public key is configured; GHL signs with X-GHL-Signature")
	errWHBadEncoding   = unauthorized("X-WH-Signature is not a base64 signature")
	errWHMismatch      = unauthorized("X-WH-Signature does not match the body")
	errAlowareNoConfig = unauthorized("no Aloware webhook credentials are configured")
	errAlowareMissing  = unauthorized("missing Authorization header (Aloware webhooks need Basic or Bearer credentials)")
	errAlowareScheme   = unauthorized("unsupported Authorization scheme (Aloware webhooks need Basic or Bearer)")
	errAlowareBadBasic = unauthorized("malformed Basic credentials")
	errAlowareBadCreds = unauthorized("invalid Aloware webhook credentials")
	errHMACNoSecret    = unauthorized("HMAC signature cannot be checked: no webhook secret is configured")
	errHMACNoHeaders   = unauthorized("HMAC signature cannot be checked: no signature header names given")
	errHMACBadEncoding = unauthorized("signature is not a hex HMAC-SHA256 (64 hex digits, optionally prefixed with sha256=)")
	errHMACMismatch    = unauthorized("signature does not match the body")
)

// GHLVerifier checks X-GHL-Signature (base64 Ed25519 over the raw body,
// current) and, when that header is absent, X-WH-Signature (base64
// RSA-SHA256 PKCS#1 v1.5, legacy). Missing both is ErrUnauthorized. When the
// Ed25519 header is present but invalid, the request is rejected without
// looking at the legacy header.
type GHLVerifier struct {
	Ed25519 ed25519.PublicKey
	RSA     *rsa.PublicKey // nil disables the legacy header (then X-WH-Signature alone is rejected)
}

// Verify checks the signature headers h against the raw body.
func (v GHLVerifier) Verify(h http.Header, body []byte) error {
	// An empty header counts as absent: there is nothing in it to verify.
	if sig := strings.TrimSpace(h.Get(HeaderGHLSignature)); sig != "" {
		if len(v.Ed25519) != ed25519.PublicKeySize {
			return errGHLNoEd25519Key // ed25519.Verify panics on a key of the wrong size
		}
		raw, ok := decodeBase64Signature(sig)
		if !ok || len(raw) != ed25519.SignatureSize {
			return errGHLBadEncoding
		}
		if !ed25519.Verify(v.Ed25519, body, raw) {
			return errGHLMismatch
		}
		return nil
	}
	if sig := strings.TrimSpace(h.Get(HeaderWHSignature)); sig != "" {
		if v.RSA == nil || v.RSA.N == nil {
			return errWHNoRSAKey
		}
		raw, ok := decodeBase64Signature(sig)
		if !ok {
			return errWHBadEncoding
		}
		digest := sha256.Sum256(body)
		if rsa.VerifyPKCS1v15(v.RSA, crypto.SHA256, digest[:], raw) != nil {
			return errWHMismatch
		}
		return nil
	}
	return errGHLMissing
}

// decodeBase64Signature decodes standard base64, padded or not.
func decodeBase64Signature(s string) ([]byte, bool) {
	if len(s) > maxSignatureLen {
		return nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, false
		}
	}
	return raw, len(raw) > 0
}

// NewGHLVerifier builds a verifier from configured keys (PEM or base64, see
// ParseEd25519PublicKey and ParseRSAPublicKey). An empty key selects GHL's
// published one; rsaKey "none" disables the legacy X-WH-Signature header.
func NewGHLVerifier(ed25519Key, rsaKey string) (GHLVerifier, error) {
	if strings.TrimSpace(ed25519Key) == "" {
		ed25519Key = DefaultGHLEd25519Key
	}
	ed, err := ParseEd25519PublicKey(ed25519Key)
	if err != nil {
		return GHLVerifier{}, fmt.Errorf("GHL Ed25519 webhook key: %w", err)
	}
	v := GHLVerifier{Ed25519: ed}
	switch k := strings.TrimSpace(rsaKey); {
	case strings.EqualFold(k, "none"):
	case k == "" && DefaultGHLRSAKey == "":
	default:
		if k == "" {
			k = DefaultGHLRSAKey
		}
		if v.RSA, err = ParseRSAPublicKey(k); err != nil {
			return GHLVerifier{}, fmt.Errorf("GHL RSA webhook key: %w", err)
		}
	}
	return v, nil
}

// DefaultGHLVerifier returns a verifier with GHL's published keys.
func DefaultGHLVerifier() (GHLVerifier, error) { return NewGHLVerifier("", "") }

// CheckTimestamp rejects a body timestamp more than maxSkew away from now
// (maxSkew <= 0 means DefaultMaxSkew). A zero ts passes: GHL's documented
// payloads carry none, and the signature is still required.
func CheckTimestamp(ts, now time.Time, maxSkew time.Duration) error {
	if ts.IsZero() {
		return nil
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	d := now.Sub(ts) // saturates at ±292 years
	if d >= -maxSkew && d <= maxSkew {
		return nil
	}
	when := "old"
	if d < 0 {
		when, d = "in the future", -d // -minDuration stays negative...
		if d < 0 {
			d = 1<<63 - 1 // ...so use the largest instead
		}
	}
	return &authError{msg: fmt.Sprintf("timestamp is %s %s, outside the %s window",
		d.Round(time.Second), when, windowName(maxSkew))}
}

// windowName says "5-minute" for whole minutes, else the duration.
func windowName(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d-minute", d/time.Minute)
	}
	return d.String()
}

// AlowareAuth holds the credentials Aloware is configured to send: Basic
// (user and password, both required to enable it) or a Bearer token; a
// request may use either one that is configured.
type AlowareAuth struct{ BasicUser, BasicPass, BearerToken string }

// Configured reports whether any credential is set (the caller answers 503
// when none is).
func (a AlowareAuth) Configured() bool {
	return (a.BasicUser != "" && a.BasicPass != "") || a.BearerToken != ""
}

// Verify checks the Authorization header. Credentials are compared as
// SHA-256 digests in constant time, so neither their content nor their
// length leaks through timing. With nothing configured it always fails.
func (a AlowareAuth) Verify(h http.Header) error {
	basicOn := a.BasicUser != "" && a.BasicPass != ""
	bearerOn := a.BearerToken != ""
	if !basicOn && !bearerOn {
		return errAlowareNoConfig
	}
	auth := strings.TrimSpace(h.Get("Authorization"))
	if auth == "" {
		return errAlowareMissing
	}
	scheme, cred, _ := strings.Cut(auth, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Basic"):
		if !basicOn {
			return errAlowareBadCreds
		}
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return errAlowareBadBasic
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return errAlowareBadBasic
		}
		// & rather than &&: both comparisons always run.
		if equalDigest(user, a.BasicUser)&equalDigest(pass, a.BasicPass) == 1 {
			return nil
		}
		return errAlowareBadCreds
	case strings.EqualFold(scheme, "Bearer"):
		if bearerOn && equalDigest(cred, a.BearerToken) == 1 {
			return nil
		}
		return errAlowareBadCreds
	}
	return errAlowareScheme
}

// equalDigest compares the SHA-256 digests of a and b in constant time and
// returns 1 when they are equal.
func equalDigest(a, b string) int {
	da, db := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:])
}

// VerifyHMAC checks the hex HMAC-SHA256 of the raw body keyed with secret,
// read from the first non-empty header of headerNames (TextingSignatureHeaders,
// BroadcastSignatureHeaders). The signature may carry a "sha256=" prefix
// and use either hex case. An empty secret never verifies.
func VerifyHMAC(h http.Header, body []byte, secret []byte, headerNames ...string) error {
	if len(secret) == 0 {
		return errHMACNoSecret
	}
	if len(headerNames) == 0 {
		return errHMACNoHeaders
	}
	sig := ""
	for _, name := range headerNames {
		if sig = strings.TrimSpace(h.Get(name)); sig != "" {
			break
		}
	}
	if sig == "" {
		return unauthorized("missing signature header " + strings.Join(headerNames, " or "))
	}
	if len(sig) > 7 && strings.EqualFold(sig[:7], "sha256=") {
		sig = sig[7:]
	}
	var got [sha256.Size]byte
	if len(sig) != hex.EncodedLen(len(got)) {
		return errHMACBadEncoding
	}
	if _, err := hex.Decode(got[:], []byte(sig)); err != nil {
		return errHMACBadEncoding
	}
	if !hmac.Equal(got[:], computeHMAC(body, secret)) {
		return errHMACMismatch
	}
	return nil
}

// SignHMAC returns the lowercase hex HMAC-SHA256 of body keyed with secret,
// as VerifyHMAC expects it (for tests, the sandbox and sample requests).
func SignHMAC(body, secret []byte) string {
	return hex.EncodeToString(computeHMAC(body, secret))
}

func computeHMAC(body, secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}
