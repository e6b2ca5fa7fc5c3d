//! [`AccountStore`] on SQLite: reads on the reader pool, each write one job
//! on the writer (so a job's checks and writes are one transaction).
//! Schema: `migrations/sqlite/0007_accounts.sql`.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row};

use super::SqliteStore;
use crate::protocol::UserId;
use crate::server::store::{
    accounts::{
        AccountRecord, AccountRole, AccountStatus, AccountStore, Created, InviteRecord, NewAccount,
        PasskeyRecord, SessionRecord, UsageDay,
    },
    StoreError,
};

const ACCOUNT_COLUMNS: &str = "a.user_id, a.username, a.password_hash, a.role, a.status, \
                               a.quota_messages, a.quota_tokens, a.created_at";
const SESSION_COLUMNS: &str = "s.token_hash, s.public_id, s.user_id, s.device, s.created_at, \
                               s.last_seen";
const PASSKEY_COLUMNS: &str = "p.credential_id, p.user_id, p.public_key, p.sign_count, p.name, \
                               p.created_at, p.last_used";
const INVITE_COLUMNS: &str = "public_id, created_by, created_at, expires_at, used_by, used_at";

fn count(value: Option<i64>) -> Option<u64> {
    value.map(|v| u64::try_from(v).unwrap_or(0))
}

fn stored(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// An account from the row's columns `at..at + 8`.
fn account_at(row: &Row<'_>, at: usize) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        user_id: UserId(row.get(at)?),
        username: row.get(at + 1)?,
        password_hash: row.get(at + 2)?,
        role: AccountRole::from_db(&row.get::<_, String>(at + 3)?),
        status: AccountStatus::from_db(&row.get::<_, String>(at + 4)?),
        quota_messages: count(row.get(at + 5)?),
        quota_tokens: count(row.get(at + 6)?),
        created_at: row.get(at + 7)?,
    })
}

fn session_at(row: &Row<'_>, at: usize) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        token_hash: row.get(at)?,
        public_id: row.get(at + 1)?,
        user_id: UserId(row.get(at + 2)?),
        device: row.get(at + 3)?,
        created_at: row.get(at + 4)?,
        last_seen: row.get(at + 5)?,
    })
}

fn passkey_at(row: &Row<'_>, at: usize) -> rusqlite::Result<PasskeyRecord> {
    Ok(PasskeyRecord {
        credential_id: row.get(at)?,
        user_id: UserId(row.get(at + 1)?),
        public_key: row.get(at + 2)?,
        sign_count: u32::try_from(row.get::<_, i64>(at + 3)?).unwrap_or(0),
        name: row.get(at + 4)?,
        created_at: row.get(at + 5)?,
        last_used: row.get(at + 6)?,
    })
}

fn invite(row: &Row<'_>) -> rusqlite::Result<InviteRecord> {
    Ok(InviteRecord {
        public_id: row.get(0)?,
        created_by: UserId(row.get(1)?),
        created_at: row.get(2)?,
        expires_at: row.get(3)?,
        used_by: row.get::<_, Option<String>>(4)?.map(UserId),
        used_at: row.get(5)?,
    })
}

fn create(conn: &Connection, new: NewAccount) -> Result<Created, StoreError> {
    let record = new.record;
    let taken: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE username = ?)")?
        .query_row([&record.username], |row| row.get(0))?;
    if taken {
        return Ok(Created::UsernameTaken);
    }
    if let Some(code_hash) = &new.invite {
        let spent = conn
            .prepare_cached(
                "UPDATE invites SET used_by = ?, used_at = ? \
                 WHERE code_hash = ? AND used_by IS NULL AND expires_at > ?",
            )?
            .execute([
                record.user_id.as_str(),
                &record.created_at,
                code_hash,
                &record.created_at,
            ])?;
        if spent == 0 {
            return Ok(Created::InviteInvalid);
        }
    }
    let first: bool = conn
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM accounts)")?
        .query_row([], |row| row.get(0))?;
    let role = if first && new.first_is_admin {
        AccountRole::Admin
    } else {
        record.role
    };
    conn.prepare_cached("INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)")?
        .execute([record.user_id.as_str(), &record.created_at])?;
    conn.prepare_cached(
        "INSERT INTO accounts (user_id, username, password_hash, role, status, \
         quota_messages, quota_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        record.user_id.as_str(),
        record.username,
        record.password_hash,
        role.as_str(),
        record.status.as_str(),
        stored(record.quota_messages),
        stored(record.quota_tokens),
        record.created_at,
    ])?;
    Ok(Created::Account(role))
}

/// Deletes sessions of `user`; see [`AccountStore::delete_sessions`].
fn delete_sessions(
    conn: &Connection,
    user: &str,
    public_id: Option<&str>,
    keep: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let mut statement = conn.prepare_cached(
        "DELETE FROM sessions WHERE user_id = ?1 \
         AND (?2 IS NULL OR public_id = ?2) AND (?3 IS NULL OR token_hash <> ?3) \
         RETURNING public_id",
    )?;
    let deleted = statement
        .query_map(rusqlite::params![user, public_id, keep], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(deleted)
}

fn claim(conn: &Connection, guest: &str, account: &str) -> Result<u64, StoreError> {
    let guest_is_account: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE user_id = ?)")?
        .query_row([guest], |row| row.get(0))?;
    if guest_is_account || guest == account {
        return Ok(0);
    }
    let moved = conn
        .prepare_cached("UPDATE conversations SET user_id = ? WHERE user_id = ?")?
        .execute([account, guest])?;
    conn.prepare_cached("UPDATE companions SET user_id = ? WHERE user_id = ?")?
        .execute([account, guest])?;
    // Client ids are random; one the account already used stays the account's.
    conn.prepare_cached("UPDATE OR IGNORE client_messages SET user_id = ? WHERE user_id = ?")?
        .execute([account, guest])?;
    conn.prepare_cached("DELETE FROM client_messages WHERE user_id = ?")?
        .execute([guest])?;
    conn.prepare_cached("DELETE FROM users WHERE id = ?")?
        .execute([guest])?;
    Ok(moved as u64)
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn account_count(&self) -> Result<u64, StoreError> {
        self.readers
            .run(|conn| {
                let n: i64 = conn
                    .prepare_cached("SELECT count(*) FROM accounts")?
                    .query_row([], |row| row.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
    }

    async fn create_account(&self, new: NewAccount) -> Result<Created, StoreError> {
        self.writer.run(move |conn| create(conn, new)).await
    }

    async fn account_by_username(
        &self,
        username: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let username = username.to_owned();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.username = ?"
                    ))?
                    .query_row([username], |row| account_at(row, 0))
                    .optional()?)
            })
            .await
    }

    async fn account(&self, user: &UserId) -> Result<Option<AccountRecord>, StoreError> {
        let user = user.clone();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.user_id = ?"
                    ))?
                    .query_row([user.as_str()], |row| account_at(row, 0))
                    .optional()?)
            })
            .await
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.readers
            .run(|conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.created_at, a.rowid"
                    ))?
                    .query_map([], |row| account_at(row, 0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn set_account_status(
        &self,
        user: &UserId,
        status: AccountStatus,
    ) -> Result<(), StoreError> {
        let user = user.clone();
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached("UPDATE accounts SET status = ? WHERE user_id = ?")?
                    .execute([status.as_str(), user.as_str()])?;
                super::require_row(changed)
            })
            .await
    }

    async fn set_quota(
        &self,
        user: &UserId,
        messages: Option<u64>,
        tokens: Option<u64>,
    ) -> Result<(), StoreError> {
        let user = user.clone();
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE accounts SET quota_messages = ?, quota_tokens = ? WHERE user_id = ?",
                    )?
                    .execute(rusqlite::params![
                        stored(messages),
                        stored(tokens),
                        user.as_str()
                    ])?;
                super::require_row(changed)
            })
            .await
    }

    async fn set_password(
        &self,
        user: &UserId,
        hash: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let (user, hash, keep) = (user.clone(), hash.to_owned(), keep.map(str::to_owned));
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached("UPDATE accounts SET password_hash = ? WHERE user_id = ?")?
                    .execute([hash.as_str(), user.as_str()])?;
                super::require_row(changed)?;
                delete_sessions(conn, user.as_str(), None, keep.as_deref())
            })
            .await
    }

    async fn delete_user(&self, user: &UserId) -> Result<(), StoreError> {
        let user = user.clone();
        self.writer
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM client_messages WHERE user_id = ?")?
                    .execute([user.as_str()])?;
                let changed = conn
                    .prepare_cached("DELETE FROM users WHERE id = ?")?
                    .execute([user.as_str()])?;
                super::require_row(changed)
            })
            .await
    }

    async fn create_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<(), StoreError> {
        let (s, replaces) = (session.clone(), replaces.map(str::to_owned));
        self.writer
            .run(move |conn| {
                if let Some(old) = replaces {
                    conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?")?
                        .execute([old])?;
                }
                conn.prepare_cached(
                    "INSERT INTO sessions (token_hash, public_id, user_id, device, created_at, \
                     last_seen) VALUES (?, ?, ?, ?, ?, ?)",
                )?
                .execute([
                    s.token_hash.as_str(),
                    &s.public_id,
                    s.user_id.as_str(),
                    &s.device,
                    &s.created_at,
                    &s.last_seen,
                ])?;
                Ok(())
            })
            .await
    }

    async fn session(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, AccountRecord)>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLUMNS}, {ACCOUNT_COLUMNS} FROM sessions s \
                         JOIN accounts a ON a.user_id = s.user_id WHERE s.token_hash = ?"
                    ))?
                    .query_row([token_hash], |row| {
                        Ok((session_at(row, 0)?, account_at(row, 6)?))
                    })
                    .optional()?)
            })
            .await
    }

    async fn touch_session(&self, token_hash: &str, now: &str) -> Result<(), StoreError> {
        let (token_hash, now) = (token_hash.to_owned(), now.to_owned());
        self.writer
            .run(move |conn| {
                conn.prepare_cached("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")?
                    .execute([now, token_hash])?;
                Ok(())
            })
            .await
    }

    async fn list_sessions(&self, user: &UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let user = user.clone();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = ? \
                         ORDER BY s.last_seen DESC, s.created_at DESC"
                    ))?
                    .query_map([user.as_str()], |row| session_at(row, 0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn delete_sessions(
        &self,
        user: &UserId,
        public_id: Option<&str>,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let (user, public_id, keep) = (
            user.clone(),
            public_id.map(str::to_owned),
            keep.map(str::to_owned),
        );
        self.writer
            .run(move |conn| {
                delete_sessions(conn, user.as_str(), public_id.as_deref(), keep.as_deref())
            })
            .await
    }

    async fn claim_guest(&self, guest: &UserId, account: &UserId) -> Result<u64, StoreError> {
        let (guest, account) = (guest.clone(), account.clone());
        self.writer
            .run(move |conn| claim(conn, guest.as_str(), account.as_str()))
            .await
    }

    async fn create_invite(
        &self,
        code_hash: &str,
        invite: &InviteRecord,
    ) -> Result<(), StoreError> {
        let (code_hash, i) = (code_hash.to_owned(), invite.clone());
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO invites (code_hash, public_id, created_by, created_at, \
                     expires_at) VALUES (?, ?, ?, ?, ?)",
                )?
                .execute([
                    code_hash.as_str(),
                    &i.public_id,
                    i.created_by.as_str(),
                    &i.created_at,
                    &i.expires_at,
                ])?;
                Ok(())
            })
            .await
    }

    async fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        self.readers
            .run(|conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {INVITE_COLUMNS} FROM invites ORDER BY created_at DESC, rowid DESC"
                    ))?
                    .query_map([], invite)?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn usage_on(&self, user: &UserId, day: &str) -> Result<(u64, u64), StoreError> {
        let (user, day) = (user.clone(), day.to_owned());
        self.readers
            .run(move |conn| {
                let used: Option<(i64, i64)> = conn
                    .prepare_cached(
                        "SELECT messages, tokens FROM usage WHERE user_id = ? AND day = ?",
                    )?
                    .query_row([user.as_str(), &day], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let (messages, tokens) = used.unwrap_or((0, 0));
                Ok((
                    u64::try_from(messages).unwrap_or(0),
                    u64::try_from(tokens).unwrap_or(0),
                ))
            })
            .await
    }

    async fn add_usage(
        &self,
        user: &UserId,
        day: &str,
        messages: u64,
        tokens: u64,
    ) -> Result<(), StoreError> {
        let (user, day) = (user.clone(), day.to_owned());
        let (messages, tokens) = (
            i64::try_from(messages).unwrap_or(i64::MAX),
            i64::try_from(tokens).unwrap_or(i64::MAX),
        );
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO usage (user_id, day, messages, tokens) \
                     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1) \
                     ON CONFLICT (user_id, day) DO UPDATE SET \
                     messages = messages + excluded.messages, tokens = tokens + excluded.tokens",
                )?
                .execute(rusqlite::params![
                    user.as_str(),
                    day,
                    messages,
                    tokens
                ])?;
                Ok(())
            })
            .await
    }

    async fn usage_since(&self, since: &str) -> Result<Vec<UsageDay>, StoreError> {
        let since = since.to_owned();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT u.user_id, a.username, u.day, u.messages, u.tokens FROM usage u \
                         LEFT JOIN accounts a ON a.user_id = u.user_id WHERE u.day >= ? \
                         ORDER BY u.day DESC, u.messages DESC, u.user_id",
                    )?
                    .query_map([since], |row| {
                        Ok(UsageDay {
                            user_id: UserId(row.get(0)?),
                            username: row.get(1)?,
                            day: row.get(2)?,
                            messages: count(row.get(3)?).unwrap_or(0),
                            tokens: count(row.get(4)?).unwrap_or(0),
                        })
                    })?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<bool, StoreError> {
        let p = passkey.clone();
        self.writer
            .run(move |conn| {
                let added = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO passkeys (credential_id, user_id, public_key, \
                         sign_count, name, created_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )?
                    .execute(rusqlite::params![
                        p.credential_id,
                        p.user_id.as_str(),
                        p.public_key,
                        i64::from(p.sign_count),
                        p.name,
                        p.created_at,
                        p.last_used,
                    ])?;
                Ok(added == 1)
            })
            .await
    }

    async fn passkey(
        &self,
        credential_id: &str,
    ) -> Result<Option<(PasskeyRecord, AccountRecord)>, StoreError> {
        let id = credential_id.to_owned();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {PASSKEY_COLUMNS}, {ACCOUNT_COLUMNS} FROM passkeys p \
                         JOIN accounts a ON a.user_id = p.user_id WHERE p.credential_id = ?"
                    ))?
                    .query_row([id], |row| Ok((passkey_at(row, 0)?, account_at(row, 7)?)))
                    .optional()?)
            })
            .await
    }

    async fn passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let user = user.clone();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {PASSKEY_COLUMNS} FROM passkeys p WHERE p.user_id = ? \
                         ORDER BY p.created_at, p.rowid"
                    ))?
                    .query_map([user.as_str()], |row| passkey_at(row, 0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn passkey_used(
        &self,
        credential_id: &str,
        sign_count: u32,
        now: &str,
    ) -> Result<(), StoreError> {
        let (id, now) = (credential_id.to_owned(), now.to_owned());
        self.writer
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE passkeys SET sign_count = ?, last_used = ? WHERE credential_id = ?",
                )?
                .execute(rusqlite::params![i64::from(sign_count), now, id])?;
                Ok(())
            })
            .await
    }

    async fn delete_passkey(&self, user: &UserId, credential_id: &str) -> Result<(), StoreError> {
        let (user, id) = (user.clone(), credential_id.to_owned());
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached("DELETE FROM passkeys WHERE credential_id = ? AND user_id = ?")?
                    .execute([id.as_str(), user.as_str()])?;
                super::require_row(changed)
            })
            .await
    }
}
