-- Accounts (issue 16): sign-in, devices, invites, quotas and usage.
-- An account is a `users` row with a name and a way to sign in; a guest
-- (the anonymous identity cookie) is a `users` row without one.
CREATE TABLE accounts (
    user_id         TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Lower-cased; what people sign in with.
    username        TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; NULL for an account made by a trusted proxy header.
    password_hash   TEXT,
    role            TEXT NOT NULL CHECK (role = 'admin' OR role = 'member'),
    status          TEXT NOT NULL CHECK (status = 'active' OR status = 'pending' OR status = 'disabled'),
    -- Per day; NULL: the server's default (QUOTA_*_PER_DAY).
    quota_messages  BIGINT,
    quota_tokens    BIGINT,
    created_at      TEXT NOT NULL
);

-- One row per sign-in (a device). The cookie holds a random token; only its
-- SHA-256 is stored, so a copy of the database signs nobody in.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    -- Names the session in the settings page and its sign-out form.
    public_id   TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

-- Single-use, expiring sign-up links; only the code's SHA-256 is stored.
CREATE TABLE invites (
    code_hash   TEXT PRIMARY KEY NOT NULL,
    public_id   TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_by     TEXT,
    used_at     TEXT
);

-- What each user asked of the model, per UTC day.
CREATE TABLE usage (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day       TEXT NOT NULL,
    messages  BIGINT NOT NULL DEFAULT 0,
    tokens    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
