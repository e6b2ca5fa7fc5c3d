-- Passkeys (WebAuthn, ES256): a second way to sign in to an account.
CREATE TABLE passkeys (
    -- The credential id, base64url.
    credential_id  TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- SEC1 uncompressed P-256 point.
    public_key     BLOB NOT NULL,
    sign_count     INTEGER NOT NULL,
    name           TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_used      TEXT
);
CREATE INDEX passkeys_by_user ON passkeys(user_id);
