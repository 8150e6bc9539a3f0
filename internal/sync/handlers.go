package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/df-middleware/df-middleware/internal/intake"
	"github.com/df-middleware/df-middleware/internal/queue"
	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream/aloware"
	"github.com/df-middleware/df-middleware/internal/upstream/ghl"
)

// handler is one registry entry.
type handler struct {
	source, eventType, description string
	needs                          string // "ghl", "aloware", "ghl+aloware" or ""
	fn                             func(e *Engine, ctx context.Context, job queue.Job) error
}

// handlers is the table the worker, the docs and the tools read.
var handlers = []handler{
	{"ghl", "ContactCreate", "create or update the Aloware contact and keep the mapping", "aloware", (*Engine).ghlContactToAloware},
	{"ghl", "ContactUpdate", "update the Aloware contact and keep the mapping", "aloware", (*Engine).ghlContactToAloware},
	{"ghl", "ContactDelete", "retire the contact mapping (Aloware has no delete)", "", (*Engine).ghlContactDelete},
	{"ghl", "ContactDndUpdate", "record the phone's opt-out state from GHL's DND flag", "", (*Engine).ghlContactDND},
	{"aloware", "Contact Created", "upsert the GHL contact and keep the mapping", "ghl", (*Engine).alowareContactToGHL},
	{"aloware", "Contact Updated", "upsert the GHL contact and keep the mapping", "ghl", (*Engine).alowareContactToGHL},
	{"aloware", "OutboundPhoneCall-DispositionCompleted", "add a call note to the mapped GHL contact (created when missing)", "ghl", (*Engine).alowareCallToGHL},
	{"aloware", "InboundPhoneCall-DispositionCompleted", "add a call note to the mapped GHL contact (created when missing)", "ghl", (*Engine).alowareCallToGHL},
	{"aloware", "InboundSMS-DispositionCompleted", "record the SMS on the mapped GHL contact's conversation (or as a note)", "ghl", (*Engine).alowareSMSToGHL},
	{"aloware", "OutboundSMS-DispositionCompleted", "record the SMS on the mapped GHL contact as a note", "ghl", (*Engine).alowareSMSToGHL},
	{"texting", "message.received", "record the inbound message in GHL (conversation or note); STOP/START keywords update the opt-out first, even without GHL", "", (*Engine).textingMessage},
	{"texting", "message.sent", "record the outbound message on the GHL contact as a note", "ghl", (*Engine).textingMessage},
	{"texting", "message.delivered", "update the message mapping's delivery status", "", (*Engine).textingStatus},
	{"texting", "message.failed", "update the message mapping's delivery status", "", (*Engine).textingStatus},
	{"texting", "optout.stop", "record the opt-out and set DND on the GHL contact", "", (*Engine).textingOptOut},
	{"texting", "optout.help", "log the HELP request", "", (*Engine).textingHelp},
	{"broadcast", "analytics_updated", "store the broadcast's latest analytics", "", (*Engine).broadcastAnalytics},
	{"broadcast", "broadcast_completed", "store the final analytics and mark the broadcast completed", "", (*Engine).broadcastAnalytics},
}

// NormalizeAlowareEvent is intake's: the allowlist and the registry must
// fold event names the same way.
var NormalizeAlowareEvent = intake.NormalizeAlowareEvent

// Register adds every handler to the registry. Handlers whose upstream is
// not configured are registered too and skip with a reason naming the
// missing variable, so the event is visibly parked rather than silently
// ignored.
func (e *Engine) Register(reg *queue.Registry) {
	reg.SetNormalizer("aloware", NormalizeAlowareEvent)
	for _, h := range handlers {
		h := h
		reg.Register(h.source, h.eventType, h.description, queue.HandlerFunc(func(ctx context.Context, job queue.Job) error {
			if missing := e.missing(h.needs); missing != "" {
				return queue.Skip(missing)
			}
			return h.fn(e, ctx, job)
		}))
	}
}

func (e *Engine) missing(needs string) string {
	if strings.Contains(needs, "ghl") && e.ghl == nil {
		return "GHL is not configured (set GHL_API_KEY and GHL_LOCATION_ID); replay the event once it is"
	}
	if strings.Contains(needs, "aloware") && e.aloware == nil {
		return "Aloware is not configured (set ALOWARE_API_TOKEN); replay the event once it is"
	}
	return ""
}

func decode(job queue.Job, v any) error {
	if err := json.Unmarshal(job.Payload, v); err != nil {
		return permanent("payload of %s/%s does not have the expected shape: %v", job.Source, job.EventType, err)
	}
	return nil
}

// flexString accepts a JSON string or number (Aloware sends ids both ways).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", b)
	}
	*f = flexString(n.String())
	return nil
}

// ---- GHL ----

type ghlContactPayload struct {
	ID        string `json:"id"`
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Email     string `json:"email"`
	Phone     string `json:"phone"`
	DND       *bool  `json:"dnd"`
}

func (e *Engine) ghlContactToAloware(ctx context.Context, job queue.Job) error {
	var p ghlContactPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{GHLToAloware, "contact", "", ""}, func() (string, error) { return "", err })
	}
	o := op{GHLToAloware, "contact", p.ID, p.ID}
	return e.run(ctx, job, o, func() (string, error) {
		if p.ID == "" {
			return "", permanent("GHL contact event without an id")
		}
		phone := e.E164(p.Phone)
		fp := contactFingerprint(p.FirstName, p.LastName, p.Email, phone)
		if echo, err := e.st.IsEcho(ctx, "ghl", fp, p.ID, phoneKey(phone)); err != nil {
			return "", err
		} else if echo {
			return "", skip("echo of the middleware's own write to GHL contact %s", p.ID)
		}
		if phone == "" {
			return "", skip("GHL contact %s has no valid phone number; Aloware contacts need one", p.ID)
		}
		// Remember the write before making it: Aloware's webhook about it may
		// be processed before this handler gets to record the new id.
		if err := e.st.RecordEcho(ctx, "aloware", phoneKey(phone), fp, job.ID, e.cfg.EchoTTL); err != nil {
			return "", err
		}
		c, _, err := e.aloware.UpsertContact(ctx, aloware.ContactInput{
			PhoneNumber: phone, FirstName: p.FirstName, LastName: p.LastName, Email: p.Email,
			LeadSource: "GHL", ForceUpdate: true,
		})
		if err != nil {
			return "", err
		}
		if err := e.st.RecordEcho(ctx, "aloware", c.ID, fp, job.ID, e.cfg.EchoTTL); err != nil {
			return c.ID, err
		}
		_, err = e.st.LinkContacts(ctx, p.ID, c.ID, phone, p.Email)
		return c.ID, err
	})
}

func (e *Engine) ghlContactDelete(ctx context.Context, job queue.Job) error {
	var p ghlContactPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{GHLToStore, "contact", "", ""}, func() (string, error) { return "", err })
	}
	return e.run(ctx, job, op{GHLToStore, "contact", p.ID, p.ID}, func() (string, error) {
		retired, err := e.st.RetireMapping(ctx, p.ID)
		if err != nil {
			return "", err
		}
		if !retired {
			return "", skip("no live mapping for deleted GHL contact %s", p.ID)
		}
		return "", nil
	})
}

func (e *Engine) ghlContactDND(ctx context.Context, job queue.Job) error {
	var p ghlContactPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{GHLToStore, "optout", "", ""}, func() (string, error) { return "", err })
	}
	return e.run(ctx, job, op{GHLToStore, "optout", p.ID, p.ID}, func() (string, error) {
		phone := e.E164(p.Phone)
		if phone == "" || p.DND == nil {
			return "", skip("GHL DND update for %s carries no phone or no dnd flag", p.ID)
		}
		status := "opted_in"
		if *p.DND {
			status = "opted_out"
		}
		return phone, e.st.SetOptOut(ctx, store.OptOut{PhoneE164: phone, Status: status, Keyword: "GHL DND", Source: "ghl", EventID: job.ID})
	})
}

// ---- Aloware ----

type alowareContact struct {
	ID          flexString `json:"id"`
	FirstName   string     `json:"first_name"`
	LastName    string     `json:"last_name"`
	Email       string     `json:"email"`
	PhoneNumber string     `json:"phone_number"`
}

type alowareEnvelope[T any] struct {
	Event string `json:"event"`
	Body  T      `json:"body"`
}

func (e *Engine) alowareContactToGHL(ctx context.Context, job queue.Job) error {
	var p alowareEnvelope[alowareContact]
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{AlowareToGHL, "contact", "", ""}, func() (string, error) { return "", err })
	}
	c := p.Body
	id := string(c.ID)
	return e.run(ctx, job, op{AlowareToGHL, "contact", id, id}, func() (string, error) {
		if id == "" {
			return "", permanent("Aloware contact event without body.id")
		}
		phone := e.E164(c.PhoneNumber)
		fp := contactFingerprint(c.FirstName, c.LastName, c.Email, phone)
		if echo, err := e.st.IsEcho(ctx, "aloware", fp, id, phoneKey(phone)); err != nil {
			return "", err
		} else if echo {
			return "", skip("echo of the middleware's own write to Aloware contact %s", id)
		}
		if phone == "" && c.Email == "" {
			return "", skip("Aloware contact %s has neither a valid phone nor an email to match in GHL", id)
		}
		if phone != "" {
			if err := e.st.RecordEcho(ctx, "ghl", phoneKey(phone), fp, job.ID, e.cfg.EchoTTL); err != nil {
				return "", err
			}
		}
		gc, _, err := e.ghl.UpsertContact(ctx, ghl.ContactInput{FirstName: c.FirstName, LastName: c.LastName,
			Email: c.Email, Phone: phone, Source: "Aloware"})
		if err != nil {
			return "", err
		}
		if err := e.st.RecordEcho(ctx, "ghl", gc.ID, fp, job.ID, e.cfg.EchoTTL); err != nil {
			return gc.ID, err
		}
		_, err = e.st.LinkContacts(ctx, gc.ID, id, phone, c.Email)
		return gc.ID, err
	})
}

// phoneKey is the echo key of a write whose target id is not known until
// the upstream answers.
func phoneKey(phoneE164 string) string {
	if phoneE164 == "" {
		return ""
	}
	return "phone:" + phoneE164
}

// resolveGHLContact finds the GHL contact of an Aloware contact: the mapping
// first, then GHL's duplicate search by phone, else it creates the contact.
func (e *Engine) resolveGHLContact(ctx context.Context, jobID, alowareID string, c alowareContact, phone string) (string, error) {
	if alowareID != "" {
		if m, err := e.st.MappingBy(ctx, "aloware_id", alowareID); err == nil && m.GHLID != "" {
			return m.GHLID, nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	if phone == "" {
		return "", permanent("cannot find or create the GHL contact: the event has no valid phone number")
	}
	if m, err := e.st.MappingBy(ctx, "phone", phone); err == nil && m.GHLID != "" {
		return m.GHLID, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	dup, err := e.ghl.FindDuplicate(ctx, phone, "")
	if err != nil {
		return "", err
	}
	var ghlID string
	if dup != nil {
		ghlID = dup.ID
	} else {
		fp := contactFingerprint(c.FirstName, c.LastName, c.Email, phone)
		if err := e.st.RecordEcho(ctx, "ghl", phoneKey(phone), fp, jobID, e.cfg.EchoTTL); err != nil {
			return "", err
		}
		gc, _, err := e.ghl.UpsertContact(ctx, ghl.ContactInput{FirstName: c.FirstName, LastName: c.LastName,
			Email: c.Email, Phone: phone, Source: "Aloware"})
		if err != nil {
			return "", err
		}
		ghlID = gc.ID
		if err := e.st.RecordEcho(ctx, "ghl", gc.ID, fp, jobID, e.cfg.EchoTTL); err != nil {
			return "", err
		}
	}
	if alowareID != "" {
		if _, err := e.st.LinkContacts(ctx, ghlID, alowareID, phone, c.Email); err != nil {
			return "", err
		}
	}
	return ghlID, nil
}

type alowareCall struct {
	ID           flexString     `json:"id"`
	ContactID    flexString     `json:"contact_id"`
	Direction    string         `json:"direction"`
	Disposition  string         `json:"disposition"`
	Duration     int            `json:"duration"`
	TalkTime     int            `json:"talk_time"`
	RecordingURL string         `json:"recording_url"`
	CreatedAt    string         `json:"created_at"`
	Contact      alowareContact `json:"contact"`
}

// alreadyDone reports an operation recorded by an earlier attempt of the
// same event, so a retry after a partial success does not write twice.
func (e *Engine) alreadyDone(ctx context.Context, source, id string) (string, bool, error) {
	m, err := e.st.GetMessageMapping(ctx, source, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return m.GHLMessageID, m.GHLMessageID != "", nil
}

func (e *Engine) alowareCallToGHL(ctx context.Context, job queue.Job) error {
	var p alowareEnvelope[alowareCall]
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{AlowareToGHL, "call", "", ""}, func() (string, error) { return "", err })
	}
	call := p.Body
	callID := string(call.ID)
	return e.run(ctx, job, op{AlowareToGHL, "call", callID, callID}, func() (string, error) {
		if callID == "" {
			return "", permanent("Aloware call event without body.id")
		}
		if noteID, done, err := e.alreadyDone(ctx, "aloware-call", callID); err != nil || done {
			return noteID, err
		}
		contactID := string(call.ContactID)
		if contactID == "" {
			contactID = string(call.Contact.ID)
		}
		ghlID, err := e.resolveGHLContact(ctx, job.ID, contactID, call.Contact, e.E164(call.Contact.PhoneNumber))
		if err != nil {
			return "", err
		}
		noteID, err := e.ghl.AddNote(ctx, ghlID, callNote(p.Event, call))
		if err != nil {
			return "", err
		}
		return noteID, e.st.UpsertMessageMapping(ctx, store.MessageMapping{Source: "aloware-call", SourceMessageID: callID,
			GHLMessageID: noteID, GHLContactID: ghlID, Status: "noted"})
	})
}

func callNote(event string, c alowareCall) string {
	dir := c.Direction
	if dir == "" {
		dir = strings.ToLower(strings.TrimSuffix(strings.SplitN(event, "PhoneCall", 2)[0], "-"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Aloware %s call %s", dir, c.ID)
	if c.Disposition != "" {
		fmt.Fprintf(&b, " — disposition: %s", c.Disposition)
	}
	fmt.Fprintf(&b, "\nDuration %ds, talk time %ds", c.Duration, c.TalkTime)
	if c.CreatedAt != "" {
		fmt.Fprintf(&b, ", at %s", c.CreatedAt)
	}
	if c.RecordingURL != "" {
		fmt.Fprintf(&b, "\nRecording: %s", c.RecordingURL)
	}
	return b.String()
}

type alowareSMS struct {
	ID             flexString     `json:"id"`
	ContactID      flexString     `json:"contact_id"`
	Body           string         `json:"body"`
	LeadNumber     string         `json:"lead_number"`
	IncomingNumber string         `json:"incoming_number"`
	CreatedAt      string         `json:"created_at"`
	Contact        alowareContact `json:"contact"`
}

func (e *Engine) alowareSMSToGHL(ctx context.Context, job queue.Job) error {
	var p alowareEnvelope[alowareSMS]
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{AlowareToGHL, "message", "", ""}, func() (string, error) { return "", err })
	}
	sms := p.Body
	smsID := string(sms.ID)
	inbound := strings.HasPrefix(NormalizeAlowareEvent(p.Event), "inbound")
	return e.run(ctx, job, op{AlowareToGHL, "message", smsID, smsID}, func() (string, error) {
		if smsID == "" {
			return "", permanent("Aloware SMS event without body.id")
		}
		if id, done, err := e.alreadyDone(ctx, "aloware-sms", smsID); err != nil || done {
			return id, err
		}
		phone := e.E164(sms.LeadNumber)
		if phone == "" {
			phone = e.E164(sms.Contact.PhoneNumber)
		}
		contactID := string(sms.ContactID)
		if contactID == "" {
			contactID = string(sms.Contact.ID)
		}
		ghlID, err := e.resolveGHLContact(ctx, job.ID, contactID, sms.Contact, phone)
		if err != nil {
			return "", err
		}
		m := store.MessageMapping{Source: "aloware-sms", SourceMessageID: smsID, GHLContactID: ghlID}
		if inbound && e.cfg.ConversationProviderID != "" {
			m.ConversationID, m.GHLMessageID, err = e.recordInbound(ctx, ghlID, sms.Body, parseTime(sms.CreatedAt))
			m.Status = "recorded"
		} else {
			dir := "outbound"
			if inbound {
				dir = "inbound"
			}
			m.GHLMessageID, err = e.ghl.AddNote(ctx, ghlID, fmt.Sprintf("Aloware %s SMS %s: %s", dir, smsID, sms.Body))
			m.Status = "noted"
		}
		if err != nil {
			return "", err
		}
		return m.GHLMessageID, e.st.UpsertMessageMapping(ctx, m)
	})
}

func (e *Engine) recordInbound(ctx context.Context, ghlContactID, text string, at time.Time) (conversationID, messageID string, err error) {
	conversationID, err = e.ghl.FindOrCreateConversation(ctx, ghlContactID)
	if err != nil {
		return "", "", err
	}
	messageID, err = e.ghl.AddInboundMessage(ctx, conversationID, e.cfg.ConversationProviderID, text, at)
	return conversationID, messageID, err
}

func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// ---- texting ----

type textingPayload struct {
	EventType      string `json:"eventType"`
	MessageID      string `json:"messageId"`
	ConversationID string `json:"conversationId"`
	From           string `json:"from"`
	To             string `json:"to"`
	Phone          string `json:"phone"`
	Body           string `json:"body"`
	Keyword        string `json:"keyword"`
	Timestamp      string `json:"timestamp"`
	Error          string `json:"error"`
}

var (
	stopKeywords  = map[string]bool{"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true, "END": true, "QUIT": true}
	startKeywords = map[string]bool{"START": true, "UNSTOP": true}
	helpKeywords  = map[string]bool{"HELP": true, "INFO": true}
)

func keyword(body string) string {
	return strings.ToUpper(strings.Trim(strings.TrimSpace(body), ".!"))
}

func (e *Engine) textingMessage(ctx context.Context, job queue.Job) error {
	var p textingPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{TextingToGHL, "message", "", ""}, func() (string, error) { return "", err })
	}
	inbound := p.EventType == "message.received"
	counterpart := p.To
	if inbound {
		counterpart = p.From
	}
	phone := e.E164(counterpart)
	// Carriers' keywords work on any inbound message, not only on the
	// dedicated opt-out events. The opt-out is a compliance record: it is
	// written before any GHL work, so a GHL failure can neither lose nor
	// delay it.
	kw := keyword(p.Body)
	optChange := inbound && phone != "" && (stopKeywords[kw] || startKeywords[kw])
	if optChange {
		status := map[bool]string{true: "opted_out", false: "opted_in"}[stopKeywords[kw]]
		if err := e.st.SetOptOut(ctx, store.OptOut{PhoneE164: phone, Status: status, Keyword: kw, Source: "texting", EventID: job.ID}); err != nil {
			return err
		}
	}
	if inbound && helpKeywords[kw] {
		// The texting system answers HELP itself; record that it was asked.
		e.log.Info().Ctx(ctx).Str("event_id", job.ID).Str("phone", phone).Msg("HELP requested by SMS")
	}
	if e.ghl == nil {
		if optChange {
			return queue.Skip("opt-out recorded locally; GHL is not configured (set GHL_API_KEY and GHL_LOCATION_ID), so the message and DND were not written there")
		}
		return queue.Skip(e.missing("ghl"))
	}
	err := e.run(ctx, job, op{TextingToGHL, "message", p.MessageID, p.MessageID}, func() (string, error) {
		if p.MessageID == "" {
			return "", permanent("texting %s event without messageId", p.EventType)
		}
		if id, done, err := e.alreadyDone(ctx, "texting", p.MessageID); err != nil || done {
			return id, err
		}
		if phone == "" {
			return "", permanent("texting message %s has no valid %s number", p.MessageID, map[bool]string{true: "from", false: "to"}[inbound])
		}
		ghlID, err := e.resolveGHLContact(ctx, job.ID, "", alowareContact{}, phone)
		if err != nil {
			return "", err
		}
		m := store.MessageMapping{Source: "texting", SourceMessageID: p.MessageID, GHLContactID: ghlID}
		if inbound && e.cfg.ConversationProviderID != "" {
			m.ConversationID, m.GHLMessageID, err = e.recordInbound(ctx, ghlID, p.Body, parseTime(p.Timestamp))
			m.Status = "received"
		} else {
			dir := map[bool]string{true: "inbound", false: "outbound"}[inbound]
			m.GHLMessageID, err = e.ghl.AddNote(ctx, ghlID, fmt.Sprintf("Texting %s SMS %s: %s", dir, p.MessageID, p.Body))
			m.Status = map[bool]string{true: "received", false: "sent"}[inbound]
		}
		if err != nil {
			return "", err
		}
		return m.GHLMessageID, e.st.UpsertMessageMapping(ctx, m)
	})
	if !optChange {
		return err
	}
	// Mirror the opt-out to GHL's DND even when recording the message failed.
	dndErr := e.applyOptOut(ctx, job, phone, kw, stopKeywords[kw])
	if err != nil {
		return err
	}
	return dndErr
}

func (e *Engine) textingStatus(ctx context.Context, job queue.Job) error {
	var p textingPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{TextingToStore, "message", "", ""}, func() (string, error) { return "", err })
	}
	status := strings.TrimPrefix(p.EventType, "message.")
	return e.run(ctx, job, op{TextingToStore, "message", p.MessageID, p.MessageID}, func() (string, error) {
		m, err := e.st.GetMessageMapping(ctx, "texting", p.MessageID)
		if errors.Is(err, store.ErrNotFound) {
			// Keep the status anyway: the sent event may still be on its way.
			return "", e.st.UpsertMessageMapping(ctx, store.MessageMapping{Source: "texting", SourceMessageID: p.MessageID, Status: status})
		}
		if err != nil {
			return "", err
		}
		m.Status = status
		return m.GHLMessageID, e.st.UpsertMessageMapping(ctx, m)
	})
}

func (e *Engine) textingOptOut(ctx context.Context, job queue.Job) error {
	var p textingPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{TextingToGHL, "optout", "", ""}, func() (string, error) { return "", err })
	}
	raw := p.From
	if raw == "" {
		raw = p.Phone
	}
	kw := p.Keyword
	if kw == "" {
		kw = "STOP"
	}
	return e.applyOptOut(ctx, job, e.E164(raw), strings.ToUpper(kw), true)
}

// applyOptOut records the opt-out (or opt-in) locally, then mirrors it to
// GHL's DND flag on the contact with that phone, if GHL knows one.
func (e *Engine) applyOptOut(ctx context.Context, job queue.Job, phone, kw string, out bool) error {
	return e.run(ctx, job, op{TextingToGHL, "optout", phone, phone}, func() (string, error) {
		if phone == "" {
			return "", permanent("opt-out without a valid phone number")
		}
		status := map[bool]string{true: "opted_out", false: "opted_in"}[out]
		if err := e.st.SetOptOut(ctx, store.OptOut{PhoneE164: phone, Status: status, Keyword: kw, Source: "texting", EventID: job.ID}); err != nil {
			return "", err
		}
		if e.ghl == nil {
			return "", skip("opt-out recorded locally; GHL is not configured, so no DND was set")
		}
		ghlID := ""
		if m, err := e.st.MappingBy(ctx, "phone", phone); err == nil {
			ghlID = m.GHLID
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		if ghlID == "" {
			dup, err := e.ghl.FindDuplicate(ctx, phone, "")
			if err != nil {
				return "", err
			}
			if dup == nil {
				return "", skip("opt-out recorded locally; GHL has no contact with this phone")
			}
			ghlID = dup.ID
		}
		msg := "Opted out by SMS keyword " + kw
		if !out {
			msg = "Opted back in by SMS keyword " + kw
		}
		return ghlID, e.ghl.SetDND(ctx, ghlID, out, "SMS", msg)
	})
}

func (e *Engine) textingHelp(ctx context.Context, job queue.Job) error {
	var p textingPayload
	if err := decode(job, &p); err != nil {
		return err
	}
	phone := e.E164(p.From)
	e.log.Info().Ctx(ctx).Str("event_id", job.ID).Str("phone", phone).Msg("HELP requested by SMS")
	err := e.run(ctx, job, op{TextingToStore, "optout", phone, phone}, func() (string, error) {
		return "", skip("HELP request logged; the texting system answers it")
	})
	if queue.IsSkip(err) {
		return nil // handled: logging it is all there is to do
	}
	return err
}

// ---- broadcast ----

type broadcastPayload struct {
	EventType   string `json:"eventType"`
	BroadcastID string `json:"broadcastId"`
	Status      string `json:"status"`
	Timestamp   string `json:"timestamp"`
	Analytics   struct {
		Sent      json.Number `json:"sent"`
		Delivered json.Number `json:"delivered"`
		Failed    json.Number `json:"failed"`
		Replied   json.Number `json:"replied"`
		OptedOut  json.Number `json:"optedOut"`
	} `json:"analytics"`
}

func num(n json.Number) int64 {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, _ := strconv.ParseFloat(string(n), 64)
		return int64(f)
	}
	return v
}

func (e *Engine) broadcastAnalytics(ctx context.Context, job queue.Job) error {
	var p broadcastPayload
	if err := decode(job, &p); err != nil {
		return e.run(ctx, job, op{BroadcastToStore, "broadcast", "", ""}, func() (string, error) { return "", err })
	}
	return e.run(ctx, job, op{BroadcastToStore, "broadcast", p.BroadcastID, p.BroadcastID}, func() (string, error) {
		reported := parseTime(p.Timestamp)
		if reported.IsZero() {
			reported = job.ReceivedAt
		}
		status := p.Status
		if p.EventType == "broadcast_completed" && status == "" {
			status = "completed"
		}
		a := p.Analytics
		wrote, err := e.st.UpsertBroadcastStats(ctx, store.BroadcastStats{BroadcastID: p.BroadcastID, Status: status,
			Sent: num(a.Sent), Delivered: num(a.Delivered), Failed: num(a.Failed), Replied: num(a.Replied), OptedOut: num(a.OptedOut),
			ReportedAt: reported, EventID: job.ID})
		if err != nil {
			return "", err
		}
		if !wrote {
			return "", skip("newer analytics for broadcast %s are already stored", p.BroadcastID)
		}
		return p.BroadcastID, nil
	})
}
