-- Tether schema for PostgreSQL, version 4: a conversation is a tree of
-- messages, as migrations/sqlite/0005_branches.sql explains.

ALTER TABLE messages ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN selected BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE messages ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;

UPDATE messages m SET parent_id = COALESCE(
    (SELECT p.id FROM messages p
     WHERE p.conversation_id = m.conversation_id AND p.seq < m.seq
     ORDER BY p.seq DESC LIMIT 1),
    m.conversation_id);

CREATE INDEX messages_by_parent ON messages(parent_id, seq);
