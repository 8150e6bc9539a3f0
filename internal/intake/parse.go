// Package intake turns a verified webhook body into what the event row needs
// (event type, entity, dedupe key) and verifies each provider's signature or
// credentials. Everything here is a pure function of its inputs: no database,
// no HTTP server, no clock (callers pass "now").
//
// Parsers run on the hot path (~15k requests/s), so each one does a single
// json.Unmarshal into a small struct whose fields decode themselves without
// copying (see parse_json.go), and no regular expressions.
package intake

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Source names (also the URL segment /api/webhooks/{source} and webhook_events.source).
const (
	SourceGHL       = "ghl"
	SourceAloware   = "aloware"
	SourceTexting   = "texting"
	SourceBroadcast = "broadcast"
)

// Bounds of the extracted text columns. Longer values are cut (at a rune
// boundary); control characters and invalid UTF-8 are dropped.
const (
	MaxEventTypeLen = 100 // runes
	MaxEntityIDLen  = 200 // runes
)

// UnknownEventType is the event type of a payload that names none.
const UnknownEventType = "unknown"

// Parsed is what intake extracts from a verified body.
type Parsed struct {
	EventType  string    // never empty: "unknown" when the payload names none
	EntityType string    // "" when unknown; e.g. contact, appointment, opportunity, message, call, note, task, invoice, order, product, price, record, relation, association, user, location, app, broadcast, conversation, campaign, object_schema, email_stats
	EntityID   string    // "" when none
	DedupeKey  string    // always non-empty, prefixed with the source
	Timestamp  time.Time // GHL body `timestamp` (RFC3339 or epoch millis/seconds); zero when absent/unparseable, and always zero for other sources
}

// ErrMalformed wraps every parse failure that should become HTTP 400 (not
// JSON, not a JSON object, not storable as jsonb, required field missing).
// The error's own text is the detail, e.g. "malformed JSON: ...".
var ErrMalformed = errors.New("malformed webhook body")

// ErrUnknownSource is returned by Parse for a source it does not know (HTTP 404).
var ErrUnknownSource = errors.New("unknown webhook source")

// malformedError is a parse failure whose text is the detail alone;
// errors.Is(err, ErrMalformed) holds for it.
type malformedError struct{ msg string }

func (e *malformedError) Error() string { return e.msg }
func (e *malformedError) Unwrap() error { return ErrMalformed }

func malformed(msg string) error { return &malformedError{msg: msg} }

var (
	errTextingNeedsEventType = malformed("texting webhook needs eventType")
	errBroadcastNeedsFields  = malformed("broadcast webhook needs broadcastId and eventType")
)

// Parse dispatches on source; an unknown source returns an error wrapping
// ErrUnknownSource.
func Parse(source string, body []byte) (Parsed, error) {
	switch source {
	case SourceGHL:
		return ParseGHL(body)
	case SourceAloware:
		return ParseAloware(body)
	case SourceTexting:
		return ParseTexting(body)
	case SourceBroadcast:
		return ParseBroadcast(body)
	}
	return Parsed{}, fmt.Errorf("%w %q", ErrUnknownSource, cleanText(source, 40))
}

// ghlBody holds the top-level fields of a GHL webhook that intake reads.
// Every field type tolerates any JSON value (see parse_json.go), except the
// two nested objects, whose type mismatches decodeObject tolerates. Like all
// of encoding/json, keys match case-insensitively ("ID" fills ID); GHL's keys
// are camelCase, and of repeated keys the last one wins.
type ghlBody struct {
	Type      textValue `json:"type"`
	WebhookID textValue `json:"webhookId"`
	Timestamp tsValue   `json:"timestamp"`

	// Entity id candidates, in order of preference (see
	// fixtures/ghl-docs/README.md for which event carries which).
	ID             idValue  `json:"id"`
	UnderscoreID   idValue  `json:"_id"`
	Appointment    nestedID `json:"appointment"`
	MessageID      idValue  `json:"messageId"`
	WebhookPayload nestedID `json:"webhookPayload"`
	EmailMessageID idValue  `json:"emailMessageId"`
	ConversationID idValue  `json:"conversationId"`

	// Shape hints for payloads whose `type` names no event (GHL's docs show
	// Invoice*, Product*, Record*, ... without one, and Price*/provider
	// messages with a `type` that is something else).
	AppID                  presence `json:"appId"`
	InvoiceNumber          presence `json:"invoiceNumber"`
	FulfillmentStatus      presence `json:"fulfillmentStatus"`
	ProductType            presence `json:"productType"`
	Product                presence `json:"product"`
	AssociationType        presence `json:"associationType"`
	FirstRecordID          presence `json:"firstRecordId"`
	PrimaryDisplayProperty presence `json:"primaryDisplayProperty"`
	Owners                 presence `json:"owners"`
}

// ParseGHL extracts the event of a GoHighLevel webhook.
//
//   - EventType is `type` when it is a non-empty string, else "unknown".
//     Some documented payloads carry a `type` that is not an event name
//     ("one_time" on prices, "SMS"/"Email" on ProviderOutboundMessage); it is
//     kept as is, and the entity type is then guessed from the payload's shape.
//   - EntityID is the first non-empty string (or number) of `id`, `_id`,
//     `appointment.id`, `messageId`, `webhookPayload.id`, `emailMessageId`,
//     `conversationId`. GHL's SMS message examples carry no message id, so
//     their EntityID falls back to the conversation id; email examples use
//     `emailMessageId`. App events (INSTALL, UNINSTALL, PLAN_CHANGE) have no id
//     of their own: EntityID is "" and handlers key them by `appId` +
//     `locationId`/`companyId` from the payload (appId alone is the same for
//     every installation of the app, so it would not identify anything).
//   - DedupeKey is "ghl:wh:<webhookId>" when the body has a non-empty string
//     `webhookId`, else "ghl:sha256:<hex sha256 of the raw body>".
//   - Timestamp is the body's `timestamp` (RFC 3339, or epoch seconds or
//     milliseconds as number or digit string).
func ParseGHL(body []byte) (Parsed, error) {
	var b ghlBody
	if err := decodeObject(body, &b); err != nil {
		return Parsed{}, err
	}
	p := Parsed{
		EventType: eventType(string(b.Type)),
		Timestamp: b.Timestamp.t,
	}
	p.EntityType = ghlEntityType(p.EventType)
	if p.EntityType == "" {
		p.EntityType = b.guessEntityType()
	}
	p.EntityID = firstID(
		string(b.ID), string(b.UnderscoreID), string(b.Appointment.ID), string(b.MessageID),
		string(b.WebhookPayload.ID), string(b.EmailMessageID), string(b.ConversationID))
	if wh := strings.TrimSpace(string(b.WebhookID)); wh != "" {
		p.DedupeKey = "ghl:wh:" + keyPart(wh)
	} else {
		p.DedupeKey = bodyHashKey("ghl:sha256:", body)
	}
	return p, nil
}

// ghlEventPrefixes maps event-name prefixes to entity types, for the event
// families GHL names <Entity><Action> (ContactCreate, OpportunityStageUpdate, ...).
var ghlEventPrefixes = [...]struct{ prefix, entity string }{
	{"Contact", "contact"},
	{"Appointment", "appointment"},
	{"Opportunity", "opportunity"},
	{"Note", "note"},
	{"Task", "task"},
	{"Invoice", "invoice"},
	{"Order", "order"},
	{"Product", "product"},
	{"Price", "price"},
	{"Record", "record"},
	{"Relation", "relation"},
	{"Association", "association"},
	{"User", "user"},
	{"Location", "location"},
	{"ObjectSchema", "object_schema"},
	{"CampaignStatusUpdate", "campaign"},
	{"ConversationUnread", "conversation"},
}

// ghlEntityType maps a GHL event type to its entity type, "" when the event
// type names no known event.
func ghlEntityType(eventType string) string {
	switch eventType {
	case "InboundMessage", "OutboundMessage", "ProviderOutboundMessage":
		return "message"
	case "INSTALL", "UNINSTALL", "PLAN_CHANGE":
		return "app"
	case "LCEmailStats":
		return "email_stats"
	}
	for _, e := range ghlEventPrefixes {
		if strings.HasPrefix(eventType, e.prefix) {
			return e.entity
		}
	}
	return ""
}

// guessEntityType infers the entity of a payload whose `type` names no
// event, from keys that only that entity's documented payload carries.
func (b *ghlBody) guessEntityType() string {
	switch {
	case b.Appointment.ID != "":
		return "appointment"
	case b.WebhookPayload.ID != "":
		return "email_stats"
	case bool(b.InvoiceNumber):
		return "invoice"
	case bool(b.FulfillmentStatus):
		return "order"
	case bool(b.ProductType):
		return "product"
	case b.UnderscoreID != "" && bool(b.Product):
		return "price"
	case bool(b.AssociationType):
		return "association"
	case bool(b.FirstRecordID):
		return "relation"
	case bool(b.PrimaryDisplayProperty):
		return "object_schema"
	case bool(b.Owners):
		return "record"
	case b.MessageID != "" || b.EmailMessageID != "":
		return "message" // ProviderOutboundMessage: `type` is the channel
	case bool(b.AppID):
		return "app"
	}
	return ""
}

// alowareBody is Aloware's {event, body} envelope.
type alowareBody struct {
	Event textValue `json:"event"`
	Body  nestedID  `json:"body"`
}

// ParseAloware extracts the event of an Aloware webhook: EventType is
// `event`; the entity type comes from the event name (…Call… → call,
// …SMS… → message, …Contact… → contact, …Appointment… → appointment);
// EntityID is `body.id` (string, or number as its decimal text). Aloware
// deliveries carry no delivery id, so DedupeKey is
// "aloware:sha256:<hex sha256 of the raw body>".
func ParseAloware(body []byte) (Parsed, error) {
	var b alowareBody
	if err := decodeObject(body, &b); err != nil {
		return Parsed{}, err
	}
	p := Parsed{
		EventType: eventType(string(b.Event)),
		EntityID:  cleanText(string(b.Body.ID), MaxEntityIDLen),
		DedupeKey: bodyHashKey("aloware:sha256:", body),
	}
	switch ev := p.EventType; {
	case strings.Contains(ev, "Call"):
		p.EntityType = "call"
	case strings.Contains(ev, "SMS"):
		p.EntityType = "message"
	case strings.Contains(ev, "Contact"):
		p.EntityType = "contact"
	case strings.Contains(ev, "Appointment"):
		p.EntityType = "appointment"
	}
	return p, nil
}

// textingBody holds the fields of a texting-system webhook intake reads.
type textingBody struct {
	EventType textValue `json:"eventType"`
	MessageID idValue   `json:"messageId"`
	From      idValue   `json:"from"`
	Phone     idValue   `json:"phone"`
}

// ParseTexting extracts the event of a texting-system webhook. `eventType`
// is required. message.* events are about the message `messageId`;
// optout.* events about the contact `from` (or `phone`). DedupeKey is
// "texting:<eventType>:<messageId>" when the body has a messageId, else
// "texting:sha256:<hex sha256 of the raw body>".
func ParseTexting(body []byte) (Parsed, error) {
	var b textingBody
	if err := decodeObject(body, &b); err != nil {
		return Parsed{}, err
	}
	ev := cleanText(string(b.EventType), MaxEventTypeLen)
	if ev == "" {
		return Parsed{}, errTextingNeedsEventType
	}
	p := Parsed{EventType: ev}
	switch {
	case strings.HasPrefix(ev, "message."):
		p.EntityType = "message"
		p.EntityID = cleanText(string(b.MessageID), MaxEntityIDLen)
	case strings.HasPrefix(ev, "optout."):
		p.EntityType = "contact"
		p.EntityID = firstID(string(b.From), string(b.Phone))
	}
	// The key joins two fields with ':'; an event type that contains one
	// could make two different deliveries share a key, so it falls back to
	// the body hash (no real event type contains ':').
	if id := strings.TrimSpace(string(b.MessageID)); id != "" && !strings.Contains(ev, ":") {
		p.DedupeKey = "texting:" + ev + ":" + keyPart(id)
	} else {
		p.DedupeKey = bodyHashKey("texting:sha256:", body)
	}
	return p, nil
}

// broadcastBody holds the fields of a broadcast-system webhook intake reads.
type broadcastBody struct {
	EventType   textValue `json:"eventType"`
	BroadcastID idValue   `json:"broadcastId"`
}

// ParseBroadcast extracts the event of a broadcast-system webhook:
// `broadcastId` and `eventType` are required; the entity is the broadcast.
// DedupeKey is "broadcast:sha256:<hex sha256 of the raw body>".
func ParseBroadcast(body []byte) (Parsed, error) {
	var b broadcastBody
	if err := decodeObject(body, &b); err != nil {
		return Parsed{}, err
	}
	ev := cleanText(string(b.EventType), MaxEventTypeLen)
	id := cleanText(string(b.BroadcastID), MaxEntityIDLen)
	if ev == "" || id == "" {
		return Parsed{}, errBroadcastNeedsFields
	}
	return Parsed{
		EventType:  ev,
		EntityType: "broadcast",
		EntityID:   id,
		DedupeKey:  bodyHashKey("broadcast:sha256:", body),
	}, nil
}

// eventType cleans a raw event type, "unknown" when nothing is left.
func eventType(raw string) string {
	if ev := cleanText(raw, MaxEventTypeLen); ev != "" {
		return ev
	}
	return UnknownEventType
}

// firstID returns the first candidate that is non-empty once cleaned.
func firstID(candidates ...string) string {
	for _, c := range candidates {
		if id := cleanText(c, MaxEntityIDLen); id != "" {
			return id
		}
	}
	return ""
}

// maxKeyPartLen bounds a provider id used verbatim in a dedupe key (the key
// sits in a unique btree index, whose entries must stay small).
const maxKeyPartLen = 200

// keyPart returns a provider id fit for a dedupe key: the id itself when it
// is short, valid UTF-8 and free of control characters, else "sha256-" and
// the hex digest of the id. Hashing rather than cleaning or cutting keeps two
// different ids from sharing a key.
func keyPart(id string) string {
	if len(id) <= maxKeyPartLen && isCleanText(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:])
}

// bodyHashKey returns prefix followed by the hex SHA-256 of the raw body.
func bodyHashKey(prefix string, body []byte) string {
	sum := sha256.Sum256(body)
	var buf [64]byte
	hex.Encode(buf[:], sum[:])
	return prefix + string(buf[:])
}
