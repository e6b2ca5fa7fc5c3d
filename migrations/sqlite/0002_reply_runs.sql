-- Tether schema, version 2: who runs each reply, one reply at a time in the
-- database itself, instance heartbeats and shared settings (for several
-- instances on one database).

-- Replies left streaming by the build before are what its next start's
-- recovery would have made of them.
UPDATE messages SET finish_reason = 'error'
    WHERE role = 'assistant' AND finish_reason IS NULL;

-- The instance running the reply, and the run's fencing token.
ALTER TABLE messages ADD COLUMN owner TEXT;
ALTER TABLE messages ADD COLUMN run TEXT;

-- At most one reply at a time per conversation, whoever writes it.
CREATE UNIQUE INDEX IF NOT EXISTS one_reply_at_a_time
    ON messages(conversation_id) WHERE role = 'assistant' AND finish_reason IS NULL;

CREATE TABLE IF NOT EXISTS instances (
    id       TEXT PRIMARY KEY NOT NULL,
    seen_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS settings (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);
