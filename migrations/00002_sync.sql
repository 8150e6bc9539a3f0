-- +goose Up

-- Writes the middleware makes to an upstream come back as webhooks. Each
-- write leaves a fingerprint of what was written; an incoming event for the
-- same entity with the same fingerprint, before expiry, is our own echo and
-- is skipped, so no loop forms between GHL and Aloware.
CREATE TABLE sync_echoes (
    system      text NOT NULL CHECK (system IN ('ghl', 'aloware')),
    entity_id   text NOT NULL,
    fingerprint text NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    event_id    uuid,
    PRIMARY KEY (system, entity_id)
);
CREATE INDEX sync_echoes_expires_idx ON sync_echoes (expires_at);

-- The latest analytics of each broadcast, as reported by the broadcast
-- system's webhooks.
CREATE TABLE broadcast_stats (
    broadcast_id text PRIMARY KEY,
    status       text,
    sent         bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    replied      bigint NOT NULL DEFAULT 0,
    opted_out    bigint NOT NULL DEFAULT 0,
    reported_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    event_id     uuid
);

ALTER TABLE message_mappings ADD COLUMN status text;
ALTER TABLE message_mappings ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- sync_log rows are read by direction and window for statistics.
CREATE INDEX sync_log_direction_idx ON sync_log (direction, entity_type, started_at DESC);

-- +goose Down
DROP INDEX sync_log_direction_idx;
ALTER TABLE message_mappings DROP COLUMN updated_at;
ALTER TABLE message_mappings DROP COLUMN status;
DROP TABLE broadcast_stats;
DROP TABLE sync_echoes;
