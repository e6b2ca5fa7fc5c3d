-- Tether schema for PostgreSQL, version 2 (as SQLite's 0002_reply_runs.sql):
-- who runs each reply, one reply at a time in the database itself, instance
-- heartbeats and shared settings (for several instances on one database).

-- Replies left streaming by the build before are what its next start's
-- recovery would have made of them.
UPDATE messages SET finish_reason = 'error'
    WHERE role = 'assistant' AND finish_reason IS NULL;

-- The instance running the reply, and the run's fencing token.
ALTER TABLE messages ADD COLUMN owner TEXT;
ALTER TABLE messages ADD COLUMN run TEXT;

-- At most one reply at a time per conversation, whoever writes it.
CREATE UNIQUE INDEX one_reply_at_a_time
    ON messages(conversation_id) WHERE role = 'assistant' AND finish_reason IS NULL;

-- Heartbeats in the database's clock (`now()`), so that instances whose
-- clocks disagree still agree on who is stale.
CREATE TABLE instances (
    id       TEXT PRIMARY KEY,
    seen_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
