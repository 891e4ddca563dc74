-- Latest statistic value and event count per (user, stat code): the O(1)-per-event write target.
CREATE TABLE user_stat_values (
    user_id     TEXT    NOT NULL,
    stat_code   TEXT    NOT NULL,
    value       REAL    NULL,
    event_count INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, stat_code),
    CONSTRAINT user_stat_values_ids_check CHECK (
        length(user_id) BETWEEN 1 AND 256 AND length(stat_code) BETWEEN 1 AND 256),
    CONSTRAINT user_stat_values_event_count_check CHECK (event_count >= 0)
) STRICT, WITHOUT ROWID;
