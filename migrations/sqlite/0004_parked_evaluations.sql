-- Plugin evaluations that failed (trap, out of fuel, bad output...). The events themselves were committed
-- (stat values and counts); what is parked is the goal update the plugin could not compute, kept for replay.
CREATE TABLE parked_evaluations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        TEXT    NOT NULL,
    plugin         TEXT    NOT NULL,
    plugin_version TEXT    NOT NULL,
    goal_ids       TEXT    NOT NULL,
    events         TEXT    NOT NULL,
    error_kind     TEXT    NOT NULL,
    error          TEXT    NOT NULL,
    parked_at      INTEGER NOT NULL,
    replayed_at    INTEGER NULL
) STRICT;

CREATE INDEX parked_evaluations_pending_idx ON parked_evaluations (plugin, parked_at) WHERE replayed_at IS NULL;
