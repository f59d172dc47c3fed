-- One row per (sweep, Cloud Scheduler schedule time): a retried delivery of the same
-- scheduled run finds the row and does not run the work twice (docs/sweeps.md).
CREATE TABLE sweep_runs (
    sweep          text NOT NULL,
    schedule_time  text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    attempts       integer NOT NULL DEFAULT 1,
    result         jsonb,
    PRIMARY KEY (sweep, schedule_time)
);
CREATE INDEX sweep_runs_started_idx ON sweep_runs (started_at);
