package sandbox

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// GHLContact is a contact of the GHL imitation, in GHL's JSON shape.
type GHLContact struct {
	ID          string                   `json:"id"`
	LocationID  string                   `json:"locationId"`
	FirstName   string                   `json:"firstName"`
	LastName    string                   `json:"lastName"`
	Name        string                   `json:"name"`
	Email       string                   `json:"email"`
	Phone       string                   `json:"phone"`
	Tags        []string                 `json:"tags"`
	DND         bool                     `json:"dnd"`
	DNDSettings map[string]GHLDNDSetting `json:"dndSettings"`
	Source      string                   `json:"source"`
	DateAdded   string                   `json:"dateAdded"`
	DateUpdated string                   `json:"dateUpdated"`
}

// GHLDNDSetting is one channel of a contact's dndSettings ("SMS", "Call", …).
type GHLDNDSetting struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Code    string `json:"code,omitempty"`
}

// GHLNote is a note added to a contact.
type GHLNote struct {
	ID        string `json:"id"`
	Body      string `json:"body"`
	ContactID string `json:"contactId"`
	UserID    string `json:"userId,omitempty"`
	DateAdded string `json:"dateAdded"`
}

// GHLConversation is a conversation of a contact.
type GHLConversation struct {
	ID         string `json:"id"`
	ContactID  string `json:"contactId"`
	LocationID string `json:"locationId"`
}

// GHLMessage is a message posted to a conversation (outbound or inbound).
type GHLMessage struct {
	ID                     string `json:"id"`
	ConversationID         string `json:"conversationId"`
	ContactID              string `json:"contactId"`
	Type                   string `json:"type"`
	Direction              string `json:"direction"`
	Message                string `json:"message"`
	FromNumber             string `json:"fromNumber,omitempty"`
	ToNumber               string `json:"toNumber,omitempty"`
	ConversationProviderID string `json:"conversationProviderId,omitempty"`
	Date                   string `json:"date,omitempty"`
	DateAdded              string `json:"dateAdded"`
}

// AlowareContact is a contact of the Aloware imitation, in Aloware's shape.
type AlowareContact struct {
	ID          int    `json:"id"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number"`
	LeadSource  string `json:"lead_source"`
	Notes       string `json:"notes,omitempty"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

// AlowareSMS is an SMS sent through the Aloware imitation.
type AlowareSMS struct {
	ID        int    `json:"id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Message   string `json:"message"`
	CreatedAt string `json:"created_at"`
}

// AlowareUser is a user (agent) of the Aloware account.
type AlowareUser struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Broadcast is a Verity broadcast, in Verity's shape.
type Broadcast struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Status       string  `json:"status"` // draft|scheduled|sending|completed|cancelled
	Channel      string  `json:"channel"`
	AudienceSize int     `json:"audienceSize"`
	ScheduledAt  *string `json:"scheduledAt"`
	SentAt       *string `json:"sentAt"`
	CreatedAt    string  `json:"createdAt"`
}

// BroadcastAnalytics are the delivery counters of a broadcast.
type BroadcastAnalytics struct {
	BroadcastID string `json:"broadcastId"`
	Sent        int    `json:"sent"`
	Delivered   int    `json:"delivered"`
	Failed      int    `json:"failed"`
	Replied     int    `json:"replied"`
	OptedOut    int    `json:"optedOut"`
	UpdatedAt   string `json:"updatedAt"`
}

// VerityCall is a call of the Verity calls list.
type VerityCall struct {
	ID              string `json:"id"`
	Direction       string `json:"direction"`
	From            string `json:"from"`
	To              string `json:"to"`
	DurationSeconds int    `json:"durationSeconds"`
	Disposition     string `json:"disposition"`
	StartedAt       string `json:"startedAt"`
}

// VerityMessage is a message accepted by Verity send-message.
type VerityMessage struct {
	ID        string `json:"messageId"`
	To        string `json:"to"`
	From      string `json:"from,omitempty"`
	Body      string `json:"body"`
	Status    string `json:"status"`
	CreatedAt string `json:"createdAt"`
}

// ClerkUser is a Clerk user (rendered as Clerk's full user object).
type ClerkUser struct {
	ID           string `json:"id"`
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name"`
	Email        string `json:"email"`
	LastActiveAt int64  `json:"last_active_at"` // unix ms; 0 = never
	CreatedAt    int64  `json:"created_at"`     // unix ms
	UpdatedAt    int64  `json:"updated_at"`     // unix ms
}

// ClerkSession is a Clerk session, in Clerk's shape (times in unix ms).
type ClerkSession struct {
	Object       string `json:"object"` // always "session"
	ID           string `json:"id"`
	UserID       string `json:"user_id"`
	ClientID     string `json:"client_id"`
	Status       string `json:"status"` // active|ended|expired|revoked|abandoned|…
	LastActiveAt int64  `json:"last_active_at"`
	ExpireAt     int64  `json:"expire_at"`
	AbandonAt    int64  `json:"abandon_at"`
	CreatedAt    int64  `json:"created_at"`
	UpdatedAt    int64  `json:"updated_at"`
}

// State is a deep-copied snapshot of everything the sandbox stores, the
// call counts ("ghl POST /contacts/upsert" → n; "ghl unmatched" for routes
// it does not serve) and the active faults. GET /_sandbox/state serves it.
type State struct {
	GHLContacts      map[string]GHLContact      `json:"ghl_contacts"`
	GHLNotes         []GHLNote                  `json:"ghl_notes"`
	GHLTags          map[string][]string        `json:"ghl_tags"` // contact id → tags
	GHLConversations map[string]GHLConversation `json:"ghl_conversations"`
	GHLMessages      []GHLMessage               `json:"ghl_messages"`
	AlowareContacts  map[string]AlowareContact  `json:"aloware_contacts"` // decimal id → contact
	// AlowareWrites counts the contact writes (creates and updates) the
	// forms endpoint accepted, by E.164 phone: a webhook processed twice
	// shows as 2 for its phone even though the contact is upserted once.
	AlowareWrites      map[string]int                `json:"aloware_writes"`
	AlowareSMS         []AlowareSMS                  `json:"aloware_sms"`
	AlowareUsers       []AlowareUser                 `json:"aloware_users"`
	Broadcasts         []Broadcast                   `json:"broadcasts"`
	BroadcastAnalytics map[string]BroadcastAnalytics `json:"broadcast_analytics"`
	VerityCalls        []VerityCall                  `json:"verity_calls"`
	VerityMessages     []VerityMessage               `json:"verity_messages"`
	ClerkUsers         []ClerkUser                   `json:"clerk_users"`
	ClerkSessions      []ClerkSession                `json:"clerk_sessions"`
	Calls              map[string]int                `json:"calls"`
	Faults             map[string]Faults             `json:"faults"`
}

// data is the mutable store, guarded by Server.mu.
type data struct {
	ghlContacts      map[string]*GHLContact
	ghlNotes         []GHLNote
	ghlConversations map[string]GHLConversation
	ghlMessages      []GHLMessage
	aloContacts      map[int]*AlowareContact
	aloByPhone       map[string]int // phone → lowest contact id, so lookups stay O(1) at 100k contacts
	aloWrites        map[string]int // phone → accepted forms writes
	aloSMS           []AlowareSMS
	aloUsers         []AlowareUser
	broadcasts       []Broadcast
	analytics        map[string]BroadcastAnalytics
	calls            []VerityCall
	verityMsgs       []VerityMessage
	clerkUsers       []ClerkUser
	clerkSessions    []ClerkSession
	counts           map[string]int // call counts, named calls in State
	seq              map[string]int
}

func newData() *data {
	return &data{
		ghlContacts:      map[string]*GHLContact{},
		ghlConversations: map[string]GHLConversation{},
		aloContacts:      map[int]*AlowareContact{},
		aloByPhone:       map[string]int{},
		aloWrites:        map[string]int{},
		analytics:        map[string]BroadcastAnalytics{},
		counts:           map[string]int{},
		seq:              map[string]int{},
	}
}

// next returns the next value of the named counter, starting at 1.
func (d *data) next(name string) int {
	d.seq[name]++
	return d.seq[name]
}

// State returns a deep copy of everything stored.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.d
	st := State{
		GHLContacts:        make(map[string]GHLContact, len(d.ghlContacts)),
		GHLNotes:           slices.Clone(d.ghlNotes),
		GHLTags:            map[string][]string{},
		GHLConversations:   maps.Clone(d.ghlConversations),
		GHLMessages:        slices.Clone(d.ghlMessages),
		AlowareContacts:    make(map[string]AlowareContact, len(d.aloContacts)),
		AlowareWrites:      maps.Clone(d.aloWrites),
		AlowareSMS:         slices.Clone(d.aloSMS),
		AlowareUsers:       slices.Clone(d.aloUsers),
		Broadcasts:         make([]Broadcast, len(d.broadcasts)),
		BroadcastAnalytics: maps.Clone(d.analytics),
		VerityCalls:        slices.Clone(d.calls),
		VerityMessages:     slices.Clone(d.verityMsgs),
		ClerkUsers:         slices.Clone(d.clerkUsers),
		ClerkSessions:      slices.Clone(d.clerkSessions),
		Calls:              maps.Clone(d.counts),
		Faults:             maps.Clone(s.faults),
	}
	for id, c := range d.ghlContacts {
		cc := copyGHLContact(c)
		st.GHLContacts[id] = cc
		if len(cc.Tags) > 0 {
			st.GHLTags[id] = slices.Clone(cc.Tags)
		}
	}
	for id, c := range d.aloContacts {
		st.AlowareContacts[strconv.Itoa(id)] = *c
	}
	for i, b := range d.broadcasts {
		st.Broadcasts[i] = copyBroadcast(b)
	}
	// nil slices render as [] in the JSON state.
	st.GHLNotes = nonNil(st.GHLNotes)
	st.GHLMessages = nonNil(st.GHLMessages)
	st.AlowareSMS = nonNil(st.AlowareSMS)
	st.AlowareUsers = nonNil(st.AlowareUsers)
	st.VerityCalls = nonNil(st.VerityCalls)
	st.VerityMessages = nonNil(st.VerityMessages)
	st.ClerkUsers = nonNil(st.ClerkUsers)
	st.ClerkSessions = nonNil(st.ClerkSessions)
	return st
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func copyGHLContact(c *GHLContact) GHLContact {
	cc := *c
	cc.Tags = slices.Clone(c.Tags)
	if cc.Tags == nil {
		cc.Tags = []string{}
	}
	cc.DNDSettings = maps.Clone(c.DNDSettings)
	if cc.DNDSettings == nil {
		cc.DNDSettings = map[string]GHLDNDSetting{}
	}
	return cc
}

func copyBroadcast(b Broadcast) Broadcast {
	if b.ScheduledAt != nil {
		v := *b.ScheduledAt
		b.ScheduledAt = &v
	}
	if b.SentAt != nil {
		v := *b.SentAt
		b.SentAt = &v
	}
	return b
}

// ---- timestamps ---------------------------------------------------------

// ghlTime formats t the way GHL does (RFC 3339, UTC, milliseconds).
func ghlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// alowareTime formats t the way Aloware's payloads do.
func alowareTime(t time.Time) string { return t.UTC().Format(time.DateTime) }

// isoTime formats t as RFC 3339 UTC (Verity).
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func ms(t time.Time) int64 { return t.UnixMilli() }

// ---- test helpers -------------------------------------------------------

// AddGHLContact stores c as is (a GHL-side contact the service did not
// create) and returns it with the blanks filled: id, location, name,
// dates. A contact with an existing id replaces it.
func (s *Server) AddGHLContact(c GHLContact) GHLContact {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c.ID == "" {
		c.ID = fmt.Sprintf("sbxcontact%010d", s.d.next("ghl-contact"))
	}
	if c.LocationID == "" {
		c.LocationID = s.cfg.GHLLocationID
	}
	if c.Name == "" {
		c.Name = joinName(c.FirstName, c.LastName)
	}
	if c.DateAdded == "" {
		c.DateAdded = ghlTime(now)
	}
	if c.DateUpdated == "" {
		c.DateUpdated = c.DateAdded
	}
	cc := copyGHLContact(&c)
	s.d.ghlContacts[cc.ID] = &cc
	return copyGHLContact(&cc)
}

// AddAlowareContact stores c (phone normalised, id assigned when 0, dates
// filled) and returns it.
func (s *Server) AddAlowareContact(c AlowareContact) AlowareContact {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c.ID == 0 {
		c.ID = 1000 + s.d.next("aloware-contact")
	}
	c.PhoneNumber = normalizeAlowarePhone(c.PhoneNumber)
	if c.CreatedAt == "" {
		c.CreatedAt = alowareTime(now)
	}
	if c.UpdatedAt == "" {
		c.UpdatedAt = c.CreatedAt
	}
	cc := c
	s.d.putAlowareContact(&cc)
	return c
}

// AddAlowareUser stores an Aloware user (id assigned when 0).
func (s *Server) AddAlowareUser(u AlowareUser) AlowareUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		u.ID = 100 + s.d.next("aloware-user")
	}
	s.d.aloUsers = append(s.d.aloUsers, u)
	return u
}

// AddBroadcast stores (or replaces, by id) a Verity broadcast and returns it
// with the blanks filled (id, channel sms, status draft, createdAt now).
func (s *Server) AddBroadcast(b Broadcast) Broadcast {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.ID == "" {
		b.ID = fmt.Sprintf("bc_%04d", 100+s.d.next("broadcast"))
	}
	if b.Channel == "" {
		b.Channel = "sms"
	}
	if b.Status == "" {
		b.Status = "draft"
	}
	if b.CreatedAt == "" {
		b.CreatedAt = isoTime(s.now())
	}
	b = copyBroadcast(b)
	for i := range s.d.broadcasts {
		if s.d.broadcasts[i].ID == b.ID {
			s.d.broadcasts[i] = b
			return copyBroadcast(b)
		}
	}
	s.d.broadcasts = append(s.d.broadcasts, b)
	return copyBroadcast(b)
}

// SetBroadcastAnalytics stores the analytics of a broadcast (UpdatedAt
// defaults to now).
func (s *Server) SetBroadcastAnalytics(a BroadcastAnalytics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.UpdatedAt == "" {
		a.UpdatedAt = isoTime(s.now())
	}
	s.d.analytics[a.BroadcastID] = a
}

// AddCall stores a Verity call (id assigned when empty).
func (s *Server) AddCall(c VerityCall) VerityCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == "" {
		c.ID = fmt.Sprintf("call_%04d", 100+s.d.next("call"))
	}
	if c.StartedAt == "" {
		c.StartedAt = isoTime(s.now())
	}
	s.d.calls = append(s.d.calls, c)
	return c
}

// AddClerkUser stores a Clerk user (id assigned when empty, times now).
func (s *Server) AddClerkUser(u ClerkUser) ClerkUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := ms(s.now())
	if u.ID == "" {
		u.ID = fmt.Sprintf("user_sandbox_%04d", s.d.next("clerk-user"))
	}
	if u.CreatedAt == 0 {
		u.CreatedAt = now
	}
	if u.UpdatedAt == 0 {
		u.UpdatedAt = u.CreatedAt
	}
	s.d.clerkUsers = append(s.d.clerkUsers, u)
	return u
}

// AddClerkSession stores a Clerk session (id assigned when empty, status
// active, times around now).
func (s *Server) AddClerkSession(c ClerkSession) ClerkSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addClerkSessionLocked(c, s.now())
}

func (s *Server) addClerkSessionLocked(c ClerkSession, now time.Time) ClerkSession {
	c.Object = "session"
	if c.ID == "" {
		c.ID = fmt.Sprintf("sess_sandbox_%04d", s.d.next("clerk-session"))
	}
	if c.ClientID == "" {
		c.ClientID = "client_sandbox_" + c.UserID
	}
	if c.Status == "" {
		c.Status = "active"
	}
	if c.CreatedAt == 0 {
		c.CreatedAt = ms(now)
	}
	if c.UpdatedAt == 0 {
		c.UpdatedAt = c.CreatedAt
	}
	if c.LastActiveAt == 0 {
		c.LastActiveAt = c.UpdatedAt
	}
	if c.ExpireAt == 0 {
		c.ExpireAt = c.CreatedAt + (7 * 24 * time.Hour).Milliseconds()
	}
	if c.AbandonAt == 0 {
		c.AbandonAt = c.CreatedAt + (30 * 24 * time.Hour).Milliseconds()
	}
	s.d.clerkSessions = append(s.d.clerkSessions, c)
	return c
}

// SetSessionStatus changes a Clerk session's status ("ended", "revoked",
// "active", …); tokens of a session that is no longer active stop working
// at Verity immediately.
func (s *Server) SetSessionStatus(id, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.d.clerkSessions {
		if s.d.clerkSessions[i].ID == id {
			s.d.clerkSessions[i].Status = status
			s.d.clerkSessions[i].UpdatedAt = ms(s.now())
			return nil
		}
	}
	return fmt.Errorf("no Clerk session %q", id)
}

// ---- seed ----------------------------------------------------------------

// Seeded ids (Config.Seed).
const (
	SeedActiveUserID     = "user_sandbox_alice" // has one active session
	SeedActiveSessionID  = "sess_sandbox_alice"
	SeedEndedUserID      = "user_sandbox_bob" // has one ended session only
	SeedEndedSessionID   = "sess_sandbox_bob"
	SeedNoSessionUserID  = "user_sandbox_carol" // has no session
	SeedCompletedBcastID = "bc_0001"
)

func (s *Server) seedLocked(now time.Time) {
	d := s.d
	day := 24 * time.Hour
	d.clerkUsers = []ClerkUser{
		{ID: SeedActiveUserID, FirstName: "Alice", LastName: "Operator", Email: "alice@sandbox.example",
			LastActiveAt: ms(now.Add(-time.Minute)), CreatedAt: ms(now.Add(-90 * day)), UpdatedAt: ms(now.Add(-time.Minute))},
		{ID: SeedEndedUserID, FirstName: "Bob", LastName: "Former", Email: "bob@sandbox.example",
			LastActiveAt: ms(now.Add(-2 * day)), CreatedAt: ms(now.Add(-60 * day)), UpdatedAt: ms(now.Add(-2 * day))},
		{ID: SeedNoSessionUserID, FirstName: "Carol", LastName: "Newcomer", Email: "carol@sandbox.example",
			CreatedAt: ms(now.Add(-30 * day)), UpdatedAt: ms(now.Add(-30 * day))},
	}
	s.addClerkSessionLocked(ClerkSession{ID: SeedEndedSessionID, UserID: SeedEndedUserID, Status: "ended",
		CreatedAt: ms(now.Add(-3 * day)), UpdatedAt: ms(now.Add(-2 * day)), LastActiveAt: ms(now.Add(-2 * day))}, now)
	s.addClerkSessionLocked(ClerkSession{ID: SeedActiveSessionID, UserID: SeedActiveUserID, Status: "active",
		CreatedAt: ms(now.Add(-time.Hour)), UpdatedAt: ms(now.Add(-time.Minute)), LastActiveAt: ms(now.Add(-time.Minute))}, now)

	base := time.Date(2026, 3, 1, 15, 0, 0, 0, time.UTC)
	at := func(t time.Time) *string { v := isoTime(t); return &v }
	type seedBroadcast struct {
		b Broadcast
		a BroadcastAnalytics
	}
	seeds := []seedBroadcast{
		{Broadcast{ID: "bc_0001", Name: "March promo", Status: "completed", AudienceSize: 1200,
			ScheduledAt: at(base.Add(9 * day)), SentAt: at(base.Add(9 * day)), CreatedAt: isoTime(base)},
			BroadcastAnalytics{Sent: 1200, Delivered: 1150, Failed: 50, Replied: 84, OptedOut: 6}},
		{Broadcast{ID: "bc_0002", Name: "Appointment reminders", Status: "completed", AudienceSize: 300,
			ScheduledAt: at(base.Add(10 * day)), SentAt: at(base.Add(10 * day)), CreatedAt: isoTime(base.Add(day))},
			BroadcastAnalytics{Sent: 300, Delivered: 296, Failed: 4, Replied: 41, OptedOut: 1}},
		{Broadcast{ID: "bc_0003", Name: "Spring follow-up", Status: "sending", AudienceSize: 800,
			ScheduledAt: at(base.Add(11 * day)), SentAt: at(base.Add(11 * day)), CreatedAt: isoTime(base.Add(2 * day))},
			BroadcastAnalytics{Sent: 420, Delivered: 400, Failed: 3, Replied: 12, OptedOut: 2}},
		{Broadcast{ID: "bc_0004", Name: "Webinar invite", Status: "scheduled", AudienceSize: 500,
			ScheduledAt: at(base.Add(20 * day)), CreatedAt: isoTime(base.Add(3 * day))},
			BroadcastAnalytics{}},
		{Broadcast{ID: "bc_0005", Name: "Draft newsletter", Status: "draft", AudienceSize: 0,
			CreatedAt: isoTime(base.Add(4 * day))},
			BroadcastAnalytics{}},
	}
	for i, sb := range seeds {
		sb.b.Channel = "sms"
		d.broadcasts = append(d.broadcasts, sb.b)
		sb.a.BroadcastID = sb.b.ID
		sb.a.UpdatedAt = isoTime(base.Add(time.Duration(12+i) * day))
		d.analytics[sb.b.ID] = sb.a
	}
	d.calls = []VerityCall{
		{ID: "call_0001", Direction: "outbound", From: "+18555550199", To: "+13105550100",
			DurationSeconds: 184, Disposition: "Interested", StartedAt: isoTime(base.Add(9*day + 2*time.Hour))},
		{ID: "call_0002", Direction: "inbound", From: "+13105550101", To: "+18555550199",
			DurationSeconds: 42, Disposition: "Left voicemail", StartedAt: isoTime(base.Add(9*day + 3*time.Hour))},
	}
	d.aloUsers = []AlowareUser{
		{ID: 12, Name: "Dana Agent", Email: "dana@sandbox.example"},
		{ID: 13, Name: "Eli Agent", Email: "eli@sandbox.example"},
	}
}

// putAlowareContact stores c and indexes its phone (the oldest contact keeps
// the phone, as Aloware's lookup returns it).
func (d *data) putAlowareContact(c *AlowareContact) {
	d.aloContacts[c.ID] = c
	if id, ok := d.aloByPhone[c.PhoneNumber]; !ok || c.ID < id {
		d.aloByPhone[c.PhoneNumber] = c.ID
	}
}
