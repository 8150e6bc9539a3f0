package observe

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrorGroup identifies a kind of failure: errors that differ only in ids,
// numbers or hex strings share a fingerprint, different failures do not.
type ErrorGroup struct {
	Fingerprint string // stable hash of component, class and normalised message
	Component   string // where it happened: queue, sync, upstream, mcp, …
	Class       string // the error's type chain, outermost first
	Message     string // the normalised message the fingerprint is built from
}

var (
	reUUID   = regexp.MustCompile(`\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`)
	reEmail  = regexp.MustCompile(`[A-Za-z0-9._%+*-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`) // * : a masked address
	reHex    = regexp.MustCompile(`\b(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b(?:0x)?[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b`)
	reNumber = regexp.MustCompile(`[+-]?\d+(?:\.\d+)?`)
	reQuoted = regexp.MustCompile(`"[^"]{0,200}"`)
	reSpace  = regexp.MustCompile(`\s+`)
)

// NormalizeMessage replaces what varies between occurrences of one failure
// — quoted values, uuids, emails, hex ids, numbers — with placeholders.
func NormalizeMessage(msg string) string {
	msg = reQuoted.ReplaceAllString(msg, `"<s>"`)
	msg = reUUID.ReplaceAllString(msg, "<uuid>")
	msg = reEmail.ReplaceAllString(msg, "<email>")
	msg = reHex.ReplaceAllStringFunc(msg, func(s string) string {
		if len(s) < 6 {
			return s // short words like "dead" or "a1" are not ids
		}
		return "<hex>"
	})
	msg = reNumber.ReplaceAllString(msg, "<n>")
	msg = strings.TrimSpace(reSpace.ReplaceAllString(msg, " "))
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}

// errorClass is the chain of error types, outermost first, leaving out the
// anonymous wrappers of fmt.Errorf and errors.Join.
func errorClass(err error) string {
	var parts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		t := fmt.Sprintf("%T", e)
		if t == "*fmt.wrapError" || t == "*fmt.wrapErrors" || t == "*errors.joinError" || t == "*errors.errorString" {
			continue
		}
		if len(parts) == 0 || parts[len(parts)-1] != t {
			parts = append(parts, t)
		}
		if len(parts) == 8 {
			break
		}
	}
	if len(parts) == 0 {
		return "error"
	}
	return strings.Join(parts, ">")
}

// Fingerprint groups err for the error_groups table.
func Fingerprint(component string, err error) ErrorGroup {
	return FingerprintScrubbed(component, err, nil)
}

// FingerprintScrubbed is Fingerprint over scrub(err.Error()) (nil: the
// message as is), so that a secret inside an error message never reaches
// the normalised message, and a masked phone or email normalises like a
// plain one.
func FingerprintScrubbed(component string, err error, scrub func(string) string) ErrorGroup {
	msg := err.Error()
	if scrub != nil {
		msg = scrub(msg)
	}
	g := ErrorGroup{Component: component, Class: errorClass(err), Message: NormalizeMessage(msg)}
	sum := sha256.Sum256([]byte(g.Component + "\x00" + g.Class + "\x00" + g.Message))
	g.Fingerprint = hex.EncodeToString(sum[:12])
	return g
}
