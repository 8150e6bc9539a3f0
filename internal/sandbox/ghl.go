package sandbox

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The GHL imitation: LeadConnector API v2, contacts and conversations.

func (s *Server) ghlRoutes() {
	s.route(UpstreamGHL, "GET /contacts/{id}", s.ghlGetContact)
	s.route(UpstreamGHL, "POST /contacts/upsert", s.ghlUpsertContact)
	s.route(UpstreamGHL, "PUT /contacts/{id}", s.ghlUpdateContact)
	s.route(UpstreamGHL, "GET /contacts/search/duplicate", s.ghlDuplicate)
	s.route(UpstreamGHL, "POST /contacts/{id}/notes", s.ghlAddNote)
	s.route(UpstreamGHL, "POST /contacts/{id}/tags", s.ghlAddTags)
	s.route(UpstreamGHL, "GET /conversations/search", s.ghlSearchConversations)
	s.route(UpstreamGHL, "POST /conversations/{$}", s.ghlCreateConversation)
	s.route(UpstreamGHL, "POST /conversations", s.ghlCreateConversation)
	s.route(UpstreamGHL, "POST /conversations/messages", s.ghlOutboundMessage)
	s.route(UpstreamGHL, "POST /conversations/messages/inbound", s.ghlInboundMessage)
}

// ghlPhoneRE is the phone format the imitation accepts: E.164, 8–15 digits.
var ghlPhoneRE = regexp.MustCompile(`^\+[0-9]{8,15}$`)

// ghlPeekHeaders sets the rate-limit headers from the current windows
// without consuming anything (every GHL response carries them).
func (s *Server) ghlPeekHeaders(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ghlSetHeadersLocked(w)
}

func (s *Server) ghlSetHeadersLocked(w http.ResponseWriter) {
	now := s.now()
	h := w.Header()
	h.Set("X-RateLimit-Limit-Daily", strconv.Itoa(s.ghlDay.max()))
	h.Set("X-RateLimit-Daily-Remaining", strconv.Itoa(s.ghlDay.remaining(now)))
	h.Set("X-RateLimit-Interval-Milliseconds", strconv.FormatInt(s.cfg.GHLInterval.Milliseconds(), 10))
	h.Set("X-RateLimit-Max", strconv.Itoa(s.ghlRate.max()))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.ghlRate.remaining(now)))
}

// ghlGate checks the Bearer token, consumes the rate limits and checks
// the Version header of the endpoint group; false means it answered.
func (s *Server) ghlGate(w http.ResponseWriter, r *http.Request, path string) bool {
	if !bearerIs(r, s.cfg.GHLToken) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "Invalid JWT"})
		return false
	}
	s.mu.Lock()
	now := s.now()
	ok, retry := s.ghlRate.take(now)
	if ok {
		ok, retry = s.ghlDay.take(now)
	}
	s.ghlSetHeadersLocked(w)
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(retry)))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"statusCode": 429, "message": "Too Many Requests"})
		return false
	}
	want := GHLVersionContacts
	if strings.HasPrefix(path, "/conversations") {
		want = GHLVersionConversations
	}
	if r.Header.Get("Version") != want {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "Version header is missing or invalid"})
		return false
	}
	return true
}

// bearerIs reports whether the request's Authorization is "Bearer want"
// (want must be non-empty; compared in constant time).
func bearerIs(r *http.Request, want string) bool {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || want == "" {
		return false
	}
	return secretEqual(strings.TrimSpace(tok), want)
}

func secretEqual(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && want != ""
}

func ghlError(w http.ResponseWriter, status int, msg any) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "error": http.StatusText(status)})
}

func ghl422(w http.ResponseWriter, msgs ...string) { ghlError(w, http.StatusUnprocessableEntity, msgs) }

func ghlContactNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "Contact not found"})
}

// ghlDecode decodes a JSON object body; false means it answered 400.
func ghlDecode(w http.ResponseWriter, body []byte, v any) bool {
	t := strings.TrimSpace(string(body))
	if !strings.HasPrefix(t, "{") || json.Unmarshal(body, v) != nil {
		ghlError(w, http.StatusBadRequest, "Unexpected token in JSON body")
		return false
	}
	return true
}

// checkLocation validates a locationId parameter; false means it answered.
func (s *Server) checkLocation(w http.ResponseWriter, loc *string) bool {
	if loc == nil || strings.TrimSpace(*loc) == "" {
		ghl422(w, "locationId should not be empty")
		return false
	}
	if *loc != s.cfg.GHLLocationID {
		ghlError(w, http.StatusForbidden, "The token does not have access to this location.")
		return false
	}
	return true
}

// ghlContactInput is the writable part of a contact; nil means absent.
type ghlContactInput struct {
	LocationID  *string                  `json:"locationId"`
	ID          *string                  `json:"id"`
	FirstName   *string                  `json:"firstName"`
	LastName    *string                  `json:"lastName"`
	Name        *string                  `json:"name"`
	Email       *string                  `json:"email"`
	Phone       *string                  `json:"phone"`
	Tags        *[]string                `json:"tags"`
	DND         *bool                    `json:"dnd"`
	DNDSettings map[string]GHLDNDSetting `json:"dndSettings"`
	Source      *string                  `json:"source"`
}

// validate returns GHL's class-validator messages for bad fields.
func (in *ghlContactInput) validate() []string {
	var msgs []string
	if in.Phone != nil && *in.Phone != "" && !ghlPhoneRE.MatchString(*in.Phone) {
		msgs = append(msgs, "phone must be a valid phone number")
	}
	if in.Email != nil && *in.Email != "" && !looksLikeEmail(*in.Email) {
		msgs = append(msgs, "email must be an email")
	}
	return msgs
}

func looksLikeEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(s, " \t\r\n") &&
		!strings.Contains(domain, "@") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// apply writes the present fields of in to c.
func (in *ghlContactInput) apply(c *GHLContact) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&c.FirstName, in.FirstName)
	set(&c.LastName, in.LastName)
	set(&c.Email, in.Email)
	set(&c.Phone, in.Phone)
	set(&c.Source, in.Source)
	if in.Name != nil {
		c.Name = *in.Name
	} else if in.FirstName != nil || in.LastName != nil {
		c.Name = joinName(c.FirstName, c.LastName)
	}
	if in.Tags != nil {
		c.Tags = dedupe(*in.Tags)
	}
	if in.DND != nil {
		c.DND = *in.DND
	}
	if in.DNDSettings != nil {
		if c.DNDSettings == nil {
			c.DNDSettings = map[string]GHLDNDSetting{}
		}
		for ch, v := range in.DNDSettings {
			c.DNDSettings[ch] = v
		}
	}
}

func joinName(first, last string) string { return strings.TrimSpace(first + " " + last) }

func dedupe(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) ghlGetContact(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	c, ok := s.d.ghlContacts[r.PathValue("id")]
	var cc GHLContact
	if ok {
		cc = copyGHLContact(c)
	}
	s.mu.Unlock()
	if !ok {
		ghlContactNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact": cc})
}

func (s *Server) ghlUpsertContact(w http.ResponseWriter, r *http.Request, body []byte) {
	var in ghlContactInput
	if !ghlDecode(w, body, &in) || !s.checkLocation(w, in.LocationID) {
		return
	}
	if msgs := in.validate(); len(msgs) > 0 {
		ghl422(w, msgs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var match *GHLContact
	if in.Email != nil && *in.Email != "" {
		match = s.findGHLContactLocked(func(c *GHLContact) bool { return strings.EqualFold(c.Email, strings.TrimSpace(*in.Email)) })
	}
	if match == nil && in.Phone != nil && *in.Phone != "" {
		match = s.findGHLContactLocked(func(c *GHLContact) bool { return c.Phone == *in.Phone })
	}
	isNew := match == nil
	if isNew {
		match = &GHLContact{
			ID:          fmt.Sprintf("sbxcontact%010d", s.d.next("ghl-contact")),
			LocationID:  s.cfg.GHLLocationID,
			Tags:        []string{},
			DNDSettings: map[string]GHLDNDSetting{},
			DateAdded:   ghlTime(now),
		}
		s.d.ghlContacts[match.ID] = match
	}
	in.apply(match)
	match.DateUpdated = ghlTime(now)
	writeJSON(w, http.StatusOK, map[string]any{
		"new":     isNew,
		"contact": copyGHLContact(match),
		"traceId": fmt.Sprintf("sbx-trace-%08d", s.d.next("ghl-trace")),
	})
}

// findGHLContactLocked returns the oldest contact (by id) matching f.
func (s *Server) findGHLContactLocked(f func(*GHLContact) bool) *GHLContact {
	var best *GHLContact
	for _, c := range s.d.ghlContacts {
		if f(c) && (best == nil || c.ID < best.ID) {
			best = c
		}
	}
	return best
}

func (s *Server) ghlUpdateContact(w http.ResponseWriter, r *http.Request, body []byte) {
	var in ghlContactInput
	if !ghlDecode(w, body, &in) {
		return
	}
	var msgs []string
	if in.LocationID != nil {
		msgs = append(msgs, "property locationId should not exist")
	}
	if in.ID != nil {
		msgs = append(msgs, "property id should not exist")
	}
	msgs = append(msgs, in.validate()...)
	if len(msgs) > 0 {
		ghl422(w, msgs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.d.ghlContacts[r.PathValue("id")]
	if !ok {
		ghlContactNotFound(w)
		return
	}
	in.apply(c)
	c.DateUpdated = ghlTime(s.now())
	writeJSON(w, http.StatusOK, map[string]any{"succeded": true, "contact": copyGHLContact(c)})
}

func (s *Server) ghlDuplicate(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	loc := q.Get("locationId")
	if !s.checkLocation(w, &loc) {
		return
	}
	email := strings.TrimSpace(q.Get("email"))
	number := q.Get("number")
	if strings.HasPrefix(number, " ") { // an unescaped '+' decodes as a space
		number = "+" + strings.TrimLeft(number, " ")
	}
	number = strings.TrimSpace(number)
	s.mu.Lock()
	defer s.mu.Unlock()
	var match *GHLContact
	if email != "" {
		match = s.findGHLContactLocked(func(c *GHLContact) bool { return strings.EqualFold(c.Email, email) })
	}
	if match == nil && number != "" {
		match = s.findGHLContactLocked(func(c *GHLContact) bool { return c.Phone == number })
	}
	if match == nil {
		writeJSON(w, http.StatusOK, map[string]any{"contact": nil})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact": copyGHLContact(match)})
}

func (s *Server) ghlAddNote(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Body   *string `json:"body"`
		UserID string  `json:"userId"`
	}
	if !ghlDecode(w, body, &in) {
		return
	}
	if in.Body == nil || strings.TrimSpace(*in.Body) == "" {
		ghl422(w, "body should not be empty")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := s.d.ghlContacts[id]; !ok {
		ghlContactNotFound(w)
		return
	}
	n := GHLNote{
		ID:        fmt.Sprintf("sbxnote%013d", s.d.next("ghl-note")),
		Body:      *in.Body,
		ContactID: id,
		UserID:    in.UserID,
		DateAdded: ghlTime(s.now()),
	}
	s.d.ghlNotes = append(s.d.ghlNotes, n)
	writeJSON(w, http.StatusCreated, map[string]any{"note": n})
}

func (s *Server) ghlAddTags(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Tags []string `json:"tags"`
	}
	if !ghlDecode(w, body, &in) {
		return
	}
	if len(dedupe(in.Tags)) == 0 {
		ghl422(w, "tags should not be empty")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.d.ghlContacts[r.PathValue("id")]
	if !ok {
		ghlContactNotFound(w)
		return
	}
	c.Tags = dedupe(append(slices.Clone(c.Tags), in.Tags...))
	c.DateUpdated = ghlTime(s.now())
	writeJSON(w, http.StatusCreated, map[string]any{"tags": slices.Clone(c.Tags)})
}

func (s *Server) ghlSearchConversations(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	loc := q.Get("locationId")
	if !s.checkLocation(w, &loc) {
		return
	}
	contactID := q.Get("contactId")
	s.mu.Lock()
	out := []GHLConversation{}
	for _, c := range s.d.ghlConversations {
		if contactID == "" || c.ContactID == contactID {
			out = append(out, c)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b GHLConversation) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out, "total": len(out)})
}

// conversationOfLocked returns the contact's conversation, if any.
func (s *Server) conversationOfLocked(contactID string) (GHLConversation, bool) {
	var best GHLConversation
	found := false
	for _, c := range s.d.ghlConversations {
		if c.ContactID == contactID && (!found || c.ID < best.ID) {
			best, found = c, true
		}
	}
	return best, found
}

func (s *Server) newConversationLocked(contactID string) GHLConversation {
	c := GHLConversation{
		ID:         fmt.Sprintf("sbxconvo%012d", s.d.next("ghl-conversation")),
		ContactID:  contactID,
		LocationID: s.cfg.GHLLocationID,
	}
	s.d.ghlConversations[c.ID] = c
	return c
}

func (s *Server) ghlCreateConversation(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		LocationID *string `json:"locationId"`
		ContactID  string  `json:"contactId"`
	}
	if !ghlDecode(w, body, &in) || !s.checkLocation(w, in.LocationID) {
		return
	}
	if strings.TrimSpace(in.ContactID) == "" {
		ghl422(w, "contactId should not be empty")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.d.ghlContacts[in.ContactID]; !ok {
		ghlContactNotFound(w)
		return
	}
	if c, ok := s.conversationOfLocked(in.ContactID); ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"statusCode": 400, "message": "Conversation already exists", "conversationId": c.ID})
		return
	}
	c := s.newConversationLocked(in.ContactID)
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "conversation": c})
}

var ghlMessageTypes = []string{"SMS", "Email", "WhatsApp", "GMB", "IG", "FB", "Custom", "Live_Chat"}

func (s *Server) ghlOutboundMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Type       string `json:"type"`
		ContactID  string `json:"contactId"`
		Message    string `json:"message"`
		FromNumber string `json:"fromNumber"`
		ToNumber   string `json:"toNumber"`
	}
	if !ghlDecode(w, body, &in) {
		return
	}
	var msgs []string
	if !slices.Contains(ghlMessageTypes, in.Type) {
		msgs = append(msgs, "type must be one of the following values: "+strings.Join(ghlMessageTypes, ", "))
	}
	if strings.TrimSpace(in.ContactID) == "" {
		msgs = append(msgs, "contactId should not be empty")
	}
	if in.Type == "SMS" && strings.TrimSpace(in.Message) == "" {
		msgs = append(msgs, "message should not be empty")
	}
	if len(msgs) > 0 {
		ghl422(w, msgs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.d.ghlContacts[in.ContactID]; !ok {
		ghlContactNotFound(w)
		return
	}
	conv, ok := s.conversationOfLocked(in.ContactID)
	if !ok {
		conv = s.newConversationLocked(in.ContactID)
	}
	now := ghlTime(s.now())
	m := GHLMessage{
		ID:             fmt.Sprintf("sbxmsg%014d", s.d.next("ghl-message")),
		ConversationID: conv.ID,
		ContactID:      in.ContactID,
		Type:           in.Type,
		Direction:      "outbound",
		Message:        in.Message,
		FromNumber:     in.FromNumber,
		ToNumber:       in.ToNumber,
		DateAdded:      now,
	}
	s.d.ghlMessages = append(s.d.ghlMessages, m)
	writeJSON(w, http.StatusCreated, map[string]any{"conversationId": conv.ID, "messageId": m.ID, "msg": "Message queued"})
}

func (s *Server) ghlInboundMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Type                   string `json:"type"`
		ConversationID         string `json:"conversationId"`
		ConversationProviderID string `json:"conversationProviderId"`
		Message                string `json:"message"`
		Direction              string `json:"direction"`
		Date                   string `json:"date"`
	}
	if !ghlDecode(w, body, &in) {
		return
	}
	var msgs []string
	if !slices.Contains(ghlMessageTypes, in.Type) {
		msgs = append(msgs, "type must be one of the following values: "+strings.Join(ghlMessageTypes, ", "))
	}
	if strings.TrimSpace(in.ConversationID) == "" {
		msgs = append(msgs, "conversationId should not be empty")
	}
	if strings.TrimSpace(in.ConversationProviderID) == "" {
		msgs = append(msgs, "conversationProviderId should not be empty")
	}
	if in.Direction != "" && in.Direction != "inbound" && in.Direction != "outbound" {
		msgs = append(msgs, "direction must be one of the following values: inbound, outbound")
	}
	if len(msgs) > 0 {
		ghl422(w, msgs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	conv, ok := s.d.ghlConversations[in.ConversationID]
	if !ok {
		ghlError(w, http.StatusBadRequest, "Conversation not found")
		return
	}
	dir := in.Direction
	if dir == "" {
		dir = "inbound"
	}
	m := GHLMessage{
		ID:                     fmt.Sprintf("sbxmsg%014d", s.d.next("ghl-message")),
		ConversationID:         conv.ID,
		ContactID:              conv.ContactID,
		Type:                   in.Type,
		Direction:              dir,
		Message:                in.Message,
		ConversationProviderID: in.ConversationProviderID,
		Date:                   in.Date,
		DateAdded:              ghlTime(s.now()),
	}
	s.d.ghlMessages = append(s.d.ghlMessages, m)
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "conversationId": conv.ID, "messageId": m.ID, "message": "Message added successfully"})
}
