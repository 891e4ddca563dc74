-- Background auto-assignment of rotation periods: one row per (goal, period), claimed by one host instance at a
-- time through its lease; `cursor` is the last user id done, so a run interrupted by a crash resumes there.
CREATE TABLE rotation_runs (
    run_key      TEXT        NOT NULL,
    period_key   TEXT        NOT NULL,
    state        TEXT        NOT NULL,
    owner        TEXT        NOT NULL,
    lease_until  TIMESTAMPTZ NOT NULL,
    cursor       TEXT        NOT NULL DEFAULT '',
    assigned     BIGINT      NOT NULL DEFAULT 0,
    started_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ NULL,
    PRIMARY KEY (run_key, period_key),
    CONSTRAINT rotation_runs_state_check CHECK (state IN ('running', 'completed'))
);
