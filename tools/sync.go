package tools

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/df-middleware/df-middleware/internal/store"
	dfsync "github.com/df-middleware/df-middleware/internal/sync"
)

func syncToolset() toolset {
	return toolset{
		name: "sync",
		description: "Synchronisation between GHL, Aloware, the texting system and the store: success rates and durations, " +
			"failed operations, and the sync state of one contact.",
		tools: []toolDef{syncStatsTool(), listSyncErrorsTool(), contactSyncStatusTool()},
	}
}

// ---- get_sync_stats ----

type syncStatsParams struct {
	Window     string `json:"window"`
	Direction  string `json:"direction"`
	EntityType string `json:"entity_type"`
}

type syncStatsRow struct {
	Direction   string  `json:"direction"`
	EntityType  string  `json:"entity_type"`
	Total       int64   `json:"total"`
	Success     int64   `json:"success"`
	Error       int64   `json:"error"`
	Skipped     int64   `json:"skipped"`
	SuccessRate float64 `json:"success_rate" jsonschema:"success / (success + error), 0–1; skipped operations do not count"`
	AvgMS       float64 `json:"avg_ms" jsonschema:"mean duration, exact"`
	P50MS       float64 `json:"p50_ms" jsonschema:"median duration, estimated from a histogram"`
	P95MS       float64 `json:"p95_ms" jsonschema:"95th percentile duration, estimated from a histogram"`
	MaxMS       float64 `json:"max_ms"`
}

type syncStatsResult struct {
	WindowHours int            `json:"window_hours"`
	WindowStart time.Time      `json:"window_start" jsonschema:"start of the first whole hour counted"`
	Rows        []syncStatsRow `json:"rows" jsonschema:"one row per direction and entity type, most operations first"`
	Totals      syncStatsRow   `json:"totals" jsonschema:"all rows together"`
	Notes       []string       `json:"notes"`
}

func (r syncStatsResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Sync operations since %s (%d h): %d total, %d errors, success rate %.1f%%, p95 ≈%.0f ms.\n",
		r.WindowStart.Format(time.RFC3339), r.WindowHours, r.Totals.Total, r.Totals.Error, 100*r.Totals.SuccessRate, r.Totals.P95MS)
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "- %s %s: %d ops (%d ok, %d error, %d skipped), success %.1f%%, avg %.0f ms, p50 ≈%.0f ms, p95 ≈%.0f ms\n",
			row.Direction, row.EntityType, row.Total, row.Success, row.Error, row.Skipped, 100*row.SuccessRate, row.AvgMS, row.P50MS, row.P95MS)
	}
	writeSteps(&b, r.Notes)
	return b.String()
}

func syncStatsTool() toolDef {
	return define(spec{
		name:  "get_sync_stats",
		title: "Get sync statistics",
		description: "Summarises sync operations over a window (default 24h, at most 7d, in whole hours): per direction (ghl_to_aloware, aloware_to_ghl, " +
			"texting_to_ghl, …) and entity type, the counts by status (success, error, skipped), the success rate, and average, p50, p95 and max duration. " +
			"Reads an hourly rollup, so it costs the same on any volume; the window starts at a whole hour and percentiles are estimates. " +
			"Use it to see which sync path fails or slows down. Next: list_sync_errors with the direction that fails.",
		annotations: readOnlyHints("Get sync statistics"),
		params: []mcp.ToolOption{
			mcp.WithString("window", mcp.Description("How far back, as a duration: 24h (default), 90m, 7d (at most 7d). Rounded up to whole hours, counting the current one."),
				mcp.MaxLength(16), mcp.DefaultString("24h")),
			mcp.WithString("direction", mcp.Description("Only this direction (e.g. ghl_to_aloware, aloware_to_ghl, texting_to_ghl, ghl_to_store, texting_to_store, broadcast_to_store)."), mcp.MaxLength(100)),
			mcp.WithString("entity_type", mcp.Description("Only this entity type (contact, call, message, optout, broadcast, …)."), mcp.MaxLength(100)),
		},
	}, syncStats)
}

func syncStats(ctx context.Context, d *Deps, p syncStatsParams) (syncStatsResult, error) {
	hours, err := parseWindow(p.Window, 24*time.Hour, 7*24*time.Hour, time.Hour)
	if err != nil {
		return syncStatsResult{}, err
	}
	start, rows, err := d.Store.SyncStats(ctx, hours, p.Direction, p.EntityType)
	if err != nil {
		return syncStatsResult{}, err
	}
	type key struct{ dir, ent string }
	hists := map[key]*store.Histogram{}
	counts := map[key]*syncStatsRow{}
	total := store.NewHistogram()
	var order []key
	for _, row := range rows {
		k := key{row.Direction, row.EntityType}
		c, ok := counts[k]
		if !ok {
			c = &syncStatsRow{Direction: clean(row.Direction, maxShortBytes), EntityType: clean(row.EntityType, maxShortBytes)}
			h := store.NewHistogram()
			counts[k], hists[k] = c, &h
			order = append(order, k)
		}
		c.Total += row.Count
		switch row.Status {
		case store.SyncSuccess:
			c.Success += row.Count
		case store.SyncError:
			c.Error += row.Count
		case store.SyncSkipped:
			c.Skipped += row.Count
		}
		hists[k].Merge(row.Histogram)
		total.Merge(row.Histogram)
	}
	r := syncStatsResult{WindowHours: hours, WindowStart: start, Rows: []syncStatsRow{}, Notes: []string{},
		Totals: syncStatsRow{Direction: "all", EntityType: "all"}}
	for _, k := range order {
		c := counts[k]
		fillDurations(c, *hists[k])
		r.Rows = append(r.Rows, *c)
		r.Totals.Total += c.Total
		r.Totals.Success += c.Success
		r.Totals.Error += c.Error
		r.Totals.Skipped += c.Skipped
	}
	fillDurations(&r.Totals, total)
	sort.SliceStable(r.Rows, func(i, j int) bool { return r.Rows[i].Total > r.Rows[j].Total })
	if r.Totals.Total == 0 {
		r.Notes = append(r.Notes, "No sync operation in the window: check that workers run (get_queue_status) and that events arrive (search_events).")
	}
	for _, row := range r.Rows {
		if row.Error > 0 && row.SuccessRate < 0.95 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s %s fails often (%.1f%% success): call list_sync_errors with direction=%s.", row.Direction, row.EntityType, 100*row.SuccessRate, row.Direction))
		}
	}
	r.Notes = append(r.Notes, "Percentiles are estimated from a duration histogram (bucket bounds 5 ms … 1 h); averages are exact.")
	return r, nil
}

func fillDurations(row *syncStatsRow, h store.Histogram) {
	if row.Success+row.Error > 0 {
		row.SuccessRate = round4(float64(row.Success) / float64(row.Success+row.Error))
	}
	row.AvgMS, row.P50MS, row.P95MS, row.MaxMS = round2(h.Mean()), round2(h.Percentile(0.5)), round2(h.Percentile(0.95)), round2(h.MaxMS)
}

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

// ---- list_sync_errors ----

type listSyncErrorsParams struct {
	Direction  string `json:"direction"`
	EntityType string `json:"entity_type"`
	EntityID   string `json:"entity_id"`
	Since      string `json:"since"`
	Until      string `json:"until"`
	Limit      int    `json:"limit"`
	Cursor     string `json:"cursor"`
}

type syncErrorsResult struct {
	Errors      []syncRow `json:"errors" jsonschema:"failed sync operations, newest first"`
	NextCursor  string    `json:"next_cursor,omitempty"`
	Truncated   bool      `json:"truncated" jsonschema:"true when more may match: call again with next_cursor"`
	ScanLimited bool      `json:"scan_limited" jsonschema:"true when this call stopped after examining its cap of error rows; next_cursor continues further back"`
}

func (r syncErrorsResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d failed sync operations", len(r.Errors))
	if r.ScanLimited {
		b.WriteString(" (scan limit reached: more may match further back)")
	}
	b.WriteString(":\n")
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "- %s %s %s %s", e.StartedAt.Format(time.RFC3339), e.Direction, e.EntityType, e.EntityID)
		if e.CorrelationID != "" {
			fmt.Fprintf(&b, " (event %s)", e.CorrelationID)
		}
		fmt.Fprintf(&b, ": %s\n", truncateRunes(e.Error, 200))
	}
	writeMore(&b, r.NextCursor)
	return b.String()
}

func listSyncErrorsTool() toolDef {
	return define(spec{
		name:  "list_sync_errors",
		title: "List failed sync operations",
		description: "Lists failed sync operations (sync_log rows with status error), newest first: direction, entity, source and target ids, error message " +
			"(provider text: sanitized, bounded), duration and the event that caused it. Filter by direction, entity type, entity id and time range; " +
			"pages with limit and next_cursor, and each call examines at most 10,000 error rows (scan_limited says when that cut a page short). " +
			"Use it when get_sync_stats shows errors. Next: get_event on event_id, then replay_event once the cause is fixed.",
		annotations: readOnlyHints("List failed sync operations"),
		params: []mcp.ToolOption{
			mcp.WithString("direction", mcp.Description("Only this direction (e.g. ghl_to_aloware)."), mcp.MaxLength(100)),
			mcp.WithString("entity_type", mcp.Description("Only this entity type (contact, call, message, …)."), mcp.MaxLength(100)),
			mcp.WithString("entity_id", mcp.Description("Only operations on this entity id."), mcp.MaxLength(200)),
			timeParam("since", "Only operations started at or after this time."),
			timeParam("until", "Only operations started before this time."),
			limitParam(20, 100, "errors"),
			cursorParam(),
		},
	}, listSyncErrors)
}

func listSyncErrors(ctx context.Context, d *Deps, p listSyncErrorsParams) (syncErrorsResult, error) {
	since, until, err := timeRange(p.Since, p.Until)
	if err != nil {
		return syncErrorsResult{}, err
	}
	page, err := d.Store.ListSyncErrors(ctx, store.SyncErrorSearch{Direction: p.Direction, EntityType: p.EntityType, EntityID: p.EntityID,
		Since: since, Until: until, Cursor: p.Cursor, Limit: withDefault(p.Limit, 20), ScanCap: store.DefaultScanCap})
	if errors.Is(err, store.ErrBadCursor) {
		return syncErrorsResult{}, badCursor("list_sync_errors")
	}
	if err != nil {
		return syncErrorsResult{}, err
	}
	r := syncErrorsResult{Errors: []syncRow{}, NextCursor: page.NextCursor, Truncated: page.NextCursor != "", ScanLimited: page.ScanLimited}
	for _, e := range page.Entries {
		r.Errors = append(r.Errors, syncRowOf(e, maxMessageBytes))
	}
	return r, nil
}

// ---- get_contact_sync_status ----

type contactParams struct {
	Phone     string `json:"phone"`
	Email     string `json:"email"`
	GHLID     string `json:"ghl_id"`
	AlowareID string `json:"aloware_id"`
}

type lookup struct {
	By         string `json:"by" jsonschema:"phone, email, ghl_id or aloware_id"`
	Value      string `json:"value"`
	Normalized string `json:"normalized,omitempty" jsonschema:"the phone in E.164, as stored"`
}

type mappingOut struct {
	GHLID     string     `json:"ghl_id,omitempty"`
	AlowareID string     `json:"aloware_id,omitempty"`
	PhoneE164 string     `json:"phone_e164,omitempty"`
	Email     string     `json:"email,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}

type optOutOut struct {
	PhoneE164 string    `json:"phone_e164"`
	Status    string    `json:"status" jsonschema:"opted_out or opted_in"`
	Keyword   string    `json:"keyword,omitempty"`
	Source    string    `json:"source"`
	EventID   string    `json:"event_id,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

type contactResult struct {
	Lookup       lookup         `json:"lookup"`
	Mapping      *mappingOut    `json:"mapping,omitempty" jsonschema:"the GHL ↔ Aloware link; absent when the contact is not linked"`
	OptOut       *optOutOut     `json:"opt_out,omitempty" jsonschema:"the phone's STOP/START state; absent when never recorded"`
	RecentSync   []syncRow      `json:"recent_sync" jsonschema:"newest sync operations on either id (contact and opt-out operations)"`
	RecentEvents []eventSummary `json:"recent_events" jsonschema:"newest webhook events about this contact (either id, or the phone for texting)"`
	Truncated    bool           `json:"truncated" jsonschema:"true when more operations or events exist than shown"`
	NextSteps    []string       `json:"next_steps"`
}

const contactRecent = 20

func (r contactResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Contact by %s %s", r.Lookup.By, r.Lookup.Value)
	if r.Lookup.Normalized != "" && r.Lookup.Normalized != r.Lookup.Value {
		fmt.Fprintf(&b, " (%s)", r.Lookup.Normalized)
	}
	b.WriteString(":\n")
	if m := r.Mapping; m != nil {
		fmt.Fprintf(&b, "Mapping: GHL %s ↔ Aloware %s, phone %s, email %s", orDash(m.GHLID), orDash(m.AlowareID), orDash(m.PhoneE164), orDash(m.Email))
		if m.RetiredAt != nil {
			fmt.Fprintf(&b, " (retired %s)", m.RetiredAt.Format(time.RFC3339))
		}
		b.WriteString(".\n")
	} else {
		b.WriteString("Mapping: none.\n")
	}
	if o := r.OptOut; o != nil {
		fmt.Fprintf(&b, "Opt-out: %s (%s via %s, %s).\n", o.Status, orDash(o.Keyword), o.Source, o.UpdatedAt.Format(time.RFC3339))
	}
	for _, s := range r.RecentSync {
		fmt.Fprintf(&b, "- sync %s %s %s %s", s.StartedAt.Format(time.RFC3339), s.Direction, s.EntityType, s.Status)
		if s.Error != "" {
			fmt.Fprintf(&b, " — %s", truncateRunes(s.Error, 120))
		}
		b.WriteByte('\n')
	}
	for _, e := range r.RecentEvents {
		fmt.Fprintf(&b, "- event %s %s %s/%s %s\n", e.ReceivedAt.Format(time.RFC3339), e.ID, e.Source, e.EventType, e.Status)
	}
	writeSteps(&b, r.NextSteps)
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func contactSyncStatusTool() toolDef {
	return define(spec{
		name:  "get_contact_sync_status",
		title: "Get a contact's sync status",
		description: "Shows how one contact is synchronised, found by exactly one of phone (any format; normalised to E.164), email, ghl_id or aloware_id: " +
			"its GHL ↔ Aloware mapping, its opt-out (STOP) state, the newest sync operations on either id, and the newest webhook events about it. " +
			"Use it when a contact is missing or wrong in one system. Next: get_event on a failed event, list_sync_errors with entity_id.",
		annotations: readOnlyHints("Get a contact's sync status"),
		params: []mcp.ToolOption{
			mcp.WithString("phone", mcp.Description("Phone number in any common format (+1 310 555 0100, (310) 555-0100); US is assumed without a country code."), mcp.MaxLength(40)),
			mcp.WithString("email", mcp.Description("Email address (case-insensitive)."), mcp.MaxLength(320)),
			mcp.WithString("ghl_id", mcp.Description("GHL contact id."), mcp.MaxLength(200)),
			mcp.WithString("aloware_id", mcp.Description("Aloware contact id."), mcp.MaxLength(200)),
		},
	}, contactSyncStatus)
}

func contactSyncStatus(ctx context.Context, d *Deps, p contactParams) (contactResult, error) {
	var given []lookup
	for _, l := range []lookup{{"phone", p.Phone, ""}, {"email", p.Email, ""}, {"ghl_id", p.GHLID, ""}, {"aloware_id", p.AlowareID, ""}} {
		if l.Value = strings.TrimSpace(l.Value); l.Value != "" {
			given = append(given, l)
		}
	}
	if len(given) != 1 {
		return contactResult{}, fail("give exactly one of phone, email, ghl_id or aloware_id (got %d); call again with one", len(given))
	}
	l := given[0]
	field, value := l.By, l.Value
	if l.By == "phone" {
		l.Normalized = dfsync.NormalizePhone(l.Value, "US")
		if l.Normalized == "" {
			return contactResult{}, fail("phone %q is not a possible phone number; give it with its country code (+1 310 555 0100) and call again", truncateRunes(l.Value, 40))
		}
		value = l.Normalized
	}
	r := contactResult{Lookup: l, RecentSync: []syncRow{}, RecentEvents: []eventSummary{}, NextSteps: []string{}}
	r.Lookup.Value = clean(l.Value, maxShortBytes)

	m, err := d.Store.MappingBy(ctx, field, value)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return r, err
	default:
		r.Mapping = &mappingOut{GHLID: m.GHLID, AlowareID: m.AlowareID, PhoneE164: m.PhoneE164, Email: clean(m.Email, maxShortBytes),
			CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, RetiredAt: m.RetiredAt}
	}

	ids := map[string]bool{}
	phone := ""
	switch field {
	case "ghl_id", "aloware_id":
		ids[value] = true
	case "phone":
		phone = value
	}
	if r.Mapping != nil {
		for _, id := range []string{r.Mapping.GHLID, r.Mapping.AlowareID} {
			if id != "" {
				ids[id] = true
			}
		}
		if phone == "" {
			phone = r.Mapping.PhoneE164
		}
	}
	if phone != "" {
		o, err := d.Store.GetOptOut(ctx, phone)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return r, err
		default:
			r.OptOut = &optOutOut{PhoneE164: o.PhoneE164, Status: o.Status, Keyword: clean(o.Keyword, maxShortBytes), Source: o.Source, EventID: o.EventID, UpdatedAt: o.UpdatedAt}
		}
	}
	idList := make([]string, 0, len(ids)+1)
	for id := range ids {
		idList = append(idList, id)
	}
	sort.Strings(idList)
	ops, err := d.Store.SyncLogForEntities(ctx, []string{"contact", "optout"}, idList, contactRecent+1)
	if err != nil {
		return r, err
	}
	if len(ops) > contactRecent {
		ops, r.Truncated = ops[:contactRecent], true
	}
	for _, o := range ops {
		r.RecentSync = append(r.RecentSync, syncRowOf(o, maxShortBytes))
	}
	eventIDs := idList
	if phone != "" {
		eventIDs = append(eventIDs, phone) // texting events name the contact by phone
	}
	evs, err := d.Store.EventsForEntities(ctx, "contact", eventIDs, contactRecent+1)
	if err != nil {
		return r, err
	}
	if len(evs) > contactRecent {
		evs, r.Truncated = evs[:contactRecent], true
	}
	for _, e := range evs {
		r.RecentEvents = append(r.RecentEvents, summarize(e))
	}

	if r.Mapping == nil && r.OptOut == nil && len(r.RecentSync) == 0 && len(r.RecentEvents) == 0 {
		return r, fail("no contact found for %s %q: no mapping, opt-out, sync operation or event mentions it. Check the value, try another identifier "+
			"(phone, email, ghl_id, aloware_id), or search_events with payload_contains", l.By, truncateRunes(l.Value, 80))
	}
	if r.Mapping == nil {
		r.NextSteps = append(r.NextSteps, "The contact is not linked between GHL and Aloware: look for a failed contact sync in recent_sync or list_sync_errors.")
	}
	for _, s := range r.RecentSync {
		if s.Status == store.SyncError && s.CorrelationID != "" {
			r.NextSteps = append(r.NextSteps, fmt.Sprintf("The latest failed operation came from event %s: get_event on it, then replay_event once the cause is fixed.", s.CorrelationID))
			break
		}
	}
	if r.OptOut != nil && r.OptOut.Status == "opted_out" {
		r.NextSteps = append(r.NextSteps, "The phone is opted out: messages to it are suppressed and GHL DND is set.")
	}
	return r, nil
}
