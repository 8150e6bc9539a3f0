package intake

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
)

// DefaultGHLEd25519Key is GHL's published key for X-GHL-Signature (base64
// SPKI DER), from GHL's Webhook Integration Guide.
const DefaultGHLEd25519Key = "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg="

// DefaultGHLRSAKey is GHL's published 4096-bit RSA public key for the legacy
// X-WH-Signature header, as printed under "GHL Public Key" in GHL's Webhook
// Integration Guide (https://marketplace.gohighlevel.com/docs/webhook/WebhookIntegrationGuide)
// and its "Webhook Authentication" guide. GHL has announced the retirement of
// X-WH-Signature in favour of X-GHL-Signature; GHL_WEBHOOK_RSA_PUBLIC_KEY
// overrides this key (NewGHLVerifier).
const DefaultGHLRSAKey = `-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
`

// minRSABits is the smallest RSA key accepted for webhook signatures.
const minRSABits = 2048

// ParseEd25519PublicKey accepts PEM ("-----BEGIN PUBLIC KEY-----", SPKI),
// bare base64 SPKI DER, or the raw 32-byte key in base64. A PEM pasted into
// an environment variable with literal "\n" sequences is accepted too.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	der, pemType, err := keyBytes(s)
	if err != nil {
		return nil, err
	}
	if pemType == "" && len(der) == ed25519.PublicKeySize {
		return checkEd25519Point(ed25519.PublicKey(der))
	}
	if pemType != "" && pemType != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", pemType)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not an SPKI public key: %w", err)
	}
	ed, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want Ed25519", key)
	}
	return checkEd25519Point(ed)
}

// checkEd25519Point refuses a key that is not a point of the curve or is of
// small order: with such a key (the identity, say) a forged signature
// verifies for any body, so a misconfigured GHL_WEBHOOK_PUBLIC_KEY must stop
// the service instead of admitting everyone.
func checkEd25519Point(k ed25519.PublicKey) (ed25519.PublicKey, error) {
	p, err := new(edwards25519.Point).SetBytes(k)
	if err != nil {
		return nil, fmt.Errorf("not a valid Ed25519 public key: %w", err)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, errors.New("Ed25519 public key is of small order: any signature would verify against it")
	}
	return k, nil
}

// ParseRSAPublicKey accepts PEM PKIX ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC
// KEY"), or bare base64 DER of either. Keys under 2048 bits are refused.
func ParseRSAPublicKey(s string) (*rsa.PublicKey, error) {
	der, pemType, err := keyBytes(s)
	if err != nil {
		return nil, err
	}
	var key *rsa.PublicKey
	switch pemType {
	case "RSA PUBLIC KEY":
		if key, err = x509.ParsePKCS1PublicKey(der); err != nil {
			return nil, fmt.Errorf("not a PKCS#1 RSA public key: %w", err)
		}
	case "PUBLIC KEY", "":
		pub, pkixErr := x509.ParsePKIXPublicKey(der)
		switch {
		case pkixErr == nil:
			var ok bool
			if key, ok = pub.(*rsa.PublicKey); !ok {
				return nil, fmt.Errorf("public key is %T, want RSA", pub)
			}
		case pemType == "":
			if key, err = x509.ParsePKCS1PublicKey(der); err != nil {
				return nil, errors.New("not a PKIX or PKCS#1 RSA public key")
			}
		default:
			return nil, fmt.Errorf("not a PKIX public key: %w", pkixErr)
		}
	default:
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", pemType)
	}
	if bits := key.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("RSA key has %d bits, want at least %d", bits, minRSABits)
	}
	return key, nil
}

// keyBytes returns the DER of a PEM block (and its type) or of bare base64.
func keyBytes(s string) (der []byte, pemType string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, "", errors.New("empty key")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		s = strings.ReplaceAll(s, `\n`, "\n")
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return nil, "", errors.New("malformed PEM")
		}
		return block.Bytes, block.Type, nil
	}
	compact := strings.Join(strings.Fields(s), "")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(compact); err == nil {
			return der, "", nil
		}
	}
	return nil, "", errors.New("key is neither PEM nor base64")
}
