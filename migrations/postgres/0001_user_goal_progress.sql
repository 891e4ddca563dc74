-- Per-user goal rows. Written only when a goal's state really changes; derived progress lives in user_stat_values.
CREATE TABLE user_goal_progress (
    user_id         TEXT        NOT NULL,
    goal_id         TEXT        NOT NULL,
    challenge_id    TEXT        NOT NULL,
    namespace       TEXT        NOT NULL,
    progress        BIGINT      NOT NULL DEFAULT 0,
    status          TEXT        NOT NULL DEFAULT 'not_started',
    completed_at    TIMESTAMPTZ NULL,
    claimed_at      TIMESTAMPTZ NULL,
    is_active       BOOLEAN     NOT NULL DEFAULT TRUE,
    assigned_at     TIMESTAMPTZ NULL,
    expires_at      TIMESTAMPTZ NULL,
    baseline_value  BIGINT      NULL,
    plugin_state    BYTEA       NULL,
    progress_source TEXT        NOT NULL DEFAULT 'stored',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, goal_id),
    CONSTRAINT user_goal_progress_ids_check CHECK (
        char_length(user_id) BETWEEN 1 AND 256 AND char_length(goal_id) BETWEEN 1 AND 256
        AND char_length(challenge_id) BETWEEN 1 AND 256 AND char_length(namespace) <= 256),
    CONSTRAINT user_goal_progress_progress_check CHECK (progress >= 0),
    CONSTRAINT user_goal_progress_status_check CHECK (status IN ('not_started', 'in_progress', 'completed', 'claimed')),
    CONSTRAINT user_goal_progress_source_check CHECK (progress_source IN ('stored', 'stat_value', 'event_count')),
    CONSTRAINT user_goal_progress_claimed_check CHECK (
        (claimed_at IS NULL OR completed_at IS NOT NULL)
        AND (status <> 'claimed' OR (claimed_at IS NOT NULL AND completed_at IS NOT NULL))),
    CONSTRAINT user_goal_progress_plugin_state_check CHECK (plugin_state IS NULL OR octet_length(plugin_state) <= 4096)
) WITH (fillfactor = 85); -- room for HOT updates: flushes rewrite rows without touching indexed columns

CREATE INDEX user_goal_progress_user_challenge_idx ON user_goal_progress (user_id, challenge_id);
CREATE INDEX user_goal_progress_user_active_idx ON user_goal_progress (user_id) WHERE is_active;
