package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SyncLogEntry is one row of sync_log: one sync operation.
type SyncLogEntry struct {
	ID            int64      `json:"id"`
	Direction     string     `json:"direction"`
	EntityType    string     `json:"entity_type"`
	EntityID      string     `json:"entity_id,omitempty"`
	SourceID      string     `json:"source_id,omitempty"`
	TargetID      string     `json:"target_id,omitempty"`
	Status        string     `json:"status"`
	StartedAt     time.Time  `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	ErrorMessage  string     `json:"error_message,omitempty"`
	CorrelationID string     `json:"correlation_id,omitempty"`
}

// Sync log statuses.
const (
	SyncSuccess = "success"
	SyncError   = "error"
	SyncSkipped = "skipped"
)

// InsertSyncLog records one sync operation.
func (s *Store) InsertSyncLog(ctx context.Context, e SyncLogEntry) error {
	var corr *string
	if ValidID(e.CorrelationID) {
		corr = &e.CorrelationID
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO sync_log (direction, entity_type, entity_id, source_id, target_id,
			status, started_at, finished_at, error_message, correlation_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid)`,
		e.Direction, e.EntityType, nullIfEmpty(e.EntityID), nullIfEmpty(e.SourceID), nullIfEmpty(e.TargetID),
		e.Status, e.StartedAt, e.FinishedAt, nullIfEmpty(e.ErrorMessage), corr)
	if err != nil {
		return fmt.Errorf("write sync_log: %w", err)
	}
	return nil
}

// SyncLogForEvent returns the sync operations an event caused, oldest first.
func (s *Store) SyncLogForEvent(ctx context.Context, eventID string) ([]SyncLogEntry, error) {
	if !ValidID(eventID) {
		return nil, nil
	}
	rows, err := s.Pool.Query(ctx, `SELECT id, direction, entity_type, coalesce(entity_id, ''), coalesce(source_id, ''),
			coalesce(target_id, ''), status, started_at, finished_at, coalesce(error_message, ''), coalesce(correlation_id::text, '')
		FROM sync_log WHERE correlation_id = $1::uuid ORDER BY started_at, id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("read sync_log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (SyncLogEntry, error) {
		var e SyncLogEntry
		err := r.Scan(&e.ID, &e.Direction, &e.EntityType, &e.EntityID, &e.SourceID, &e.TargetID, &e.Status,
			&e.StartedAt, &e.FinishedAt, &e.ErrorMessage, &e.CorrelationID)
		return e, err
	})
}

// ContactMapping links a GHL contact and an Aloware contact.
type ContactMapping struct {
	ID        int64      `json:"id"`
	GHLID     string     `json:"ghl_id,omitempty"`
	AlowareID string     `json:"aloware_id,omitempty"`
	PhoneE164 string     `json:"phone_e164,omitempty"`
	Email     string     `json:"email,omitempty"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

const mappingColumns = `id, coalesce(ghl_id, ''), coalesce(aloware_id, ''), coalesce(phone_e164, ''), coalesce(email, ''),
	retired_at, created_at, updated_at`

func scanMapping(row pgx.Row) (ContactMapping, error) {
	var m ContactMapping
	err := row.Scan(&m.ID, &m.GHLID, &m.AlowareID, &m.PhoneE164, &m.Email, &m.RetiredAt, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// LinkContacts records that a GHL and an Aloware contact are the same
// person. A row already holding either id is updated (and un-retired); if
// the two ids sit on two different rows, the Aloware id moves to the GHL row.
func (s *Store) LinkContacts(ctx context.Context, ghlID, alowareID, phone, email string) (ContactMapping, error) {
	var m ContactMapping
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Serialise links of the same pair so two workers cannot create two rows.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('contact:' || $1), hashtext('contact:' || $2))`, ghlID, alowareID); err != nil {
			return fmt.Errorf("lock mapping: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE contact_mappings SET aloware_id = NULL, updated_at = now()
			WHERE aloware_id = $2 AND ghl_id IS DISTINCT FROM $1`, ghlID, alowareID); err != nil {
			return fmt.Errorf("move aloware id: %w", err)
		}
		var err error
		m, err = scanMapping(tx.QueryRow(ctx, `
			INSERT INTO contact_mappings (ghl_id, aloware_id, phone_e164, email)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (ghl_id) DO UPDATE SET aloware_id = EXCLUDED.aloware_id,
				phone_e164 = coalesce(EXCLUDED.phone_e164, contact_mappings.phone_e164),
				email = coalesce(EXCLUDED.email, contact_mappings.email),
				retired_at = NULL, updated_at = now()
			RETURNING `+mappingColumns, ghlID, alowareID, nullIfEmpty(phone), nullIfEmpty(email)))
		if err != nil {
			return fmt.Errorf("link contacts: %w", err)
		}
		return nil
	})
	return m, err
}

// MappingBy finds the live mapping of a contact by one of ghl_id,
// aloware_id, phone_e164 or email; ErrNotFound when there is none.
func (s *Store) MappingBy(ctx context.Context, field, value string) (ContactMapping, error) {
	var where string
	switch field {
	case "ghl_id":
		where = "ghl_id = $1"
	case "aloware_id":
		where = "aloware_id = $1"
	case "phone":
		where = "phone_e164 = $1"
	case "email":
		where = "lower(email) = lower($1)"
	default:
		return ContactMapping{}, fmt.Errorf("unknown mapping field %q", field)
	}
	m, err := scanMapping(s.Pool.QueryRow(ctx, `SELECT `+mappingColumns+` FROM contact_mappings
		WHERE `+where+` AND retired_at IS NULL ORDER BY updated_at DESC LIMIT 1`, value))
	if errors.Is(err, pgx.ErrNoRows) {
		return ContactMapping{}, ErrNotFound
	}
	if err != nil {
		return ContactMapping{}, fmt.Errorf("read contact mapping: %w", err)
	}
	return m, nil
}

// RetireMapping marks the mapping of a deleted GHL contact as retired; it
// reports whether there was one.
func (s *Store) RetireMapping(ctx context.Context, ghlID string) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE contact_mappings SET retired_at = now(), updated_at = now()
		WHERE ghl_id = $1 AND retired_at IS NULL`, ghlID)
	if err != nil {
		return false, fmt.Errorf("retire mapping: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// OptOut is one row of optout_registry.
type OptOut struct {
	PhoneE164 string    `json:"phone_e164"`
	Status    string    `json:"status"` // opted_out, opted_in
	Keyword   string    `json:"keyword,omitempty"`
	Source    string    `json:"source"`
	EventID   string    `json:"event_id,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SetOptOut records a phone's opt-out state.
func (s *Store) SetOptOut(ctx context.Context, o OptOut) error {
	var ev *string
	if ValidID(o.EventID) {
		ev = &o.EventID
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO optout_registry (phone_e164, status, keyword, source, event_id)
		VALUES ($1, $2, $3, $4, $5::uuid)
		ON CONFLICT (phone_e164) DO UPDATE SET status = EXCLUDED.status, keyword = EXCLUDED.keyword,
			source = EXCLUDED.source, event_id = EXCLUDED.event_id, updated_at = now()`,
		o.PhoneE164, o.Status, nullIfEmpty(o.Keyword), o.Source, ev)
	if err != nil {
		return fmt.Errorf("write opt-out: %w", err)
	}
	return nil
}

// GetOptOut returns a phone's opt-out state; ErrNotFound when unknown.
func (s *Store) GetOptOut(ctx context.Context, phone string) (OptOut, error) {
	var o OptOut
	err := s.Pool.QueryRow(ctx, `SELECT phone_e164, status, coalesce(keyword, ''), source, coalesce(event_id::text, ''), updated_at
		FROM optout_registry WHERE phone_e164 = $1`, phone).Scan(&o.PhoneE164, &o.Status, &o.Keyword, &o.Source, &o.EventID, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return OptOut{}, ErrNotFound
	}
	if err != nil {
		return OptOut{}, fmt.Errorf("read opt-out: %w", err)
	}
	return o, nil
}

// RecordEcho remembers what the middleware just wrote to an upstream entity.
func (s *Store) RecordEcho(ctx context.Context, system, entityID, fingerprint, eventID string, ttl time.Duration) error {
	var ev *string
	if ValidID(eventID) {
		ev = &eventID
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO sync_echoes (system, entity_id, fingerprint, expires_at, event_id)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5::uuid)
		ON CONFLICT (system, entity_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
			written_at = now(), expires_at = EXCLUDED.expires_at, event_id = EXCLUDED.event_id`,
		system, entityID, fingerprint, ttl.Seconds(), ev)
	if err != nil {
		return fmt.Errorf("record echo: %w", err)
	}
	return nil
}

// IsEcho reports whether an incoming change of an entity is exactly what the
// middleware wrote there recently, looked up under any of the entity's keys
// (its id, or "phone:<E.164>" recorded before the write, when the id was not
// known yet).
func (s *Store) IsEcho(ctx context.Context, system, fingerprint string, entityKeys ...string) (bool, error) {
	var echo bool
	err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sync_echoes WHERE system = $1 AND entity_id = ANY($2)
		AND fingerprint = $3 AND expires_at > now())`, system, entityKeys, fingerprint).Scan(&echo)
	if err != nil {
		return false, fmt.Errorf("check echo: %w", err)
	}
	return echo, nil
}

// PurgeExpiredEchoes deletes fingerprints past their expiry (a leader duty).
func (s *Store) PurgeExpiredEchoes(ctx context.Context) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM sync_echoes WHERE expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("purge echoes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// MessageMapping links a texting or Aloware message to its GHL copy.
type MessageMapping struct {
	Source          string `json:"source"`
	SourceMessageID string `json:"source_message_id"`
	GHLMessageID    string `json:"ghl_message_id,omitempty"`
	GHLContactID    string `json:"ghl_contact_id,omitempty"`
	ConversationID  string `json:"conversation_id,omitempty"`
	Status          string `json:"status,omitempty"`
}

// UpsertMessageMapping records or updates a message mapping; empty fields
// keep what is stored.
func (s *Store) UpsertMessageMapping(ctx context.Context, m MessageMapping) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO message_mappings (source, source_message_id, ghl_message_id, ghl_contact_id, conversation_id, status)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (source, source_message_id) DO UPDATE SET
			ghl_message_id = coalesce(EXCLUDED.ghl_message_id, message_mappings.ghl_message_id),
			ghl_contact_id = coalesce(EXCLUDED.ghl_contact_id, message_mappings.ghl_contact_id),
			conversation_id = coalesce(EXCLUDED.conversation_id, message_mappings.conversation_id),
			status = coalesce(EXCLUDED.status, message_mappings.status),
			updated_at = now()`,
		m.Source, m.SourceMessageID, nullIfEmpty(m.GHLMessageID), nullIfEmpty(m.GHLContactID), nullIfEmpty(m.ConversationID), nullIfEmpty(m.Status))
	if err != nil {
		return fmt.Errorf("write message mapping: %w", err)
	}
	return nil
}

// GetMessageMapping returns a message mapping; ErrNotFound when none.
func (s *Store) GetMessageMapping(ctx context.Context, source, sourceMessageID string) (MessageMapping, error) {
	m := MessageMapping{Source: source, SourceMessageID: sourceMessageID}
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(ghl_message_id, ''), coalesce(ghl_contact_id, ''), coalesce(conversation_id, ''), coalesce(status, '')
		FROM message_mappings WHERE source = $1 AND source_message_id = $2`, source, sourceMessageID).
		Scan(&m.GHLMessageID, &m.GHLContactID, &m.ConversationID, &m.Status)
	if errors.Is(err, pgx.ErrNoRows) {
		return MessageMapping{}, ErrNotFound
	}
	if err != nil {
		return MessageMapping{}, fmt.Errorf("read message mapping: %w", err)
	}
	return m, nil
}

// BroadcastStats is the latest analytics of a broadcast.
type BroadcastStats struct {
	BroadcastID string    `json:"broadcast_id"`
	Status      string    `json:"status,omitempty"`
	Sent        int64     `json:"sent"`
	Delivered   int64     `json:"delivered"`
	Failed      int64     `json:"failed"`
	Replied     int64     `json:"replied"`
	OptedOut    int64     `json:"opted_out"`
	ReportedAt  time.Time `json:"reported_at"`
	EventID     string    `json:"event_id,omitempty"`
}

// UpsertBroadcastStats stores analytics unless newer ones are already
// stored (webhooks may arrive out of order); it reports whether it wrote.
func (s *Store) UpsertBroadcastStats(ctx context.Context, b BroadcastStats) (bool, error) {
	var ev *string
	if ValidID(b.EventID) {
		ev = &b.EventID
	}
	tag, err := s.Pool.Exec(ctx, `INSERT INTO broadcast_stats (broadcast_id, status, sent, delivered, failed, replied, opted_out, reported_at, event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::uuid)
		ON CONFLICT (broadcast_id) DO UPDATE SET status = coalesce(EXCLUDED.status, broadcast_stats.status),
			sent = EXCLUDED.sent, delivered = EXCLUDED.delivered, failed = EXCLUDED.failed,
			replied = EXCLUDED.replied, opted_out = EXCLUDED.opted_out, reported_at = EXCLUDED.reported_at,
			event_id = EXCLUDED.event_id, updated_at = now()
		WHERE broadcast_stats.reported_at <= EXCLUDED.reported_at`,
		b.BroadcastID, nullIfEmpty(b.Status), b.Sent, b.Delivered, b.Failed, b.Replied, b.OptedOut, b.ReportedAt, ev)
	if err != nil {
		return false, fmt.Errorf("write broadcast stats: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// GetBroadcastStats returns stored analytics; ErrNotFound when none.
func (s *Store) GetBroadcastStats(ctx context.Context, id string) (BroadcastStats, error) {
	b := BroadcastStats{BroadcastID: id}
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(status, ''), sent, delivered, failed, replied, opted_out, reported_at, coalesce(event_id::text, '')
		FROM broadcast_stats WHERE broadcast_id = $1`, id).
		Scan(&b.Status, &b.Sent, &b.Delivered, &b.Failed, &b.Replied, &b.OptedOut, &b.ReportedAt, &b.EventID)
	if errors.Is(err, pgx.ErrNoRows) {
		return BroadcastStats{}, ErrNotFound
	}
	if err != nil {
		return BroadcastStats{}, fmt.Errorf("read broadcast stats: %w", err)
	}
	return b, nil
}
