package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/df-middleware/df-middleware/internal/store"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

// New pending events wake listening workers; duplicates and events stored
// already finished (skipped by the Aloware allowlist) do not.
func TestInsertNotifiesOnlyForNewPendingEvents(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	ctx := context.Background()
	conn, err := st.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	notified := func() bool {
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := conn.WaitForNotification(wctx)
		return err == nil
	}
	if _, err := st.InsertEvents(ctx, []store.NewEvent{newEvent("n1")}); err != nil {
		t.Fatal(err)
	}
	if !notified() {
		t.Fatal("no notification for a new pending event")
	}
	if _, err := st.InsertEvents(ctx, []store.NewEvent{newEvent("n1")}); err != nil {
		t.Fatal(err)
	}
	skipped := newEvent("n2")
	skipped.Status, skipped.ErrorMessage = store.StatusSkipped, "not in allowlist"
	if _, err := st.InsertEvents(ctx, []store.NewEvent{skipped}); err != nil {
		t.Fatal(err)
	}
	if notified() {
		t.Fatal("notified for a duplicate or an already-finished event")
	}
}
