-- Background auto-assignment of rotation periods (see the PostgreSQL migration). Timestamps in milliseconds.
CREATE TABLE rotation_runs (
    run_key      TEXT    NOT NULL,
    period_key   TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    lease_until  INTEGER NOT NULL,
    cursor       TEXT    NOT NULL DEFAULT '',
    assigned     INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER NULL,
    PRIMARY KEY (run_key, period_key),
    CONSTRAINT rotation_runs_state_check CHECK (state IN ('running', 'completed'))
) STRICT;
