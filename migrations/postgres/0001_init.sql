-- Tether schema for PostgreSQL, version 1: the tables of SQLite's
-- migrations/sqlite/0001_init.sql, column for column. Timestamps are RFC 3339
-- text (UTC, fixed width), as in SQLite: they sort correctly as text and
-- reach clients exactly as SQLite's do. `seq` stands in for SQLite's rowid.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);

CREATE TABLE conversations (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    persona     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX conversations_by_user ON conversations(user_id, updated_at DESC, seq DESC);

CREATE TABLE messages (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL,
    finish_reason      TEXT CHECK (finish_reason IN ('stop', 'length', 'stopped', 'error')),
    prompt_tokens      BIGINT,
    completion_tokens  BIGINT,
    created_at         TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);

-- One row per accepted client_msg_id: `send` and `regenerate` are idempotent.
-- A send claims its key first (a concurrent duplicate waits on that row and
-- then finds it taken), before its conversation exists: hence the deferred
-- foreign key, checked at commit.
CREATE TABLE client_messages (
    user_id          TEXT NOT NULL,
    client_msg_id    TEXT NOT NULL,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE
                     DEFERRABLE INITIALLY DEFERRED,
    message_id       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (user_id, client_msg_id)
);
CREATE INDEX client_messages_by_conversation ON client_messages(conversation_id);
