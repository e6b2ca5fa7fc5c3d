-- Tether schema, version 5: a conversation is a tree of messages (swipes
-- and edits are alternatives of one turn), of which one path is shown.
--
-- parent_id  the message this one follows; the conversation's own id for
--            its first messages (so every sibling group has a parent, and
--            one index lookup finds it).
-- selected   1 for the alternative chosen among its siblings (exactly one
--            per sibling group).
-- active     1 when every message from the root to this one is selected:
--            the path the conversation shows and continues from, read in
--            `seq` order (a child is always newer than its parent).

ALTER TABLE messages ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN selected INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN active INTEGER NOT NULL DEFAULT 1;

-- Conversations so far were single paths: each message follows the one before.
UPDATE messages SET parent_id = COALESCE(
    (SELECT p.id FROM messages p
     WHERE p.conversation_id = messages.conversation_id AND p.seq < messages.seq
     ORDER BY p.seq DESC LIMIT 1),
    conversation_id);

CREATE INDEX messages_by_parent ON messages(parent_id, seq);
