package intake

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// checkNoLeak fails when an error text contains a secret or signature long
// enough not to appear by chance.
func checkNoLeak(t *testing.T, err error, values ...string) {
	t.Helper()
	for _, v := range values {
		if v = strings.TrimSpace(v); len(v) >= 16 && strings.Contains(err.Error(), v) {
			t.Fatalf("error %q reveals a secret or signature", err)
		}
	}
}

func FuzzVerifyHMAC(f *testing.F) {
	body := readFixture(f, "texting-message-received.json")
	secret := []byte("verity-webhook-secret")
	f.Add(body, secret, SignHMAC(body, secret), uint8(0))
	f.Add(body, secret, "sha256="+strings.ToUpper(SignHMAC(body, secret)), uint8(1))
	f.Add(readFixture(f, "broadcast-analytics-updated.json"), secret, "", uint8(2))
	f.Add([]byte{}, []byte{}, "00", uint8(3))
	f.Fuzz(func(t *testing.T, body, secret []byte, sig string, which uint8) {
		names := []string{"X-Texting-Signature", "X-Signature", "X-Broadcast-Signature"}
		name := names[int(which)%len(names)]
		h := http.Header{}
		h.Set(name, sig)

		err := VerifyHMAC(h, body, secret, TextingSignatureHeaders...)
		if err == nil {
			norm := strings.TrimSpace(sig)
			if len(norm) > 7 && strings.EqualFold(norm[:7], "sha256=") {
				norm = norm[7:]
			}
			if len(secret) == 0 || name == "X-Broadcast-Signature" || !strings.EqualFold(norm, SignHMAC(body, secret)) {
				t.Fatalf("accepted signature %q (header %s, secret %q)", sig, name, secret)
			}
		} else {
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			checkNoLeak(t, err, sig, string(secret))
		}

		// A genuine signature always verifies, in any accepted spelling.
		if len(secret) > 0 {
			good := SignHMAC(body, secret)
			for _, s := range []string{good, strings.ToUpper(good), "sha256=" + good, " " + good + " "} {
				if err := VerifyHMAC(http.Header{"X-Signature": {s}}, body, secret, TextingSignatureHeaders...); err != nil {
					t.Fatalf("genuine signature %q rejected: %v", s, err)
				}
			}
		}
	})
}

// ghlOracle says whether a request must verify, following the documented
// rules independently of Verify's code.
func ghlOracle(v GHLVerifier, ghlSig, whSig string, body []byte) bool {
	decode := func(s string) ([]byte, bool) {
		if len(s) > maxSignatureLen {
			return nil, false
		}
		if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
			return raw, true
		}
		raw, err := base64.RawStdEncoding.DecodeString(s)
		return raw, err == nil
	}
	if s := strings.TrimSpace(ghlSig); s != "" {
		raw, ok := decode(s)
		return ok && len(raw) == ed25519.SignatureSize && ed25519.Verify(v.Ed25519, body, raw)
	}
	if s := strings.TrimSpace(whSig); s != "" && v.RSA != nil {
		raw, ok := decode(s)
		digest := sha256.Sum256(body)
		return ok && rsa.VerifyPKCS1v15(v.RSA, crypto.SHA256, digest[:], raw) == nil
	}
	return false
}

func FuzzGHLVerify(f *testing.F) {
	for _, file := range []string{"ghl-contact-create.json", "ghl-inbound-message.json", "ghl-appointment-create.json", "ghl-docs/AppInstall.json"} {
		body := readFixture(f, file)
		for mode := range uint8(16) {
			f.Add(body, "", "", mode)
		}
	}
	f.Add([]byte(`{}`), "AAAA", "AAAA", uint8(0))
	f.Add([]byte(`{}`), strings.Repeat("A", 86), "", uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, ghlSig, whSig string, mode uint8) {
		k := getTestKeys()
		v := k.verifier()
		if mode&16 != 0 {
			v.RSA = nil
		}
		// Modes replace the fuzzed headers with real signatures, and may
		// then tamper with the body, so the valid paths get explored too.
		if mode&1 != 0 {
			ghlSig = signEd(k.ed, body)
		}
		if mode&2 != 0 {
			whSig = signRSA(t, k.rsa, body)
		}
		signed := body
		if mode&4 != 0 && len(body) > 0 {
			signed = append([]byte(nil), body...)
			signed[len(signed)/2] ^= 1
		}
		h := http.Header{}
		if ghlSig != "" || mode&8 != 0 {
			h.Set(HeaderGHLSignature, ghlSig)
		}
		if whSig != "" || mode&8 != 0 {
			h.Set(HeaderWHSignature, whSig)
		}

		err := v.Verify(h, signed)
		want := ghlOracle(v, ghlSig, whSig, signed)
		if (err == nil) != want {
			t.Fatalf("Verify = %v, oracle says valid=%v (mode %d)", err, want, mode)
		}
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			checkNoLeak(t, err, ghlSig, whSig)
		}
		if mode&1 != 0 && mode&4 == 0 && err != nil {
			t.Fatalf("genuine Ed25519 signature rejected: %v", err)
		}

		// A verifier without keys must fail cleanly, never panic.
		if (GHLVerifier{}).Verify(h, signed) == nil {
			t.Fatal("keyless verifier accepted a request")
		}
	})
}
