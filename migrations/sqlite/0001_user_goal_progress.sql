-- Per-user goal rows. Timestamps are INTEGER milliseconds since the Unix epoch (UTC); booleans are 0/1.
CREATE TABLE user_goal_progress (
    user_id         TEXT    NOT NULL,
    goal_id         TEXT    NOT NULL,
    challenge_id    TEXT    NOT NULL,
    namespace       TEXT    NOT NULL,
    progress        INTEGER NOT NULL DEFAULT 0,
    status          TEXT    NOT NULL DEFAULT 'not_started',
    completed_at    INTEGER NULL,
    claimed_at      INTEGER NULL,
    is_active       INTEGER NOT NULL DEFAULT 1,
    assigned_at     INTEGER NULL,
    expires_at      INTEGER NULL,
    baseline_value  INTEGER NULL,
    plugin_state    BLOB    NULL,
    progress_source TEXT    NOT NULL DEFAULT 'stored',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, goal_id),
    CONSTRAINT user_goal_progress_ids_check CHECK (
        length(user_id) BETWEEN 1 AND 256 AND length(goal_id) BETWEEN 1 AND 256
        AND length(challenge_id) BETWEEN 1 AND 256 AND length(namespace) <= 256),
    CONSTRAINT user_goal_progress_progress_check CHECK (progress >= 0),
    CONSTRAINT user_goal_progress_status_check CHECK (status IN ('not_started', 'in_progress', 'completed', 'claimed')),
    CONSTRAINT user_goal_progress_active_check CHECK (is_active IN (0, 1)),
    CONSTRAINT user_goal_progress_source_check CHECK (progress_source IN ('stored', 'stat_value', 'event_count')),
    CONSTRAINT user_goal_progress_claimed_check CHECK (
        (claimed_at IS NULL OR completed_at IS NOT NULL)
        AND (status <> 'claimed' OR (claimed_at IS NOT NULL AND completed_at IS NOT NULL))),
    CONSTRAINT user_goal_progress_plugin_state_check CHECK (plugin_state IS NULL OR length(plugin_state) <= 4096)
) STRICT;

CREATE INDEX user_goal_progress_user_challenge_idx ON user_goal_progress (user_id, challenge_id);
CREATE INDEX user_goal_progress_user_active_idx ON user_goal_progress (user_id) WHERE is_active = 1;
