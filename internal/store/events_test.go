package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

func newEvent(key string) store.NewEvent {
	return store.NewEvent{Source: "texting", EventType: "message.received", EntityType: "message",
		EntityID: key, DedupeKey: "texting:" + key, Payload: []byte(`{"k":"` + key + `"}`), RequestID: "req-" + key}
}

func TestInsertEventsDedupesWithinAndAcrossBatches(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()

	res, err := st.InsertEvents(ctx, []store.NewEvent{newEvent("a"), newEvent("b"), newEvent("a")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate {
		t.Fatalf("duplicate flags = %+v, want only the third a duplicate", res)
	}
	if res[2].ID != res[0].ID {
		t.Fatalf("in-batch duplicate got id %s, want the first row's %s", res[2].ID, res[0].ID)
	}
	again, err := st.InsertEvents(ctx, []store.NewEvent{newEvent("b"), newEvent("c")})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != res[1].ID || again[1].Duplicate {
		t.Fatalf("second batch = %+v, want b duplicate of %s and c new", again, res[1].ID)
	}
	var n int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("stored %d rows, want 3", n)
	}
	ev, err := st.GetEvent(ctx, res[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != store.StatusPending || ev.EntityID != "a" || string(ev.Payload) != `{"k": "a"}` || ev.RequestID != "req-a" {
		t.Fatalf("stored event = %+v", ev)
	}
}

func TestGetEventNotFound(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	for _, id := range []string{"not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
		if _, err := st.GetEvent(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetEvent(%q) err = %v, want ErrNotFound", id, err)
		}
	}
}

func TestListEventsKeysetPagination(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	var batch []store.NewEvent
	for i := range 25 {
		e := newEvent(fmt.Sprintf("k%02d", i))
		if i%5 == 0 {
			e.Source = "ghl"
		}
		batch = append(batch, e)
	}
	if _, err := st.InsertEvents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		page, err := st.ListEvents(ctx, store.EventFilter{Source: "texting", Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page.Events {
			if seen[e.ID] {
				t.Fatalf("event %s returned twice", e.ID)
			}
			if e.Source != "texting" || e.Payload != nil {
				t.Fatalf("listing returned %+v", e)
			}
			seen[e.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 20 || pages != 3 {
		t.Fatalf("saw %d texting events over %d pages, want 20 over 3", len(seen), pages)
	}
	if _, err := st.ListEvents(ctx, store.EventFilter{Cursor: "garbage!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("bad cursor err = %v", err)
	}
	page, err := st.ListEvents(ctx, store.EventFilter{Since: time.Now().Add(time.Hour)})
	if err != nil || len(page.Events) != 0 {
		t.Fatalf("future since: %d events, err %v", len(page.Events), err)
	}
}

func TestTransitionsAndAudit(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	res, err := st.InsertEvents(ctx, []store.NewEvent{newEvent("t")})
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].ID
	actor := store.Actor{Name: "admin", Interface: "admin-api", RequestID: "r1"}

	steps := []struct {
		action     store.Action
		wantStatus string // "" means the action must be refused
		current    string
	}{
		{store.ActionReplay, "", store.StatusPending},
		{store.ActionRelease, "", store.StatusPending},
		{store.ActionQuarantine, store.StatusQuarantined, ""},
		{store.ActionQuarantine, "", store.StatusQuarantined},
		{store.ActionReplay, "", store.StatusQuarantined},
		{store.ActionRelease, store.StatusPending, ""},
	}
	for i, s := range steps {
		ev, err := st.TransitionEvent(ctx, id, s.action, "because", actor)
		if s.wantStatus == "" {
			var te *store.TransitionError
			if !errors.As(err, &te) || te.Current != s.current {
				t.Fatalf("step %d %s: err = %v, want TransitionError from %s", i, s.action, err, s.current)
			}
			continue
		}
		if err != nil || ev.Status != s.wantStatus {
			t.Fatalf("step %d %s: status %q err %v, want %s", i, s.action, ev.Status, err, s.wantStatus)
		}
	}
	if _, err := st.TransitionEvent(ctx, "00000000-0000-0000-0000-000000000000", store.ActionReplay, "", actor); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing event err = %v", err)
	}
	audit, err := st.ListAudit(ctx, "event:"+id, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 || audit[0].Action != "release_event" || audit[1].Action != "quarantine_event" ||
		audit[1].Reason != "because" || audit[1].Interface != "admin-api" || audit[1].RequestID != "r1" {
		t.Fatalf("audit rows = %+v", audit)
	}
}
