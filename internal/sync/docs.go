package sync

import (
	"fmt"
	"strings"
)

// Docs renders the handler table as markdown (docs/sync-handlers.md), from
// the same table the worker registers, so the two cannot drift.
func Docs() string {
	var b strings.Builder
	b.WriteString("# Sync handlers\n\n")
	b.WriteString("Generated from `internal/sync` (`go test ./internal/sync -update` rewrites it). One handler per\n")
	b.WriteString("(source, event type); an event no handler takes ends `skipped` with the reason. Aloware event names\n")
	b.WriteString("are matched ignoring case, spaces and punctuation (\"Contact Created\" = \"contact-created\").\n\n")
	b.WriteString("| source | event type | needs | what it does |\n| --- | --- | --- | --- |\n")
	for _, h := range handlers {
		needs := h.needs
		if needs == "" {
			needs = "—"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", h.source, h.eventType, needs, h.description)
	}
	b.WriteString(`
## Rules every handler follows

- Each operation writes one ` + "`sync_log`" + ` row: direction, entity, source and target ids, status
  (` + "`success`, `error`, `skipped`" + `), start and finish times, error text, and the event id as correlation id.
- Phone numbers are normalised to E.164 with libphonenumber (default region US).
- Writes the middleware makes leave a fingerprint (` + "`sync_echoes`" + `, 15 minutes); an incoming change of the same
  entity with the same content is our own echo and ends ` + "`skipped`" + `, so GHL and Aloware cannot ping-pong.
- Notes and recorded messages are keyed by the source's id in ` + "`message_mappings`" + `, so a retry or a replay
  never writes them twice.
- Upstream refusals (4xx) end the event in ` + "`error`" + ` at once with a sentence saying what to fix and to replay
  it; transient failures (network, 429, 5xx, open breaker) go back through the queue's backoff, honouring
  ` + "`Retry-After`" + `. A handler whose upstream is not configured skips with the variable to set.
- Texting messages whose body is a carrier keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; START,
  UNSTOP) also update ` + "`optout_registry`" + ` and GHL's SMS DND.
- Without ` + "`GHL_CONVERSATION_PROVIDER_ID`" + `, inbound SMS are recorded as contact notes (GHL's inbound-message
  API needs a conversation provider). Outbound messages are always recorded as notes: sending them through
  GHL's outbound API would text the contact a second time.
`)
	return b.String()
}
