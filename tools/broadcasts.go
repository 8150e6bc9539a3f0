package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream/verity"
)

func broadcastsToolset() toolset {
	return toolset{
		name: "broadcasts",
		description: "Verity broadcasts (through the Clerk-authenticated Verity API) joined with the analytics the broadcast system " +
			"reported to this service by webhook.",
		tools: []toolDef{listBroadcastsTool(), getBroadcastTool(), broadcastAnalyticsTool()},
	}
}

// broadcastHints: these tools read from Verity, an external system.
func broadcastHints(title string) mcp.ToolAnnotation {
	return mcp.ToolAnnotation{Title: title, ReadOnlyHint: yes(), DestructiveHint: no(), IdempotentHint: yes(), OpenWorldHint: yes()}
}

const verityMissing = "Verity is not configured in this service: set VERITY_BASE_URL and CLERK_SECRET_KEY (the Verity API authenticates with a Clerk session) and restart"

// verityFailure phrases a Verity error with what to do about it; what is
// the failed request ("to list broadcasts"), or "" inside a warning.
func verityFailure(what string, err error) error {
	msg := clean(err.Error(), maxMessageBytes)
	if what != "" {
		what = " " + what
	}
	switch {
	case errors.Is(err, verity.ErrUnauthorized):
		return fail("Verity refused the request%s: %s. Check CLERK_SECRET_KEY and that the Clerk user has an active session allowed in Verity; check_health shows verity_api", what, msg)
	case errors.Is(err, context.DeadlineExceeded):
		return fail("Verity did not answer%s in time; retry, and call check_health if it keeps failing", what)
	default:
		return fail("Verity failed%s: %s. Retry shortly; call check_health (verity_api) if it keeps failing", what, msg)
	}
}

type broadcastOut struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Status       string `json:"status"`
	Channel      string `json:"channel,omitempty"`
	AudienceSize int    `json:"audience_size"`
	ScheduledAt  string `json:"scheduled_at,omitempty"`
	SentAt       string `json:"sent_at,omitempty"`
	CreatedAt    string `json:"created_at,omitempty"`
}

func broadcastOf(b verity.Broadcast) broadcastOut {
	return broadcastOut{ID: clean(b.ID, maxShortBytes), Name: clean(b.Name, maxShortBytes), Status: clean(b.Status, maxShortBytes),
		Channel: clean(b.Channel, maxShortBytes), AudienceSize: b.AudienceSize, ScheduledAt: clean(b.ScheduledAt, 64),
		SentAt: clean(b.SentAt, 64), CreatedAt: clean(b.CreatedAt, 64)}
}

// ---- list_broadcasts ----

type listBroadcastsParams struct {
	Status string `json:"status"`
	Limit  int    `json:"limit"`
	Cursor string `json:"cursor"`
}

type listBroadcastsResult struct {
	Broadcasts []broadcastOut `json:"broadcasts"`
	NextCursor string         `json:"next_cursor,omitempty" jsonschema:"Verity's cursor for the next page: pass it back as cursor"`
	Truncated  bool           `json:"truncated" jsonschema:"true when Verity has more broadcasts: call again with next_cursor"`
}

func (r listBroadcastsResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d broadcasts:\n", len(r.Broadcasts))
	for _, x := range r.Broadcasts {
		fmt.Fprintf(&b, "- %s %q %s (%s, audience %d)\n", x.ID, x.Name, x.Status, orDash(x.Channel), x.AudienceSize)
	}
	writeMore(&b, r.NextCursor)
	return b.String()
}

func listBroadcastsTool() toolDef {
	return define(spec{
		name:  "list_broadcasts",
		title: "List Verity broadcasts",
		description: "Lists broadcasts from Verity (id, name, status, channel, audience size, schedule and send times), optionally by status, " +
			"paging with Verity's cursor (pass next_cursor back as cursor). Use it to find a broadcast. Next: get_broadcast or get_broadcast_analytics on an id.",
		annotations: broadcastHints("List Verity broadcasts"),
		params: []mcp.ToolOption{
			mcp.WithString("status", mcp.Description("Only broadcasts in this Verity status (e.g. draft, scheduled, sending, sent)."), mcp.MaxLength(50)),
			limitParam(20, 100, "broadcasts"),
			cursorParam(),
		},
	}, listBroadcasts)
}

func listBroadcasts(ctx context.Context, d *Deps, p listBroadcastsParams) (listBroadcastsResult, error) {
	if d.Verity == nil {
		return listBroadcastsResult{}, fail("%s.", verityMissing)
	}
	list, next, err := d.Verity.ListBroadcasts(ctx, p.Status, withDefault(p.Limit, 20), p.Cursor)
	if err != nil {
		return listBroadcastsResult{}, verityFailure("to list broadcasts", err)
	}
	r := listBroadcastsResult{Broadcasts: []broadcastOut{}, NextCursor: next, Truncated: next != ""}
	limit := withDefault(p.Limit, 20)
	if len(list) > limit { // Verity should honour limit; the bound holds even if it does not
		list, r.Truncated = list[:limit], true
	}
	for _, b := range list {
		r.Broadcasts = append(r.Broadcasts, broadcastOf(b))
	}
	return r, nil
}

// ---- get_broadcast ----

type broadcastIDParams struct {
	ID string `json:"id"`
}

type localStats struct {
	Status     string    `json:"status,omitempty"`
	Sent       int64     `json:"sent"`
	Delivered  int64     `json:"delivered"`
	Failed     int64     `json:"failed"`
	Replied    int64     `json:"replied"`
	OptedOut   int64     `json:"opted_out"`
	ReportedAt time.Time `json:"reported_at" jsonschema:"when the broadcast system reported these figures"`
	EventID    string    `json:"event_id,omitempty" jsonschema:"the webhook event that carried them"`
}

func localOf(b store.BroadcastStats) *localStats {
	return &localStats{Status: clean(b.Status, maxShortBytes), Sent: b.Sent, Delivered: b.Delivered, Failed: b.Failed, Replied: b.Replied,
		OptedOut: b.OptedOut, ReportedAt: b.ReportedAt, EventID: b.EventID}
}

type getBroadcastResult struct {
	Broadcast *broadcastOut `json:"broadcast,omitempty" jsonschema:"Verity's record; absent when Verity could not be reached"`
	Local     *localStats   `json:"local,omitempty" jsonschema:"the latest analytics received by webhook; absent when none arrived"`
	Warnings  []string      `json:"warnings"`
	NextSteps []string      `json:"next_steps"`
}

func (r getBroadcastResult) text() string {
	var b strings.Builder
	if x := r.Broadcast; x != nil {
		fmt.Fprintf(&b, "Broadcast %s %q: %s, %s, audience %d, scheduled %s, sent %s.\n", x.ID, x.Name, x.Status, orDash(x.Channel), x.AudienceSize, orDash(x.ScheduledAt), orDash(x.SentAt))
	}
	if l := r.Local; l != nil {
		fmt.Fprintf(&b, "Local analytics (reported %s): sent %d, delivered %d, failed %d, replied %d, opted out %d.\n",
			l.ReportedAt.Format(time.RFC3339), l.Sent, l.Delivered, l.Failed, l.Replied, l.OptedOut)
	} else {
		b.WriteString("No analytics received by webhook for it.\n")
	}
	for _, w := range r.Warnings {
		b.WriteString("Warning: " + w + "\n")
	}
	writeSteps(&b, r.NextSteps)
	return b.String()
}

func getBroadcastTool() toolDef {
	return define(spec{
		name:  "get_broadcast",
		title: "Get a Verity broadcast",
		description: "Returns one broadcast from Verity (name, status, channel, audience, schedule and send times) together with the latest analytics " +
			"the broadcast system reported to this service by webhook. If Verity cannot be reached the local figures are still returned, with a warning. " +
			"Use it to check one broadcast. Next: get_broadcast_analytics to compare Verity's counts with the local ones.",
		annotations: broadcastHints("Get a Verity broadcast"),
		params: []mcp.ToolOption{
			mcp.WithString("id", mcp.Required(), mcp.Description("The broadcast id, as list_broadcasts returns it."), mcp.MinLength(1), mcp.MaxLength(200)),
		},
	}, getBroadcast)
}

func getBroadcast(ctx context.Context, d *Deps, p broadcastIDParams) (getBroadcastResult, error) {
	id := strings.TrimSpace(p.ID)
	local, err := localStatsFor(ctx, d, id)
	if err != nil {
		return getBroadcastResult{}, err
	}
	if d.Verity == nil {
		return getBroadcastResult{}, fail("%s.%s", verityMissing, localHint(local))
	}
	r := getBroadcastResult{Local: local, Warnings: []string{}, NextSteps: []string{}}
	b, err := d.Verity.GetBroadcast(ctx, id)
	switch {
	case verity.IsNotFound(err):
		return r, fail("no broadcast with id %q in Verity; use list_broadcasts to find it.%s", truncateRunes(id, 80), localHint(local))
	case err != nil && local == nil:
		return r, verityFailure("to return broadcast "+truncateRunes(id, 80), err)
	case err != nil:
		r.Warnings = append(r.Warnings, "Verity could not be reached, so only the locally received analytics are shown: "+verityFailure("", err).Error())
	default:
		out := broadcastOf(b)
		r.Broadcast = &out
	}
	r.NextSteps = append(r.NextSteps, "get_broadcast_analytics compares Verity's delivery counts with the ones received by webhook.")
	return r, nil
}

func localStatsFor(ctx context.Context, d *Deps, id string) (*localStats, error) {
	b, err := d.Store.GetBroadcastStats(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return localOf(b), nil
}

func localHint(l *localStats) string {
	if l == nil {
		return ""
	}
	return fmt.Sprintf(" Locally received analytics (reported %s): sent %d, delivered %d, failed %d, replied %d, opted out %d.",
		l.ReportedAt.Format(time.RFC3339), l.Sent, l.Delivered, l.Failed, l.Replied, l.OptedOut)
}

// ---- get_broadcast_analytics ----

type analyticsFigures struct {
	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
	Replied   int64 `json:"replied"`
	OptedOut  int64 `json:"opted_out"`
}

type analyticsSide struct {
	analyticsFigures
	UpdatedAt string `json:"updated_at,omitempty"`
}

type analyticsResult struct {
	BroadcastID string            `json:"broadcast_id"`
	Verity      *analyticsSide    `json:"verity,omitempty" jsonschema:"Verity's counts now; absent when Verity failed"`
	Local       *localStats       `json:"local,omitempty" jsonschema:"the latest counts received by webhook; absent when none arrived"`
	Difference  *analyticsFigures `json:"difference,omitempty" jsonschema:"verity minus local, per figure, when both exist"`
	InSync      bool              `json:"in_sync" jsonschema:"both exist and every figure matches"`
	Warnings    []string          `json:"warnings"`
	NextSteps   []string          `json:"next_steps"`
}

func (r analyticsResult) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Analytics of broadcast %s:\n", r.BroadcastID)
	row := func(name string, f func(analyticsFigures) int64) {
		v, l, diff := "—", "—", "—"
		if r.Verity != nil {
			v = fmt.Sprint(f(r.Verity.analyticsFigures))
		}
		if r.Local != nil {
			l = fmt.Sprint(f(analyticsFigures{r.Local.Sent, r.Local.Delivered, r.Local.Failed, r.Local.Replied, r.Local.OptedOut}))
		}
		if r.Difference != nil {
			diff = fmt.Sprintf("%+d", f(*r.Difference))
		}
		fmt.Fprintf(&b, "- %-9s verity %s, local %s, difference %s\n", name, v, l, diff)
	}
	row("sent", func(a analyticsFigures) int64 { return a.Sent })
	row("delivered", func(a analyticsFigures) int64 { return a.Delivered })
	row("failed", func(a analyticsFigures) int64 { return a.Failed })
	row("replied", func(a analyticsFigures) int64 { return a.Replied })
	row("opted_out", func(a analyticsFigures) int64 { return a.OptedOut })
	for _, w := range r.Warnings {
		b.WriteString("Warning: " + w + "\n")
	}
	writeSteps(&b, r.NextSteps)
	return b.String()
}

func broadcastAnalyticsTool() toolDef {
	return define(spec{
		name:  "get_broadcast_analytics",
		title: "Compare broadcast analytics",
		description: "Returns a broadcast's delivery counts (sent, delivered, failed, replied, opted out) from Verity now, side by side with the latest counts " +
			"the broadcast system reported to this service by webhook, and their difference (verity − local). When Verity fails, the local figures are still " +
			"returned with a warning. Use it to check that analytics webhooks arrive and are processed. Next: search_events with source=broadcast and " +
			"entity_id=<id> when the local figures lag.",
		annotations: broadcastHints("Compare broadcast analytics"),
		params: []mcp.ToolOption{
			mcp.WithString("id", mcp.Required(), mcp.Description("The broadcast id."), mcp.MinLength(1), mcp.MaxLength(200)),
		},
	}, broadcastAnalytics)
}

func broadcastAnalytics(ctx context.Context, d *Deps, p broadcastIDParams) (analyticsResult, error) {
	id := strings.TrimSpace(p.ID)
	local, err := localStatsFor(ctx, d, id)
	if err != nil {
		return analyticsResult{}, err
	}
	if d.Verity == nil {
		return analyticsResult{}, fail("%s.%s", verityMissing, localHint(local))
	}
	r := analyticsResult{BroadcastID: clean(id, maxShortBytes), Local: local, Warnings: []string{}, NextSteps: []string{}}
	a, err := d.Verity.GetAnalytics(ctx, id)
	switch {
	case err != nil && local == nil && verity.IsNotFound(err):
		return r, fail("no broadcast with id %q in Verity and no analytics received for it; use list_broadcasts to find it", truncateRunes(id, 80))
	case err != nil && local == nil:
		return r, verityFailure("to return analytics of "+truncateRunes(id, 80), err)
	case err != nil:
		r.Warnings = append(r.Warnings, "Verity's figures are missing, only the locally received ones are shown: "+verityFailure("", err).Error())
	default:
		r.Verity = &analyticsSide{analyticsFigures: analyticsFigures{int64(a.Sent), int64(a.Delivered), int64(a.Failed), int64(a.Replied), int64(a.OptedOut)},
			UpdatedAt: clean(a.UpdatedAt, 64)}
	}
	switch {
	case r.Verity != nil && local != nil:
		v := r.Verity.analyticsFigures
		diff := analyticsFigures{v.Sent - local.Sent, v.Delivered - local.Delivered, v.Failed - local.Failed, v.Replied - local.Replied, v.OptedOut - local.OptedOut}
		r.Difference = &diff
		r.InSync = diff == analyticsFigures{}
		if !r.InSync {
			r.NextSteps = append(r.NextSteps, "The figures differ: the latest analytics webhook may be pending or failed — search_events with source=broadcast and entity_id="+r.BroadcastID+".")
		}
	case local == nil:
		r.Warnings = append(r.Warnings, "No analytics for this broadcast were received by webhook: check the broadcast system's webhook settings and search_events with source=broadcast.")
	}
	return r, nil
}
