package intake

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKeys are generated once per test binary: tests sign with keys they
// own, never with GHL's.
type testKeys struct {
	ed, otherEd   ed25519.PrivateKey
	rsa, otherRSA *rsa.PrivateKey
}

var getTestKeys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	// Fixed seeds keep fuzz runs reproducible.
	k.ed = ed25519.NewKeyFromSeed([]byte(strings.Repeat("e", ed25519.SeedSize)))
	k.otherEd = ed25519.NewKeyFromSeed([]byte(strings.Repeat("o", ed25519.SeedSize)))
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	return k
})

func (k testKeys) verifier() GHLVerifier {
	return GHLVerifier{Ed25519: k.ed.Public().(ed25519.PublicKey), RSA: &k.rsa.PublicKey}
}

func signEd(key ed25519.PrivateKey, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
}

func signRSA(t testing.TB, key *rsa.PrivateKey, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// assertUnauthorized checks err wraps ErrUnauthorized, starts with wantMsg
// and leaks none of the secrets.
func assertUnauthorized(t *testing.T, err error, wantMsg string, secrets ...string) {
	t.Helper()
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if !strings.HasPrefix(err.Error(), wantMsg) {
		t.Errorf("err = %q, want prefix %q", err, wantMsg)
	}
	for _, s := range secrets {
		if len(s) >= 4 && strings.Contains(err.Error(), s) {
			t.Errorf("error %q reveals a secret or signature", err)
		}
	}
}

func TestGHLVerify(t *testing.T) {
	k := getTestKeys()
	body := []byte(`{"type":"ContactCreate","id":"c1","timestamp":"2025-01-28T14:35:00Z","webhookId":"w1"}`)
	tampered := []byte(strings.Replace(string(body), "c1", "c2", 1))
	edSig := signEd(k.ed, body)
	edRaw, _ := base64.StdEncoding.DecodeString(edSig)
	rsaSig := signRSA(t, k.rsa, body)
	rsaRaw, _ := base64.StdEncoding.DecodeString(rsaSig)

	v := k.verifier()
	noRSA := GHLVerifier{Ed25519: v.Ed25519}
	tests := []struct {
		name    string
		v       GHLVerifier
		h       http.Header
		body    []byte
		wantErr string // "" = valid
	}{
		{"ed25519 valid", v, headers(HeaderGHLSignature, edSig), body, ""},
		{"ed25519 valid with spaces", v, headers(HeaderGHLSignature, "  "+edSig+" "), body, ""},
		{"ed25519 unpadded base64", v, headers(HeaderGHLSignature, strings.TrimRight(edSig, "=")), body, ""},
		{"lowercase header name", v, http.Header{"x-ghl-signature": {edSig}}, body, "missing GHL signature"}, // not canonical: net/http canonicalises real requests
		{"ed25519 tampered body", v, headers(HeaderGHLSignature, edSig), tampered, "X-GHL-Signature does not match"},
		{"ed25519 wrong key", v, headers(HeaderGHLSignature, signEd(k.otherEd, body)), body, "X-GHL-Signature does not match"},
		{"ed25519 truncated", v, headers(HeaderGHLSignature, base64.StdEncoding.EncodeToString(edRaw[:63])), body, "X-GHL-Signature is not a base64 Ed25519"},
		{"ed25519 not base64", v, headers(HeaderGHLSignature, "!!not-base64!!"), body, "X-GHL-Signature is not a base64 Ed25519"},
		{"ed25519 oversized", v, headers(HeaderGHLSignature, strings.Repeat("A", 5000)), body, "X-GHL-Signature is not a base64 Ed25519"},
		{"missing both", v, headers(), body, "missing GHL signature"},
		{"both empty", v, headers(HeaderGHLSignature, " ", HeaderWHSignature, ""), body, "missing GHL signature"},
		{"legacy only valid", v, headers(HeaderWHSignature, rsaSig), body, ""},
		{"legacy tampered body", v, headers(HeaderWHSignature, rsaSig), tampered, "X-WH-Signature does not match"},
		{"legacy wrong key", v, headers(HeaderWHSignature, signRSA(t, k.otherRSA, body)), body, "X-WH-Signature does not match"},
		{"legacy truncated", v, headers(HeaderWHSignature, base64.StdEncoding.EncodeToString(rsaRaw[:200])), body, "X-WH-Signature does not match"},
		{"legacy not base64", v, headers(HeaderWHSignature, "%%%"), body, "X-WH-Signature is not a base64"},
		{"legacy without RSA key", noRSA, headers(HeaderWHSignature, rsaSig), body, "X-WH-Signature (legacy RSA) is not accepted"},
		{"ed25519 invalid, legacy valid: no fallback", v, headers(HeaderGHLSignature, signEd(k.otherEd, body), HeaderWHSignature, rsaSig), body, "X-GHL-Signature does not match"},
		{"ed25519 valid, legacy invalid", v, headers(HeaderGHLSignature, edSig, HeaderWHSignature, "junk"), body, ""},
		{"empty ed25519 header counts as absent", v, headers(HeaderGHLSignature, "", HeaderWHSignature, rsaSig), body, ""},
		{"no Ed25519 key configured", GHLVerifier{RSA: &k.rsa.PublicKey}, headers(HeaderGHLSignature, edSig), body, "X-GHL-Signature cannot be checked"},
		{"Ed25519 key of wrong size", GHLVerifier{Ed25519: ed25519.PublicKey{1, 2, 3}}, headers(HeaderGHLSignature, edSig), body, "X-GHL-Signature cannot be checked"},
		{"zero-value RSA key", GHLVerifier{RSA: &rsa.PublicKey{}}, headers(HeaderWHSignature, rsaSig), body, "X-WH-Signature (legacy RSA) is not accepted"},
		{"empty body signed", v, headers(HeaderGHLSignature, signEd(k.ed, nil)), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Verify(tt.h, tt.body)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			assertUnauthorized(t, err, tt.wantErr, edSig, rsaSig, tt.h.Get(HeaderGHLSignature), tt.h.Get(HeaderWHSignature))
		})
	}
}

func TestCheckTimestamp(t *testing.T) {
	now := time.Date(2026, 3, 10, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		ts      time.Time
		skew    time.Duration
		wantErr string
	}{
		{"zero timestamp", time.Time{}, DefaultMaxSkew, ""},
		{"now", now, DefaultMaxSkew, ""},
		{"4m59s old", now.Add(-4*time.Minute - 59*time.Second), DefaultMaxSkew, ""},
		{"exactly 5m old", now.Add(-5 * time.Minute), DefaultMaxSkew, ""},
		{"4m in the future", now.Add(4 * time.Minute), DefaultMaxSkew, ""},
		{"5m1s old", now.Add(-5*time.Minute - time.Second), DefaultMaxSkew, "timestamp is 5m1s old, outside the 5-minute window"},
		{"6m in the future", now.Add(6 * time.Minute), DefaultMaxSkew, "timestamp is 6m0s in the future, outside the 5-minute window"},
		{"zero skew means default", now.Add(-6 * time.Minute), 0, "timestamp is 6m0s old, outside the 5-minute window"},
		{"odd skew", now.Add(-2 * time.Minute), 90 * time.Second, "timestamp is 2m0s old, outside the 1m30s window"},
		{"year 1", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), DefaultMaxSkew, "timestamp is"},
		{"far future", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), DefaultMaxSkew, "timestamp is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTimestamp(tt.ts, now, tt.skew)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckTimestamp = %v, want nil", err)
				}
				return
			}
			assertUnauthorized(t, err, tt.wantErr)
		})
	}
	// The far past relative to the far future saturates the duration.
	err := CheckTimestamp(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute)
	assertUnauthorized(t, err, "timestamp is")
}

func TestDefaultGHLKeys(t *testing.T) {
	der, err := base64.StdEncoding.DecodeString(DefaultGHLEd25519Key)
	if err != nil {
		t.Fatal(err)
	}
	raw := der[len(der)-ed25519.PublicKeySize:] // SPKI ends with the raw key
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	forms := map[string]string{
		"base64 SPKI":     DefaultGHLEd25519Key,
		"PEM":             pemKey,
		"PEM escaped \\n": strings.ReplaceAll(pemKey, "\n", `\n`),
		"raw base64":      base64.StdEncoding.EncodeToString(raw),
		"raw base64 url":  base64.RawURLEncoding.EncodeToString(raw),
	}
	for name, s := range forms {
		key, err := ParseEd25519PublicKey(s)
		if err != nil || string(key) != string(raw) {
			t.Errorf("%s: ParseEd25519PublicKey = %x, %v; want %x", name, key, err, raw)
		}
	}

	rsaKey, err := ParseRSAPublicKey(DefaultGHLRSAKey)
	if err != nil {
		t.Fatalf("ParseRSAPublicKey(DefaultGHLRSAKey): %v", err)
	}
	if rsaKey.N.BitLen() != 4096 || rsaKey.E != 65537 {
		t.Errorf("GHL RSA key: %d bits, e=%d; want 4096 bits, e=65537", rsaKey.N.BitLen(), rsaKey.E)
	}

	v, err := DefaultGHLVerifier()
	if err != nil || len(v.Ed25519) != ed25519.PublicKeySize || v.RSA == nil || !v.RSA.Equal(rsaKey) {
		t.Errorf("DefaultGHLVerifier = %+v, %v", v, err)
	}
	v, err = NewGHLVerifier("", "none")
	if err != nil || v.RSA != nil || len(v.Ed25519) != ed25519.PublicKeySize {
		t.Errorf(`NewGHLVerifier("", "none") = %+v, %v; want Ed25519 only`, v, err)
	}
	k := getTestKeys()
	v, err = NewGHLVerifier(base64.StdEncoding.EncodeToString(k.ed.Public().(ed25519.PublicKey)), pemPKIX(t, &k.rsa.PublicKey))
	if err != nil || !v.Ed25519.Equal(k.ed.Public()) || !v.RSA.Equal(&k.rsa.PublicKey) {
		t.Errorf("NewGHLVerifier(custom keys) = %+v, %v", v, err)
	}
	if _, err := NewGHLVerifier("garbage", ""); err == nil {
		t.Error("NewGHLVerifier accepted a garbage Ed25519 key")
	}
	if _, err := NewGHLVerifier("", "garbage"); err == nil {
		t.Error("NewGHLVerifier accepted a garbage RSA key")
	}
}

func pemPKIX(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestParseRSAPublicKeyForms(t *testing.T) {
	k := getTestKeys()
	pub := &k.rsa.PublicKey
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	forms := map[string]string{
		"PEM PKIX":          pemPKIX(t, pub),
		"PEM PKCS#1":        string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})),
		"base64 PKIX":       base64.StdEncoding.EncodeToString(pkix),
		"base64 PKCS#1":     base64.StdEncoding.EncodeToString(pkcs1),
		"wrapped base64":    wrap(base64.StdEncoding.EncodeToString(pkix), 64),
		"PEM escaped \\n":   strings.ReplaceAll(pemPKIX(t, pub), "\n", `\n`),
		"PEM with padding ": "\n  " + pemPKIX(t, pub) + "\n",
	}
	for name, s := range forms {
		got, err := ParseRSAPublicKey(s)
		if err != nil || !got.Equal(pub) {
			t.Errorf("%s: ParseRSAPublicKey = %v", name, err)
		}
	}
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	return b.String() + s
}

func TestParseKeyErrors(t *testing.T) {
	k := getTestKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPEM := pemPKIX(t, k.ed.Public())
	rsaPEM := pemPKIX(t, &k.rsa.PublicKey)
	for name, s := range map[string]string{
		"empty": "", "blank": "  \n", "garbage": "not a key", "bad PEM": "-----BEGIN PUBLIC KEY-----\nAAAA",
		"RSA key": rsaPEM, "wrong PEM type": strings.ReplaceAll(edPEM, "PUBLIC KEY", "PRIVATE KEY"),
		"short raw": base64.StdEncoding.EncodeToString([]byte("short")),
	} {
		if _, err := ParseEd25519PublicKey(s); err == nil {
			t.Errorf("ParseEd25519PublicKey(%s) succeeded", name)
		}
	}
	for name, s := range map[string]string{
		"empty": "", "garbage": "not a key", "bad PEM": "-----BEGIN PUBLIC KEY-----\nAAAA",
		"Ed25519 key": edPEM, "Ed25519 base64": DefaultGHLEd25519Key,
		"wrong PEM type": strings.ReplaceAll(rsaPEM, "PUBLIC KEY", "CERTIFICATE"),
		"1024-bit key":   pemPKIX(t, &small.PublicKey),
	} {
		if _, err := ParseRSAPublicKey(s); err == nil {
			t.Errorf("ParseRSAPublicKey(%s) succeeded", name)
		}
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAlowareAuth(t *testing.T) {
	const user, pass, token = "aloware-hook", "s3cret-pass-word", "tok-0123456789abcdef"
	both := AlowareAuth{BasicUser: user, BasicPass: pass, BearerToken: token}
	basicOnly := AlowareAuth{BasicUser: user, BasicPass: pass}
	bearerOnly := AlowareAuth{BearerToken: token}
	tests := []struct {
		name    string
		auth    AlowareAuth
		header  string
		wantErr string
	}{
		{"basic good", both, basic(user, pass), ""},
		{"basic good, lowercase scheme", basicOnly, "basic " + strings.TrimPrefix(basic(user, pass), "Basic "), ""},
		{"basic password with colon", AlowareAuth{BasicUser: "u", BasicPass: "a:b"}, basic("u", "a:b"), ""},
		{"bearer good", both, "Bearer " + token, ""},
		{"bearer good, odd case and spaces", bearerOnly, "BEARER   " + token + " ", ""},
		{"basic wrong password", both, basic(user, "wrong"), "invalid Aloware webhook credentials"},
		{"basic wrong user", both, basic("admin", pass), "invalid Aloware webhook credentials"},
		{"basic password prefix", both, basic(user, pass[:5]), "invalid Aloware webhook credentials"},
		{"bearer wrong", both, "Bearer nope", "invalid Aloware webhook credentials"},
		{"bearer token as basic password", both, basic(user, token), "invalid Aloware webhook credentials"},
		{"bearer when only basic configured", basicOnly, "Bearer " + token, "invalid Aloware webhook credentials"},
		{"basic when only bearer configured", bearerOnly, basic(user, pass), "invalid Aloware webhook credentials"},
		{"empty bearer", bearerOnly, "Bearer ", "invalid Aloware webhook credentials"},
		{"missing header", both, "", "missing Authorization header"},
		{"unsupported scheme", both, "Token " + token, "unsupported Authorization scheme"},
		{"malformed basic", both, "Basic %%%", "malformed Basic credentials"},
		{"basic without colon", both, "Basic " + base64.StdEncoding.EncodeToString([]byte(user+pass)), "malformed Basic credentials"},
		{"nothing configured", AlowareAuth{}, basic("", ""), "no Aloware webhook credentials are configured"},
		{"user without password is not configured", AlowareAuth{BasicUser: user}, basic(user, ""), "no Aloware webhook credentials are configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			err := tt.auth.Verify(h)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			assertUnauthorized(t, err, tt.wantErr, user, pass, token)
		})
	}
	if (AlowareAuth{}).Configured() || (AlowareAuth{BasicUser: "u"}).Configured() || !bearerOnly.Configured() || !basicOnly.Configured() {
		t.Error("Configured reports the wrong state")
	}
}

func TestVerifyHMAC(t *testing.T) {
	secret := []byte("verity-webhook-secret")
	body := readFixture(t, "texting-message-received.json")
	sig := SignHMAC(body, secret)
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		secret  []byte
		names   []string
		wantErr string
	}{
		{"good", headers("X-Texting-Signature", sig), body, secret, TextingSignatureHeaders, ""},
		{"uppercase hex", headers("X-Texting-Signature", strings.ToUpper(sig)), body, secret, TextingSignatureHeaders, ""},
		{"sha256= prefix", headers("X-Texting-Signature", "sha256="+sig), body, secret, TextingSignatureHeaders, ""},
		{"SHA256= prefix", headers("X-Texting-Signature", "SHA256="+sig), body, secret, TextingSignatureHeaders, ""},
		{"fallback header", headers("X-Signature", sig), body, secret, TextingSignatureHeaders, ""},
		{"broadcast header", headers("X-Broadcast-Signature", sig), body, secret, BroadcastSignatureHeaders, ""},
		{"first present header wins", headers("X-Texting-Signature", SignHMAC(body, []byte("x")), "X-Signature", sig), body, secret, TextingSignatureHeaders, "signature does not match"},
		{"other source's header", headers("X-Broadcast-Signature", sig), body, secret, TextingSignatureHeaders, "missing signature header X-Texting-Signature or X-Signature"},
		{"wrong secret", headers("X-Texting-Signature", SignHMAC(body, []byte("other"))), body, secret, TextingSignatureHeaders, "signature does not match"},
		{"tampered body", headers("X-Texting-Signature", sig), append([]byte(" "), body...), secret, TextingSignatureHeaders, "signature does not match"},
		{"missing", headers(), body, secret, BroadcastSignatureHeaders, "missing signature header X-Broadcast-Signature or X-Signature"},
		{"not hex", headers("X-Signature", strings.Repeat("z", 64)), body, secret, TextingSignatureHeaders, "signature is not a hex HMAC-SHA256"},
		{"too short", headers("X-Signature", sig[:62]), body, secret, TextingSignatureHeaders, "signature is not a hex HMAC-SHA256"},
		{"base64 instead of hex", headers("X-Signature", base64.StdEncoding.EncodeToString([]byte(sig[:32]))), body, secret, TextingSignatureHeaders, "signature is not a hex HMAC-SHA256"},
		{"prefix only", headers("X-Signature", "sha256="), body, secret, TextingSignatureHeaders, "signature is not a hex HMAC-SHA256"},
		{"empty secret", headers("X-Signature", SignHMAC(body, nil)), body, nil, TextingSignatureHeaders, "HMAC signature cannot be checked: no webhook secret"},
		{"no header names", headers("X-Signature", sig), body, secret, nil, "HMAC signature cannot be checked: no signature header names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyHMAC(tt.h, tt.body, tt.secret, tt.names...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyHMAC = %v, want nil", err)
				}
				return
			}
			assertUnauthorized(t, err, tt.wantErr, sig, string(secret))
		})
	}
}

func TestSignHMACVector(t *testing.T) {
	// RFC 4231, test case 2.
	got := SignHMAC([]byte("what do ya want for nothing?"), []byte("Jefe"))
	if want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Errorf("SignHMAC = %s, want %s", got, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	k := getTestKeys()
	body := readFixture(b, "ghl-contact-create.json")
	v := k.verifier()
	ed := headers(HeaderGHLSignature, signEd(k.ed, body))
	wh := headers(HeaderWHSignature, signRSA(b, k.rsa, body))
	secret := []byte("secret")
	hm := headers("X-Texting-Signature", SignHMAC(body, secret))
	auth := AlowareAuth{BearerToken: "token"}
	bearer := headers("Authorization", "Bearer token")
	b.Run("ghl-ed25519", func(b *testing.B) {
		for b.Loop() {
			if err := v.Verify(ed, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ghl-rsa2048", func(b *testing.B) {
		for b.Loop() {
			if err := v.Verify(wh, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hmac", func(b *testing.B) {
		for b.Loop() {
			if err := VerifyHMAC(hm, body, secret, TextingSignatureHeaders...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("aloware-bearer", func(b *testing.B) {
		for b.Loop() {
			if err := auth.Verify(bearer); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A small-order key (the identity point, or the point of order 2) would let
// a forged signature verify for any body: the key is refused at start.
func TestSmallOrderEd25519KeysAreRefused(t *testing.T) {
	identity := make([]byte, ed25519.PublicKeySize)
	identity[0] = 1 // (0, 1), encoded little-endian
	order2 := make([]byte, ed25519.PublicKeySize)
	order2[0] = 0xec // (0, -1): y = p-1
	for i := 1; i < 31; i++ {
		order2[i] = 0xff
	}
	order2[31] = 0x7f
	for name, raw := range map[string][]byte{"identity": identity, "order 2": order2} {
		spki, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
		if err != nil {
			t.Fatal(err)
		}
		for form, s := range map[string]string{
			"raw base64":  base64.StdEncoding.EncodeToString(raw),
			"base64 SPKI": base64.StdEncoding.EncodeToString(spki),
		} {
			if _, err := ParseEd25519PublicKey(s); err == nil || !strings.Contains(err.Error(), "small order") {
				t.Errorf("%s key as %s: err %v, want a small-order refusal", name, form, err)
			}
		}
	}
	// And the identity key really is dangerous: an all-but-trivial forged
	// signature verifies under it for any message.
	forged := make([]byte, ed25519.SignatureSize)
	forged[0] = 1 // R = identity, S = 0
	if !ed25519.Verify(identity, []byte("any body at all"), forged) {
		t.Skip("this Go's ed25519.Verify refuses the identity key by itself")
	}
}
