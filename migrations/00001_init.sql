-- +goose Up

-- webhook_events is both the durable record of every accepted delivery and
-- the work queue: the row is the job, so there is no second table to keep in
-- step with it.
CREATE TABLE webhook_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source            text NOT NULL CHECK (source IN ('ghl', 'aloware', 'texting', 'broadcast')),
    event_type        text NOT NULL,
    entity_type       text,
    entity_id         text,
    dedupe_key        text NOT NULL,
    payload_json      jsonb NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error', 'quarantined')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    locked_by         text,
    locked_until      timestamptz,
    lease_token       uuid,
    error_message     text,
    processed_at      timestamptz,
    quarantined_at    timestamptz,
    quarantine_reason text,
    traceparent       text,
    tracestate        text,
    request_id        text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_events_dedupe_key_key UNIQUE (dedupe_key)
) WITH (fillfactor = 80);

-- Claim: the oldest due pending rows. Partial, so its size follows the
-- backlog rather than the table.
CREATE INDEX webhook_events_claim_idx ON webhook_events (next_attempt_at)
    WHERE status = 'pending';
-- Rescuer: expired leases.
CREATE INDEX webhook_events_lease_idx ON webhook_events (locked_until)
    WHERE status = 'processing';
-- Listing and search, newest first, keyset on (received_at, id).
CREATE INDEX webhook_events_received_idx ON webhook_events (received_at DESC, id DESC);
CREATE INDEX webhook_events_source_received_idx ON webhook_events (source, received_at DESC, id DESC);
-- Operators look at the live problem statuses far more than at done rows.
CREATE INDEX webhook_events_problem_idx ON webhook_events (status, received_at DESC, id DESC)
    WHERE status IN ('error', 'quarantined', 'skipped');
CREATE INDEX webhook_events_entity_idx ON webhook_events (entity_type, entity_id)
    WHERE entity_id IS NOT NULL;

-- A planner that sees an empty table once must not pick a sequential scan
-- for the claim forever after: keep statistics fresh on a table that swings
-- between empty and millions of rows.
ALTER TABLE webhook_events SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05
);

CREATE TABLE sync_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    direction      text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text,
    source_id      text,
    target_id      text,
    status         text NOT NULL CHECK (status IN ('success', 'error', 'skipped')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    error_message  text,
    correlation_id uuid
);
CREATE INDEX sync_log_started_idx ON sync_log (started_at DESC, id DESC);
CREATE INDEX sync_log_errors_idx ON sync_log (started_at DESC, id DESC) WHERE status = 'error';
CREATE INDEX sync_log_correlation_idx ON sync_log (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX sync_log_entity_idx ON sync_log (entity_type, entity_id);

CREATE TABLE contact_mappings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ghl_id      text UNIQUE,
    aloware_id  text UNIQUE,
    phone_e164  text,
    email       text,
    retired_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_mappings_phone_idx ON contact_mappings (phone_e164) WHERE phone_e164 IS NOT NULL;
CREATE INDEX contact_mappings_email_idx ON contact_mappings (lower(email)) WHERE email IS NOT NULL;

CREATE TABLE message_mappings (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source             text NOT NULL,
    source_message_id  text NOT NULL,
    ghl_message_id     text,
    ghl_contact_id     text,
    conversation_id    text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_message_id)
);
CREATE INDEX message_mappings_ghl_idx ON message_mappings (ghl_message_id) WHERE ghl_message_id IS NOT NULL;

CREATE TABLE optout_registry (
    phone_e164  text PRIMARY KEY,
    status      text NOT NULL CHECK (status IN ('opted_out', 'opted_in')),
    keyword     text,
    source      text NOT NULL,
    event_id    uuid,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    interface   text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    reason      text,
    request_id  text,
    trace_id    text,
    details     jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target, at DESC);

CREATE TABLE error_groups (
    fingerprint    text PRIMARY KEY,
    component      text NOT NULL,
    error_class    text NOT NULL,
    sample_message text NOT NULL,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    count          bigint NOT NULL DEFAULT 1,
    last_event_id  uuid
);
CREATE INDEX error_groups_last_seen_idx ON error_groups (last_seen DESC);

-- Alert state: one row per (rule, label set) with its current state, so a
-- restart or leader change neither forgets a firing alert nor notifies again.
CREATE TABLE alert_state (
    fingerprint       text PRIMARY KEY,
    rule              text NOT NULL,
    severity          text NOT NULL,
    labels            jsonb NOT NULL DEFAULT '{}',
    state             text NOT NULL CHECK (state IN ('inactive', 'pending', 'firing')),
    value             double precision,
    active_since      timestamptz,
    fired_at          timestamptz,
    resolved_at       timestamptz,
    last_evaluated_at timestamptz NOT NULL DEFAULT now(),
    last_notified_state text,
    last_notified_at  timestamptz
);

CREATE TABLE alert_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint text NOT NULL,
    rule        text NOT NULL,
    severity    text NOT NULL,
    state       text NOT NULL,
    value       double precision,
    at          timestamptz NOT NULL DEFAULT now(),
    labels      jsonb NOT NULL DEFAULT '{}',
    annotations jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_history_at_idx ON alert_history (at DESC, id DESC);

-- The original service kept texting and broadcast deliveries in tables of
-- their own; its runbooks query these names.
CREATE VIEW texting_webhook_events AS
    SELECT * FROM webhook_events WHERE source = 'texting';
CREATE VIEW broadcast_webhook_events AS
    SELECT * FROM webhook_events WHERE source = 'broadcast';

-- +goose Down
DROP VIEW broadcast_webhook_events;
DROP VIEW texting_webhook_events;
DROP TABLE alert_history;
DROP TABLE alert_state;
DROP TABLE error_groups;
DROP TABLE audit_log;
DROP TABLE optout_registry;
DROP TABLE message_mappings;
DROP TABLE contact_mappings;
DROP TABLE sync_log;
DROP TABLE webhook_events;
