-- Companions people make or import: the character card as JSON text.
CREATE TABLE companions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    card         TEXT NOT NULL,
    emoji        TEXT,
    avatar_type  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX companions_by_user ON companions(user_id, updated_at DESC);

-- A companion's picture, apart so that listing never reads image bytes.
CREATE TABLE companion_avatars (
    companion_id  TEXT PRIMARY KEY NOT NULL REFERENCES companions(id) ON DELETE CASCADE,
    bytes         BLOB NOT NULL
);
