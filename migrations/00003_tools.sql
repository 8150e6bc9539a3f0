-- +goose Up

-- The MCP tools answer "how fast are events finishing" and "how are syncs
-- doing over the last day" in constant time, whatever the size of
-- webhook_events and sync_log. Aggregating the raw rows per call would cost
-- time proportional to the rows in the window (millions at a busy hour), so
-- both figures come from small rollup tables kept current by statement-level
-- triggers: one aggregate upsert per statement, not per row, in the same
-- transaction as the change it counts. A bulk load of sync_log is counted as
-- well as the rows InsertSyncLog writes one at a time.

-- Durations are counted in a fixed histogram (milliseconds), from which the
-- tools estimate percentiles; internal/store keeps the same bounds
-- (DurationBucketBounds) and a test checks that the two agree.
-- Bucket b holds durations in [bound[b-1], bound[b]); 0 is below the first
-- bound, 17 at or above the last.
CREATE FUNCTION dfm_duration_bucket(ms double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN width_bucket(ms, '{5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,300000,600000,1800000,3600000}'::float8[])::smallint;

-- Events finished per minute, by source, final status and processing-time
-- bucket (processed_at - received_at: queue wait plus handling).
CREATE TABLE event_finish_rollup (
    minute  timestamptz NOT NULL,
    source  text NOT NULL,
    status  text NOT NULL,
    bucket  smallint NOT NULL,
    n       bigint NOT NULL,
    sum_ms  double precision NOT NULL,
    max_ms  double precision NOT NULL,
    PRIMARY KEY (minute, source, status, bucket)
);

-- A row finished by a statement carries processed_at = now() of that
-- statement's transaction (CompleteJobs and the lease rescuer both write
-- now()); replays and releases clear processed_at, quarantines keep an older
-- one, claims leave it NULL, so only real finishes are counted. Keys are
-- upserted in sorted order so that completers of several replicas cannot
-- deadlock on the rollup rows.
-- +goose StatementBegin
CREATE FUNCTION dfm_rollup_event_finishes() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_finish_rollup AS r (minute, source, status, bucket, n, sum_ms, max_ms)
    SELECT date_trunc('minute', f.processed_at), f.source, f.status, dfm_duration_bucket(f.ms),
           count(*), sum(f.ms), max(f.ms)
    FROM (SELECT processed_at, source, status,
                 greatest(extract(epoch FROM processed_at - received_at) * 1000, 0)::float8 AS ms
          FROM finished
          WHERE processed_at = now() AND status IN ('done', 'skipped', 'error')) f
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (minute, source, status, bucket) DO UPDATE
        SET n = r.n + EXCLUDED.n, sum_ms = r.sum_ms + EXCLUDED.sum_ms,
            max_ms = greatest(r.max_ms, EXCLUDED.max_ms);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER webhook_events_finish_rollup
    AFTER UPDATE ON webhook_events
    REFERENCING NEW TABLE AS finished
    FOR EACH STATEMENT EXECUTE FUNCTION dfm_rollup_event_finishes();

-- Sync operations per hour, by direction, entity type, status and duration
-- bucket (finished_at - started_at; -1 when the operation has no finish).
-- Workers write sync_log one row per transaction from many connections at
-- once, and an upserted rollup row stays locked until its writer commits
-- (a WAL flush): with one row per key, 16 concurrent pgbench writers fell
-- from ~4,500 to ~1,200 inserts/s. Spreading each key of the current hour
-- over 8 shards (by transaction id, so concurrent transactions mostly land
-- on different rows) brought them back to ~3,300 (the rest is the trigger's
-- own cost, ~0.1 ms of CPU per statement); readers sum the shards, and the
-- shards of closed hours are folded into shard 0.
CREATE TABLE sync_log_rollup (
    hour        timestamptz NOT NULL,
    direction   text NOT NULL,
    entity_type text NOT NULL,
    status      text NOT NULL,
    bucket      smallint NOT NULL,
    shard       smallint NOT NULL,
    n           bigint NOT NULL,
    sum_ms      double precision NOT NULL,
    max_ms      double precision NOT NULL,
    PRIMARY KEY (hour, direction, entity_type, status, bucket, shard)
);

CREATE INDEX sync_log_rollup_sharded_idx ON sync_log_rollup (hour) WHERE shard <> 0;

-- +goose StatementBegin
CREATE FUNCTION dfm_compact_sync_log_rollup() RETURNS void
    LANGUAGE sql AS $$
    WITH moved AS (
        DELETE FROM sync_log_rollup WHERE shard <> 0 AND hour < date_trunc('hour', now())
        RETURNING hour, direction, entity_type, status, bucket, n, sum_ms, max_ms)
    INSERT INTO sync_log_rollup AS r (hour, direction, entity_type, status, bucket, shard, n, sum_ms, max_ms)
    SELECT hour, direction, entity_type, status, bucket, 0, sum(n), sum(sum_ms), max(max_ms)
    FROM moved
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (hour, direction, entity_type, status, bucket, shard) DO UPDATE
        SET n = r.n + EXCLUDED.n, sum_ms = r.sum_ms + EXCLUDED.sum_ms,
            max_ms = greatest(r.max_ms, EXCLUDED.max_ms);
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION dfm_rollup_sync_log() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log_rollup AS r (hour, direction, entity_type, status, bucket, shard, n, sum_ms, max_ms)
    SELECT date_trunc('hour', a.started_at), a.direction, a.entity_type, a.status,
           CASE WHEN a.ms IS NULL THEN -1 ELSE dfm_duration_bucket(a.ms) END,
           (txid_current() % 8)::smallint,
           count(*), coalesce(sum(a.ms), 0), coalesce(max(a.ms), 0)
    FROM (SELECT started_at, direction, entity_type, status,
                 greatest(extract(epoch FROM finished_at - started_at) * 1000, 0)::float8 AS ms
          FROM added) a
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (hour, direction, entity_type, status, bucket, shard) DO UPDATE
        SET n = r.n + EXCLUDED.n, sum_ms = r.sum_ms + EXCLUDED.sum_ms,
            max_ms = greatest(r.max_ms, EXCLUDED.max_ms);
    -- Now and then (about one statement in 128, and one transaction at a
    -- time) fold the shards of closed hours into shard 0, so that a window
    -- reads one row per key and hour plus the shards of the current hour.
    IF random() < 1.0 / 128 AND pg_try_advisory_xact_lock(7302114003) THEN
        PERFORM dfm_compact_sync_log_rollup();
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER sync_log_rollup
    AFTER INSERT ON sync_log
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION dfm_rollup_sync_log();

-- Existing rows: the windows the tools can ask for (a day of finishes, a
-- week of syncs). Run once, at migration time.
INSERT INTO event_finish_rollup (minute, source, status, bucket, n, sum_ms, max_ms)
SELECT date_trunc('minute', processed_at), source, status, dfm_duration_bucket(ms), count(*), sum(ms), max(ms)
FROM (SELECT processed_at, source, status,
             greatest(extract(epoch FROM processed_at - received_at) * 1000, 0)::float8 AS ms
      FROM webhook_events
      WHERE processed_at > now() - interval '1 day' AND status IN ('done', 'skipped', 'error')) f
GROUP BY 1, 2, 3, 4;

INSERT INTO sync_log_rollup (hour, direction, entity_type, status, bucket, shard, n, sum_ms, max_ms)
SELECT date_trunc('hour', started_at), direction, entity_type, status,
       CASE WHEN ms IS NULL THEN -1 ELSE dfm_duration_bucket(ms) END, 0,
       count(*), coalesce(sum(ms), 0), coalesce(max(ms), 0)
FROM (SELECT started_at, direction, entity_type, status,
             greatest(extract(epoch FROM finished_at - started_at) * 1000, 0)::float8 AS ms
      FROM sync_log
      WHERE started_at > now() - interval '8 days') a
GROUP BY 1, 2, 3, 4, 5;

-- list_error_groups pages newest first with a keyset on (last_seen,
-- fingerprint), optionally within one component.
CREATE INDEX error_groups_keyset_idx ON error_groups (last_seen DESC, fingerprint DESC);
CREATE INDEX error_groups_component_idx ON error_groups (component, last_seen DESC, fingerprint DESC);

-- list_alerts pages alert history with a keyset on (at, id): covered by
-- alert_history_at_idx. get_contact_sync_status reads sync_log by entity
-- (sync_log_entity_idx) and webhook_events by entity (webhook_events_entity_idx).

-- +goose Down
DROP INDEX error_groups_component_idx;
DROP INDEX error_groups_keyset_idx;
DROP TRIGGER sync_log_rollup ON sync_log;
DROP FUNCTION dfm_rollup_sync_log();
DROP FUNCTION dfm_compact_sync_log_rollup();
DROP TABLE sync_log_rollup;
DROP TRIGGER webhook_events_finish_rollup ON webhook_events;
DROP FUNCTION dfm_rollup_event_finishes();
DROP TABLE event_finish_rollup;
DROP FUNCTION dfm_duration_bucket(double precision);
