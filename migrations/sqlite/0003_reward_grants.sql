-- Reward outbox: written in the claim transaction, delivered (and retried) afterwards.
-- AUTOINCREMENT so ids are never reused, even after deletes.
CREATE TABLE reward_grants (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    user_id         TEXT    NOT NULL,
    namespace       TEXT    NOT NULL,
    challenge_id    TEXT    NOT NULL,
    goal_id         TEXT    NOT NULL,
    reward_type     TEXT    NOT NULL,
    reward_id       TEXT    NOT NULL,
    quantity        INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT    NULL,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER NULL,
    CONSTRAINT reward_grants_reward_type_check CHECK (reward_type IN ('ITEM', 'WALLET')),
    CONSTRAINT reward_grants_quantity_check CHECK (quantity > 0),
    CONSTRAINT reward_grants_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT reward_grants_attempts_check CHECK (attempts >= 0),
    CONSTRAINT reward_grants_delivered_check CHECK (status <> 'delivered' OR delivered_at IS NOT NULL)
) STRICT;

CREATE INDEX reward_grants_due_idx ON reward_grants (status, next_attempt_at);
