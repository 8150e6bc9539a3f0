package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/upstream"
	"github.com/df-middleware/df-middleware/internal/upstream/verity"
)

func withBroadcasts(n int) func(*harness) {
	return func(h *harness) {
		for i := range n {
			h.verity.broadcasts = append(h.verity.broadcasts, verity.Broadcast{ID: fmt.Sprintf("b%03d", i), Name: fmt.Sprintf("Promo %d\u202E", i), Status: "sent", Channel: "sms", AudienceSize: 100 + i})
		}
		h.verity.analytics = map[string]verity.Analytics{
			"b001": {BroadcastID: "b001", Sent: 100, Delivered: 95, Failed: 5, Replied: 3, OptedOut: 1},
			"b002": {BroadcastID: "b002", Sent: 10},
		}
	}
}

func TestListBroadcasts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	withBroadcasts(130)(h)
	var first, second listBroadcastsResult
	h.ok("list_broadcasts", map[string]any{"limit": 100, "status": "sent"}, &first)
	if len(first.Broadcasts) != 100 || !first.Truncated || first.NextCursor != "c100" || h.verity.lastStatus != "sent" {
		t.Fatalf("first page: %d, next %q", len(first.Broadcasts), first.NextCursor)
	}
	if strings.Contains(first.Broadcasts[0].Name, "\u202E") {
		t.Errorf("name not sanitized: %q", first.Broadcasts[0].Name)
	}
	text := h.ok("list_broadcasts", map[string]any{"limit": 100, "cursor": first.NextCursor}, &second)
	if len(second.Broadcasts) != 30 || second.Truncated || h.verity.lastCursor != "c100" {
		t.Fatalf("second page: %d, truncated %v", len(second.Broadcasts), second.Truncated)
	}
	if !strings.Contains(text, "b129") {
		t.Errorf("text:\n%s", text)
	}
	h.ok("list_broadcasts", nil, &first)
	if h.verity.lastLimit != 20 {
		t.Errorf("default limit sent to Verity = %d", h.verity.lastLimit)
	}

	h.verity.setErr(&upstream.Error{Upstream: "verity", Endpoint: "GET /api/comms/broadcasts", Status: 503, Message: "maintenance"})
	if msg := h.fails("list_broadcasts", nil); !strings.Contains(msg, "maintenance") || !strings.Contains(msg, "check_health") {
		t.Errorf("Verity failure: %q", msg)
	}
	h.verity.setErr(fmt.Errorf("token: %w", verity.ErrUnauthorized))
	if msg := h.fails("list_broadcasts", nil); !strings.Contains(msg, "CLERK_SECRET_KEY") {
		t.Errorf("unauthorized: %q", msg)
	}

	off := newHarnessOn(t, h.st, withoutVerity())
	for _, tool := range []string{"list_broadcasts", "get_broadcast", "get_broadcast_analytics"} {
		args := map[string]any{"id": "b001"}
		if tool == "list_broadcasts" {
			args = nil
		}
		if msg := off.fails(tool, args); !strings.Contains(msg, "VERITY_BASE_URL") || !strings.Contains(msg, "CLERK_SECRET_KEY") {
			t.Errorf("%s without Verity: %q", tool, msg)
		}
	}
	// A typed nil client is "not configured" too.
	typedNil := newHarnessOn(t, h.st, func(d *Deps, _ *Options) { d.Verity = (*verity.Client)(nil) })
	if msg := typedNil.fails("list_broadcasts", nil); !strings.Contains(msg, "VERITY_BASE_URL") {
		t.Errorf("typed nil client: %q", msg)
	}
}

func TestGetBroadcastAndAnalytics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	withBroadcasts(3)(h)
	ctx := context.Background()
	if _, err := h.st.UpsertBroadcastStats(ctx, store.BroadcastStats{BroadcastID: "b001", Status: "sent", Sent: 100, Delivered: 90, Failed: 5, Replied: 3, OptedOut: 1, ReportedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}

	var b getBroadcastResult
	h.ok("get_broadcast", map[string]any{"id": "b001"}, &b)
	if b.Broadcast == nil || b.Broadcast.ID != "b001" || b.Local == nil || b.Local.Delivered != 90 || len(b.Warnings) != 0 {
		t.Fatalf("get_broadcast = %+v", b)
	}
	if msg := h.fails("get_broadcast", map[string]any{"id": "b999"}); !strings.Contains(msg, "no broadcast with id") || !strings.Contains(msg, "list_broadcasts") {
		t.Errorf("missing broadcast: %q", msg)
	}

	var a analyticsResult
	text := h.ok("get_broadcast_analytics", map[string]any{"id": "b001"}, &a)
	if a.Verity == nil || a.Local == nil || a.Difference == nil || a.Difference.Delivered != 5 || a.Difference.Sent != 0 || a.InSync {
		t.Fatalf("analytics = %+v", a)
	}
	if !strings.Contains(text, "delivered verity 95, local 90, difference +5") {
		t.Errorf("text:\n%s", text)
	}

	h.verity.setErr(errors.Join(context.DeadlineExceeded))
	var degraded analyticsResult
	h.ok("get_broadcast_analytics", map[string]any{"id": "b001"}, &degraded)
	if degraded.Verity != nil || degraded.Local == nil || len(degraded.Warnings) != 1 || !strings.Contains(degraded.Warnings[0], "in time") {
		t.Fatalf("Verity down, local kept: %+v", degraded)
	}
	var degradedGet getBroadcastResult
	h.ok("get_broadcast", map[string]any{"id": "b001"}, &degradedGet)
	if degradedGet.Broadcast != nil || degradedGet.Local == nil || len(degradedGet.Warnings) != 1 {
		t.Fatalf("get_broadcast with Verity down = %+v", degradedGet)
	}
	if msg := h.fails("get_broadcast_analytics", map[string]any{"id": "b002"}); !strings.Contains(msg, "Verity did not answer") {
		t.Errorf("Verity down and nothing local: %q", msg)
	}
	h.verity.setErr(nil)
	if msg := h.fails("get_broadcast_analytics", map[string]any{"id": "b777"}); !strings.Contains(msg, "no broadcast with id") {
		t.Errorf("unknown broadcast: %q", msg)
	}
	var noLocal analyticsResult
	h.ok("get_broadcast_analytics", map[string]any{"id": "b002"}, &noLocal)
	if noLocal.Verity == nil || noLocal.Verity.Sent != 10 || noLocal.Local != nil || noLocal.Difference != nil || len(noLocal.Warnings) != 1 ||
		!strings.Contains(noLocal.Warnings[0], "received by webhook") {
		t.Fatalf("Verity only: %+v", noLocal)
	}
}
