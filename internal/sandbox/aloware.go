package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The Aloware imitation: the webhook (api_token) API.

func (s *Server) alowareRoutes() {
	s.route(UpstreamAloware, "POST /api/v1/webhook/forms", s.alowareForms)
	s.route(UpstreamAloware, "GET /api/v1/webhook/contacts/phone-number", s.alowareLookup)
	s.route(UpstreamAloware, "POST /api/v1/webhook/sms-gateway/send", s.alowareSendSMS)
	s.route(UpstreamAloware, "GET /api/v1/webhook/users", s.alowareUsers)
}

func (s *Server) alowarePeekHeaders(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alowareSetHeadersLocked(w)
}

func (s *Server) alowareSetHeadersLocked(w http.ResponseWriter) {
	now := s.now()
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(s.aloRate.max()))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.aloRate.remaining(now)))
}

// alowareGate checks api_token — from the query string on GET, from the
// body on POST (a token in a POST's query string does not count) — and
// consumes the per-minute limit; false means it answered.
func (s *Server) alowareGate(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var token string
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		token = r.URL.Query().Get("api_token")
	} else {
		token = alowareFields(r, body).str("api_token")
	}
	if !secretEqual(token, s.cfg.AlowareToken) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid api token."})
		return false
	}
	s.mu.Lock()
	now := s.now()
	ok, retry := s.aloRate.take(now)
	s.alowareSetHeadersLocked(w)
	s.mu.Unlock()
	if !ok {
		secs := retryAfterSeconds(retry)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(retry).Unix(), 10))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "Too Many Attempts."})
		return false
	}
	return true
}

// fields are the parameters of a POST body (JSON object or form).
type fields map[string]any

// alowareFields parses a JSON object body, or a form body when the
// Content-Type says so; anything else is no fields.
func alowareFields(r *http.Request, body []byte) fields {
	f := fields{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		vals, err := url.ParseQuery(string(body))
		if err == nil {
			for k, v := range vals {
				if len(v) > 0 {
					f[k] = v[0]
				}
			}
		}
		return f
	}
	_ = json.Unmarshal(body, &f)
	return f
}

// str returns a scalar field as a string ("" when absent or not scalar).
func (f fields) str(k string) string {
	switch v := f[k].(type) {
	case string:
		return strings.TrimSpace(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// boolean reads a Laravel-style boolean: true, 1, "1", "true", "on", "yes".
func (f fields) boolean(k string) bool {
	switch strings.ToLower(f.str(k)) {
	case "true", "1", "on", "yes":
		return true
	}
	return false
}

func aloware422(w http.ResponseWriter, errs map[string][]string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "The given data was invalid.", "errors": errs})
}

// normalizeAlowarePhone turns a phone number into E.164 the way Aloware
// stores them: punctuation dropped, 10 digits taken as US/CA.
func normalizeAlowarePhone(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return ""
	}
	plus := strings.HasPrefix(p, "+")
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	digits := b.String()
	switch {
	case digits == "":
		return p
	case plus:
	case len(digits) == 10:
		digits = "1" + digits
	}
	return "+" + digits
}

func validAlowarePhone(raw string) bool {
	if strings.ContainsFunc(raw, func(r rune) bool {
		return !strings.ContainsRune("0123456789+-() .", r)
	}) {
		return false
	}
	n := len(normalizeAlowarePhone(raw)) - 1
	return n >= 8 && n <= 15
}

func (s *Server) alowareForms(w http.ResponseWriter, r *http.Request, body []byte) {
	f := alowareFields(r, body)
	errs := map[string][]string{}
	raw := f.str("phone_number")
	switch {
	case raw == "":
		errs["phone_number"] = []string{"The phone number field is required."}
	case !validAlowarePhone(raw):
		errs["phone_number"] = []string{"The phone number format is invalid."}
	}
	if e := f.str("email"); e != "" && !looksLikeEmail(e) {
		errs["email"] = []string{"The email must be a valid email address."}
	}
	if len(errs) > 0 {
		aloware422(w, errs)
		return
	}
	phone := normalizeAlowarePhone(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := alowareTime(s.now())
	c := s.alowareByPhoneLocked(phone)
	if c != nil && !f.boolean("force_update") {
		writeJSON(w, http.StatusConflict, map[string]any{"message": "Contact already exists.", "contact": map[string]any{"id": c.ID}})
		return
	}
	msg := "Contact has been updated."
	if c == nil {
		c = &AlowareContact{ID: 1000 + s.d.next("aloware-contact"), PhoneNumber: phone, CreatedAt: now}
		s.d.putAlowareContact(c)
		msg = "Contact has been created."
	}
	for k, dst := range map[string]*string{
		"first_name": &c.FirstName, "last_name": &c.LastName, "email": &c.Email,
		"lead_source": &c.LeadSource, "notes": &c.Notes,
	} {
		if v := f.str(k); v != "" {
			*dst = v
		}
	}
	c.UpdatedAt = now
	s.d.aloWrites[phone]++
	writeJSON(w, http.StatusOK, map[string]any{"message": msg, "contact": *c})
}

// alowareByPhoneLocked returns the lowest-id contact with phone (E.164).
func (s *Server) alowareByPhoneLocked(phone string) *AlowareContact {
	if id, ok := s.d.aloByPhone[phone]; ok {
		return s.d.aloContacts[id]
	}
	return nil
}

func (s *Server) alowareLookup(w http.ResponseWriter, r *http.Request, _ []byte) {
	raw := r.URL.Query().Get("phone_number")
	if strings.HasPrefix(raw, " ") { // an unescaped '+' decodes as a space
		raw = "+" + strings.TrimLeft(raw, " ")
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		aloware422(w, map[string][]string{"phone_number": {"The phone number field is required."}})
		return
	}
	s.mu.Lock()
	c := s.alowareByPhoneLocked(normalizeAlowarePhone(raw))
	var cc AlowareContact
	if c != nil {
		cc = *c
	}
	s.mu.Unlock()
	if c == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Contact not found."})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact": cc})
}

func (s *Server) alowareSendSMS(w http.ResponseWriter, r *http.Request, body []byte) {
	f := alowareFields(r, body)
	errs := map[string][]string{}
	for _, k := range []string{"from", "to", "message"} {
		if f.str(k) == "" {
			errs[k] = []string{fmt.Sprintf("The %s field is required.", k)}
		}
	}
	if to := f.str("to"); to != "" && !validAlowarePhone(to) {
		errs["to"] = []string{"The to format is invalid."}
	}
	if len(errs) > 0 {
		aloware422(w, errs)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := AlowareSMS{
		ID:        5000 + s.d.next("aloware-sms"),
		From:      f.str("from"),
		To:        normalizeAlowarePhone(f.str("to")),
		Message:   f.str("message"),
		CreatedAt: alowareTime(s.now()),
	}
	s.d.aloSMS = append(s.d.aloSMS, m)
	writeJSON(w, http.StatusOK, map[string]any{"message": "Message sent.", "id": m.ID})
}

func (s *Server) alowareUsers(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.mu.Lock()
	users := slices.Clone(s.d.aloUsers)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, nonNil(users))
}
