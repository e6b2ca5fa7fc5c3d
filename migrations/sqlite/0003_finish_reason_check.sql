-- Tether schema, version 3: the messages table again, its finish_reason
-- CHECK written as comparisons. SQLite evaluates `x IN (four values)`
-- through a temporary b-tree built on every run of a statement that checks
-- it (each INSERT of a message, each UPDATE of a reply's end): a page
-- zeroed and a b-tree opened per statement. Comparisons build nothing.
-- Same columns, rows, `seq` values and AUTOINCREMENT counter, same indexes.

CREATE TABLE messages_v3 (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL,
    finish_reason      TEXT CHECK (finish_reason = 'stop' OR finish_reason = 'length'
                                   OR finish_reason = 'stopped' OR finish_reason = 'error'),
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created_at         TEXT NOT NULL,
    owner              TEXT,
    run                TEXT
);

INSERT INTO messages_v3 (seq, id, conversation_id, role, content, finish_reason,
                         prompt_tokens, completion_tokens, created_at, owner, run)
    SELECT seq, id, conversation_id, role, content, finish_reason,
           prompt_tokens, completion_tokens, created_at, owner, run
    FROM messages ORDER BY seq;

-- The counter goes on from where it was (a deleted newest message's `seq`
-- is never given again), not from the largest `seq` copied.
DELETE FROM sqlite_sequence WHERE name = 'messages_v3';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages_v3', seq FROM sqlite_sequence WHERE name = 'messages';

DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;

CREATE INDEX messages_by_conversation ON messages(conversation_id, seq);
CREATE UNIQUE INDEX one_reply_at_a_time
    ON messages(conversation_id) WHERE role = 'assistant' AND finish_reason IS NULL;
