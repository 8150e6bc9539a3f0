-- +goose Up

-- The alert evaluator runs on the leader replica but must judge the whole
-- service: every replica's job runs, job failures, job durations and
-- upstream call attempts. Each replica adds the deltas of its own counters
-- (the figures its Prometheus metrics count) into short time slots here every
-- few seconds; the leader sums the slots of the rule window. The table stays
-- small: a few dozen series per replica and slot, pruned after an hour.
CREATE TABLE alert_counters (
    slot     timestamptz NOT NULL,
    instance text NOT NULL,
    series   text NOT NULL,
    n        double precision NOT NULL,
    PRIMARY KEY (slot, instance, series)
);

-- +goose Down
DROP TABLE alert_counters;
