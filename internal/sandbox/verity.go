package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The Verity imitation: broadcasts, analytics, calls (Clerk session token)
// and send-message (X-API-Key).

const (
	verityDefaultLimit = 20
	verityMaxLimit     = 100
)

func (s *Server) verityRoutes() {
	s.route(UpstreamVerity, "GET /api/comms/broadcasts", s.verityListBroadcasts)
	s.route(UpstreamVerity, "GET /api/comms/broadcasts/{id}", s.verityGetBroadcast)
	s.route(UpstreamVerity, "GET /api/comms/broadcasts/{id}/analytics", s.verityAnalytics)
	s.route(UpstreamVerity, "GET /api/calls", s.verityListCalls)
	s.route(UpstreamVerity, "POST /api/comms/send-message", s.veritySendMessage)
}

func verityUnauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "Unauthorized"})
}

// verityGate: send-message needs X-API-Key; everything else a Clerk session
// token of an active session. False means it answered.
func (s *Server) verityGate(w http.ResponseWriter, r *http.Request, path string) bool {
	if path == "/api/comms/send-message" {
		if !secretEqual(r.Header.Get("X-API-Key"), s.cfg.VerityAPIKey) {
			verityUnauthorized(w)
			return false
		}
		return true
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		verityUnauthorized(w)
		return false
	}
	claims, err := s.verifySessionToken(strings.TrimSpace(tok), s.now())
	if err != nil {
		verityUnauthorized(w)
		return false
	}
	s.mu.Lock()
	sess, ok := s.sessionLocked(claims.SessionID)
	s.mu.Unlock()
	if !ok || sess.Status != "active" || sess.UserID != claims.Subject {
		verityUnauthorized(w)
		return false
	}
	return true
}

func verityBadRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": msg})
}

// cursor is the opaque keyset position of a list: the sort key and id of
// the last item returned.
type cursor struct {
	At string `json:"a"`
	ID string `json:"i"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" {
		return cursor{}, false
	}
	return c, true
}

// pageParams reads limit and cursor; false means it answered 400.
func pageParams(w http.ResponseWriter, r *http.Request) (limit int, after *cursor, ok bool) {
	q := r.URL.Query()
	limit = verityDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > verityMaxLimit {
			verityBadRequest(w, fmt.Sprintf("limit must be an integer between 1 and %d", verityMaxLimit))
			return 0, nil, false
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, good := decodeCursor(v)
		if !good {
			verityBadRequest(w, "Invalid cursor")
			return 0, nil, false
		}
		after = &c
	}
	return limit, after, true
}

// keysetPage sorts items newest first (by at, then id, both descending),
// skips up to and including after, and returns one page plus the next
// cursor (nil at the end).
func keysetPage[T any](items []T, at, id func(T) string, limit int, after *cursor) ([]T, *string) {
	slices.SortStableFunc(items, func(a, b T) int {
		if c := strings.Compare(at(b), at(a)); c != 0 {
			return c
		}
		return strings.Compare(id(b), id(a))
	})
	start := 0
	if after != nil {
		start = len(items)
		for i, it := range items {
			// first item strictly after the cursor in (at desc, id desc) order
			if at(it) < after.At || (at(it) == after.At && id(it) < after.ID) {
				start = i
				break
			}
		}
	}
	end := min(start+limit, len(items))
	out := slices.Clone(items[start:end])
	if end < len(items) && len(out) > 0 {
		last := out[len(out)-1]
		next := encodeCursor(cursor{At: at(last), ID: id(last)})
		return out, &next
	}
	return nonNil(out), nil
}

func (s *Server) verityListBroadcasts(w http.ResponseWriter, r *http.Request, _ []byte) {
	limit, after, ok := pageParams(w, r)
	if !ok {
		return
	}
	status := r.URL.Query().Get("status")
	s.mu.Lock()
	var all []Broadcast
	for _, b := range s.d.broadcasts {
		if status == "" || b.Status == status {
			all = append(all, copyBroadcast(b))
		}
	}
	s.mu.Unlock()
	out, next := keysetPage(all, func(b Broadcast) string { return b.CreatedAt },
		func(b Broadcast) string { return b.ID }, limit, after)
	writeJSON(w, http.StatusOK, map[string]any{"broadcasts": out, "nextCursor": next})
}

func (s *Server) broadcast(id string) (Broadcast, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.d.broadcasts {
		if b.ID == id {
			return copyBroadcast(b), true
		}
	}
	return Broadcast{}, false
}

func (s *Server) verityGetBroadcast(w http.ResponseWriter, r *http.Request, _ []byte) {
	b, ok := s.broadcast(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Broadcast not found"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"broadcast": b})
}

func (s *Server) verityAnalytics(w http.ResponseWriter, r *http.Request, _ []byte) {
	b, ok := s.broadcast(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Broadcast not found"})
		return
	}
	s.mu.Lock()
	a, ok := s.d.analytics[b.ID]
	s.mu.Unlock()
	if !ok {
		a = BroadcastAnalytics{BroadcastID: b.ID, UpdatedAt: b.CreatedAt}
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) verityListCalls(w http.ResponseWriter, r *http.Request, _ []byte) {
	limit, after, ok := pageParams(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	all := slices.Clone(s.d.calls)
	s.mu.Unlock()
	out, next := keysetPage(all, func(c VerityCall) string { return c.StartedAt },
		func(c VerityCall) string { return c.ID }, limit, after)
	writeJSON(w, http.StatusOK, map[string]any{"calls": out, "nextCursor": next})
}

func (s *Server) veritySendMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		To   string `json:"to"`
		Body string `json:"body"`
		From string `json:"from"`
	}
	if !strings.HasPrefix(strings.TrimSpace(string(body)), "{") || json.Unmarshal(body, &in) != nil {
		verityBadRequest(w, "Invalid JSON body")
		return
	}
	switch {
	case strings.TrimSpace(in.To) == "":
		verityBadRequest(w, "to is required")
		return
	case !ghlPhoneRE.MatchString(in.To):
		verityBadRequest(w, "to must be an E.164 phone number")
		return
	case strings.TrimSpace(in.Body) == "":
		verityBadRequest(w, "body is required")
		return
	}
	s.mu.Lock()
	m := VerityMessage{
		ID:        fmt.Sprintf("vmsg_%06d", s.d.next("verity-message")),
		To:        in.To,
		From:      in.From,
		Body:      in.Body,
		Status:    "queued",
		CreatedAt: isoTime(s.now()),
	}
	s.d.verityMsgs = append(s.d.verityMsgs, m)
	s.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]any{"messageId": m.ID, "status": "queued"})
}
