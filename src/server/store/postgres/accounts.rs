//! [`AccountStore`] on PostgreSQL. Creating an account locks the accounts
//! table against other creators, so "the first account is the admin" and
//! the invite's single use hold across instances.
//! Schema: `migrations/postgres/0006_accounts.sql`.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{require_row, PgStore};
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

fn account_at(row: &Row, at: usize) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        user_id: UserId(row.try_get(at)?),
        username: row.try_get(at + 1)?,
        password_hash: row.try_get(at + 2)?,
        role: AccountRole::from_db(row.try_get(at + 3)?),
        status: AccountStatus::from_db(row.try_get(at + 4)?),
        quota_messages: count(row.try_get(at + 5)?),
        quota_tokens: count(row.try_get(at + 6)?),
        created_at: row.try_get(at + 7)?,
    })
}

fn session_at(row: &Row, at: usize) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        token_hash: row.try_get(at)?,
        public_id: row.try_get(at + 1)?,
        user_id: UserId(row.try_get(at + 2)?),
        device: row.try_get(at + 3)?,
        created_at: row.try_get(at + 4)?,
        last_seen: row.try_get(at + 5)?,
    })
}

fn passkey_at(row: &Row, at: usize) -> Result<PasskeyRecord, StoreError> {
    Ok(PasskeyRecord {
        credential_id: row.try_get(at)?,
        user_id: UserId(row.try_get(at + 1)?),
        public_key: row.try_get(at + 2)?,
        sign_count: u32::try_from(row.try_get::<_, i64>(at + 3)?).unwrap_or(0),
        name: row.try_get(at + 4)?,
        created_at: row.try_get(at + 5)?,
        last_used: row.try_get(at + 6)?,
    })
}

fn invite(row: &Row) -> Result<InviteRecord, StoreError> {
    Ok(InviteRecord {
        public_id: row.try_get(0)?,
        created_by: UserId(row.try_get(1)?),
        created_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
        used_by: row.try_get::<_, Option<String>>(4)?.map(UserId),
        used_at: row.try_get(5)?,
    })
}

/// Deletes sessions of `user`; see [`AccountStore::delete_sessions`].
async fn delete_sessions(
    client: &impl GenericClient,
    user: &str,
    public_id: Option<&str>,
    keep: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    client
        .query(
            "DELETE FROM sessions WHERE user_id = $1 \
             AND ($2::text IS NULL OR public_id = $2) AND ($3::text IS NULL OR token_hash <> $3) \
             RETURNING public_id",
            &[&user, &public_id, &keep],
        )
        .await?
        .iter()
        .map(|row| Ok(row.try_get(0)?))
        .collect()
}

#[async_trait]
impl AccountStore for PgStore {
    async fn account_count(&self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT count(*) FROM accounts", &[]).await?;
        let n: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_account(&self, new: NewAccount) -> Result<Created, StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE", &[])
                .await?;
            let record = new.record;
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM accounts WHERE username = $1)",
                    &[&record.username],
                )
                .await?
                .try_get(0)?;
            if taken {
                return Ok(Created::UsernameTaken);
            }
            if let Some(code_hash) = &new.invite {
                let spent = tx
                    .execute(
                        "UPDATE invites SET used_by = $1, used_at = $2 \
                         WHERE code_hash = $3 AND used_by IS NULL AND expires_at > $2",
                        &[&record.user_id.as_str(), &record.created_at, code_hash],
                    )
                    .await?;
                if spent == 0 {
                    return Ok(Created::InviteInvalid);
                }
            }
            let first: bool = tx
                .query_one("SELECT NOT EXISTS (SELECT 1 FROM accounts)", &[])
                .await?
                .try_get(0)?;
            let role = if first && new.first_is_admin {
                AccountRole::Admin
            } else {
                record.role
            };
            tx.execute(
                "INSERT INTO users (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&record.user_id.as_str(), &record.created_at],
            )
            .await?;
            tx.execute(
                "INSERT INTO accounts (user_id, username, password_hash, role, status, \
                 quota_messages, quota_tokens, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &record.user_id.as_str(),
                    &record.username,
                    &record.password_hash,
                    &role.as_str(),
                    &record.status.as_str(),
                    &stored(record.quota_messages),
                    &stored(record.quota_tokens),
                    &record.created_at,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Created::Account(role))
        })
        .await
    }

    async fn account_by_username(
        &self,
        username: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.username = $1");
        let rows = self.query(&sql, &[&username]).await?;
        rows.first().map(|row| account_at(row, 0)).transpose()
    }

    async fn account(&self, user: &UserId) -> Result<Option<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.user_id = $1");
        let rows = self.query(&sql, &[&user.as_str()]).await?;
        rows.first().map(|row| account_at(row, 0)).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.created_at, a.user_id");
        self.query(&sql, &[])
            .await?
            .iter()
            .map(|row| account_at(row, 0))
            .collect()
    }

    async fn set_account_status(
        &self,
        user: &UserId,
        status: AccountStatus,
    ) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "UPDATE accounts SET status = $1 WHERE user_id = $2",
                &[&status.as_str(), &user.as_str()],
            )
            .await?,
        )
    }

    async fn set_quota(
        &self,
        user: &UserId,
        messages: Option<u64>,
        tokens: Option<u64>,
    ) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "UPDATE accounts SET quota_messages = $1, quota_tokens = $2 WHERE user_id = $3",
                &[&stored(messages), &stored(tokens), &user.as_str()],
            )
            .await?,
        )
    }

    async fn set_password(
        &self,
        user: &UserId,
        hash: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE accounts SET password_hash = $1 WHERE user_id = $2",
                    &[&hash, &user.as_str()],
                )
                .await?;
            require_row(changed)?;
            let deleted = delete_sessions(&tx, user.as_str(), None, keep).await?;
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }

    async fn delete_user(&self, user: &UserId) -> Result<(), StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                "DELETE FROM client_messages WHERE user_id = $1",
                &[&user.as_str()],
            )
            .await?;
            let changed = tx
                .execute("DELETE FROM users WHERE id = $1", &[&user.as_str()])
                .await?;
            require_row(changed)?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn create_session(
        &self,
        s: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<(), StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            if let Some(old) = replaces {
                tx.execute("DELETE FROM sessions WHERE token_hash = $1", &[&old])
                    .await?;
            }
            tx.execute(
                "INSERT INTO sessions (token_hash, public_id, user_id, device, created_at, \
                 last_seen) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &s.token_hash,
                    &s.public_id,
                    &s.user_id.as_str(),
                    &s.device,
                    &s.created_at,
                    &s.last_seen,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, AccountRecord)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {ACCOUNT_COLUMNS} FROM sessions s \
             JOIN accounts a ON a.user_id = s.user_id WHERE s.token_hash = $1"
        );
        let rows = self.query(&sql, &[&token_hash]).await?;
        rows.first()
            .map(|row| Ok((session_at(row, 0)?, account_at(row, 6)?)))
            .transpose()
    }

    async fn touch_session(&self, token_hash: &str, now: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE sessions SET last_seen = $1 WHERE token_hash = $2",
            &[&now, &token_hash],
        )
        .await
        .map(drop)
    }

    async fn list_sessions(&self, user: &UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 \
             ORDER BY s.last_seen DESC, s.created_at DESC"
        );
        self.query(&sql, &[&user.as_str()])
            .await?
            .iter()
            .map(|row| session_at(row, 0))
            .collect()
    }

    async fn delete_sessions(
        &self,
        user: &UserId,
        public_id: Option<&str>,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.writing(|client| async move {
            delete_sessions(&client, user.as_str(), public_id, keep).await
        })
        .await
    }

    async fn claim_guest(&self, guest: &UserId, account: &UserId) -> Result<u64, StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            let (guest, account) = (guest.as_str(), account.as_str());
            let guest_is_account: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM accounts WHERE user_id = $1)",
                    &[&guest],
                )
                .await?
                .try_get(0)?;
            if guest_is_account || guest == account {
                return Ok(0);
            }
            let moved = tx
                .execute(
                    "UPDATE conversations SET user_id = $1 WHERE user_id = $2",
                    &[&account, &guest],
                )
                .await?;
            tx.execute(
                "UPDATE companions SET user_id = $1 WHERE user_id = $2",
                &[&account, &guest],
            )
            .await?;
            // Client ids are random; one the account already used stays the account's.
            tx.execute(
                "DELETE FROM client_messages g WHERE g.user_id = $2 AND EXISTS \
                 (SELECT 1 FROM client_messages a WHERE a.user_id = $1 \
                  AND a.client_msg_id = g.client_msg_id)",
                &[&account, &guest],
            )
            .await?;
            tx.execute(
                "UPDATE client_messages SET user_id = $1 WHERE user_id = $2",
                &[&account, &guest],
            )
            .await?;
            tx.execute("DELETE FROM users WHERE id = $1", &[&guest])
                .await?;
            tx.commit().await?;
            Ok(moved)
        })
        .await
    }

    async fn create_invite(&self, code_hash: &str, i: &InviteRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO invites (code_hash, public_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &code_hash,
                &i.public_id,
                &i.created_by.as_str(),
                &i.created_at,
                &i.expires_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn list_invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        let sql = format!("SELECT {INVITE_COLUMNS} FROM invites ORDER BY created_at DESC");
        self.query(&sql, &[]).await?.iter().map(invite).collect()
    }

    async fn usage_on(&self, user: &UserId, day: &str) -> Result<(u64, u64), StoreError> {
        let rows = self
            .query(
                "SELECT messages, tokens FROM usage WHERE user_id = $1 AND day = $2",
                &[&user.as_str(), &day],
            )
            .await?;
        match rows.first() {
            Some(row) => Ok((
                count(Some(row.try_get(0)?)).unwrap_or(0),
                count(Some(row.try_get(1)?)).unwrap_or(0),
            )),
            None => Ok((0, 0)),
        }
    }

    async fn add_usage(
        &self,
        user: &UserId,
        day: &str,
        messages: u64,
        tokens: u64,
    ) -> Result<(), StoreError> {
        let (messages, tokens) = (
            i64::try_from(messages).unwrap_or(i64::MAX),
            i64::try_from(tokens).unwrap_or(i64::MAX),
        );
        self.execute(
            "INSERT INTO usage (user_id, day, messages, tokens) \
             SELECT $1::text, $2::text, $3::bigint, $4::bigint \
             WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
             ON CONFLICT (user_id, day) DO UPDATE SET \
             messages = usage.messages + excluded.messages, tokens = usage.tokens + excluded.tokens",
            &[&user.as_str(), &day, &messages, &tokens],
        )
        .await
        .map(drop)
    }

    async fn usage_since(&self, since: &str) -> Result<Vec<UsageDay>, StoreError> {
        self.query(
            "SELECT u.user_id, a.username, u.day, u.messages, u.tokens FROM usage u \
             LEFT JOIN accounts a ON a.user_id = u.user_id WHERE u.day >= $1 \
             ORDER BY u.day DESC, u.messages DESC, u.user_id",
            &[&since],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(UsageDay {
                user_id: UserId(row.try_get(0)?),
                username: row.try_get(1)?,
                day: row.try_get(2)?,
                messages: count(Some(row.try_get(3)?)).unwrap_or(0),
                tokens: count(Some(row.try_get(4)?)).unwrap_or(0),
            })
        })
        .collect()
    }

    async fn add_passkey(&self, p: &PasskeyRecord) -> Result<bool, StoreError> {
        let added = self
            .execute(
                "INSERT INTO passkeys (credential_id, user_id, public_key, sign_count, name, \
                 created_at, last_used) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (credential_id) DO NOTHING",
                &[
                    &p.credential_id,
                    &p.user_id.as_str(),
                    &p.public_key,
                    &i64::from(p.sign_count),
                    &p.name,
                    &p.created_at,
                    &p.last_used,
                ],
            )
            .await?;
        Ok(added == 1)
    }

    async fn passkey(
        &self,
        credential_id: &str,
    ) -> Result<Option<(PasskeyRecord, AccountRecord)>, StoreError> {
        let sql = format!(
            "SELECT {PASSKEY_COLUMNS}, {ACCOUNT_COLUMNS} FROM passkeys p \
             JOIN accounts a ON a.user_id = p.user_id WHERE p.credential_id = $1"
        );
        let rows = self.query(&sql, &[&credential_id]).await?;
        rows.first()
            .map(|row| Ok((passkey_at(row, 0)?, account_at(row, 7)?)))
            .transpose()
    }

    async fn passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys p WHERE p.user_id = $1 \
             ORDER BY p.created_at, p.credential_id"
        );
        self.query(&sql, &[&user.as_str()])
            .await?
            .iter()
            .map(|row| passkey_at(row, 0))
            .collect()
    }

    async fn passkey_used(
        &self,
        credential_id: &str,
        sign_count: u32,
        now: &str,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE passkeys SET sign_count = $1, last_used = $2 WHERE credential_id = $3",
            &[&i64::from(sign_count), &now, &credential_id],
        )
        .await
        .map(drop)
    }

    async fn delete_passkey(&self, user: &UserId, credential_id: &str) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "DELETE FROM passkeys WHERE credential_id = $1 AND user_id = $2",
                &[&credential_id, &user.as_str()],
            )
            .await?,
        )
    }
}
