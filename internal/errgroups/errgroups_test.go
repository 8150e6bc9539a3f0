package errgroups_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/df-middleware/df-middleware/internal/errgroups"
	"github.com/df-middleware/df-middleware/internal/testdb"
)

func TestErrorsDifferingOnlyInIDsShareAGroup(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	rec := errgroups.New(st, zerolog.Nop())
	ctx := context.Background()
	a := rec.Record(ctx, "sync", fmt.Errorf("contact 6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b: 422 phone 3105550100 invalid"), "")
	b := rec.Record(ctx, "sync", fmt.Errorf("contact 0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f: 422 phone 4155550123 invalid"), "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
	c := rec.Record(ctx, "sync", errors.New("aloware unreachable: connection refused"), "")
	if a.Fingerprint != b.Fingerprint || a.Fingerprint == c.Fingerprint {
		t.Fatalf("fingerprints a=%s b=%s c=%s", a.Fingerprint, b.Fingerprint, c.Fingerprint)
	}
	rows, err := st.Pool.Query(ctx, `SELECT fingerprint, count, coalesce(last_event_id::text, '') FROM error_groups ORDER BY count DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		fp    string
		count int
		last  string
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.fp, &r.count, &r.last); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 2 || got[0].fp != a.Fingerprint || got[0].count != 2 || got[0].last != "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b" || got[1].count != 1 {
		t.Fatalf("error_groups rows = %+v", got)
	}
	var nilRec *errgroups.Recorder
	nilRec.Record(ctx, "x", errors.New("ignored"), "") // a nil recorder records nothing and does not panic
}

func TestAddAggregatesUntilFlush(t *testing.T) {
	t.Parallel()
	st := testdb.New(t)
	rec := errgroups.New(st, zerolog.Nop())
	ctx := context.Background()
	for i := range 50 {
		rec.Add("upstream:aloware", fmt.Errorf("aloware POST /api/v1/webhook/forms: 503 upstream %d unavailable", i), "")
	}
	var n int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM error_groups`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows before flush: %d %v", n, err)
	}
	rec.Flush(ctx)
	var count int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*), max(count) FROM error_groups`).Scan(&n, &count); err != nil || n != 1 || count != 50 {
		t.Fatalf("after flush: %d groups, count %d, %v", n, count, err)
	}
}
