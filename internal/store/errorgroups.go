package store

import (
	"context"
	"fmt"
	"strings"
)

// RecordError counts n occurrences of an error group: the first creates the
// row, later ones bump count and last_seen and keep the newest sample.
func (s *Store) RecordError(ctx context.Context, fingerprint, component, class, sample, eventID string, n int64) error {
	var ev *string
	if ValidID(eventID) {
		ev = &eventID
	}
	if len(sample) > 2000 {
		sample = strings.ToValidUTF8(sample[:2000], "")
	}
	sample = strings.ReplaceAll(sample, "\x00", "")
	_, err := s.Pool.Exec(ctx, `INSERT INTO error_groups (fingerprint, component, error_class, sample_message, last_event_id, count)
		VALUES ($1, $2, $3, $4, $5::uuid, $6)
		ON CONFLICT (fingerprint) DO UPDATE SET count = error_groups.count + EXCLUDED.count, last_seen = now(),
			sample_message = EXCLUDED.sample_message,
			last_event_id = coalesce(EXCLUDED.last_event_id, error_groups.last_event_id)`,
		fingerprint, component, class, sample, ev, max(n, 1))
	if err != nil {
		return fmt.Errorf("record error group: %w", err)
	}
	return nil
}
