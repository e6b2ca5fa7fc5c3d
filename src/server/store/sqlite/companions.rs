//! [`CompanionStore`] on SQLite: reads on the reader pool, writes on the
//! writer (each method one job, so the limit check and the insert of
//! [`CompanionStore::create_companion`] cannot race another write).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row};

use super::{require_row, SqliteStore};
use crate::protocol::UserId;
use crate::server::store::{
    companions::{Avatar, CompanionRecord, CompanionStore},
    StoreError,
};

const COLUMNS: &str = "id, user_id, card, emoji, avatar_type, created_at, updated_at";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<CompanionRecord> {
    Ok(CompanionRecord {
        id: row.get(0)?,
        user_id: UserId(row.get(1)?),
        card: row.get(2)?,
        emoji: row.get(3)?,
        avatar_type: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

#[async_trait]
impl CompanionStore for SqliteStore {
    async fn list_companions(&self, user: &UserId) -> Result<Vec<CompanionRecord>, StoreError> {
        let user = user.clone();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM companions WHERE user_id = ? \
                         ORDER BY updated_at DESC, rowid DESC"
                    ))?
                    .query_map([user.as_str()], record_from_row)?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn companion(&self, user: &UserId, id: &str) -> Result<CompanionRecord, StoreError> {
        let (user, id) = (user.clone(), id.to_owned());
        self.readers
            .run(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM companions WHERE id = ? AND user_id = ?"
                ))?
                .query_row([id.as_str(), user.as_str()], record_from_row)
                .optional()?
                .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn create_companion(
        &self,
        record: &CompanionRecord,
        avatar: Option<Avatar>,
        max: usize,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        self.writer
            .run(move |conn| {
                let count: i64 = conn
                    .prepare_cached("SELECT count(*) FROM companions WHERE user_id = ?")?
                    .query_row([record.user_id.as_str()], |row| row.get(0))?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                    return Ok(false);
                }
                conn.prepare_cached("INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)")?
                    .execute([record.user_id.as_str(), &record.created_at])?;
                conn.prepare_cached(&format!(
                    "INSERT INTO companions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ))?
                .execute(rusqlite::params![
                    record.id,
                    record.user_id.as_str(),
                    record.card,
                    record.emoji,
                    avatar.as_ref().map(|a| a.content_type.as_str()),
                    record.created_at,
                    record.updated_at,
                ])?;
                if let Some(avatar) = avatar {
                    conn.prepare_cached(
                        "INSERT INTO companion_avatars (companion_id, bytes) VALUES (?, ?)",
                    )?
                    .execute(rusqlite::params![record.id, avatar.bytes])?;
                }
                Ok(true)
            })
            .await
    }

    async fn update_companion(
        &self,
        user: &UserId,
        id: &str,
        card: &str,
        emoji: Option<&str>,
        updated_at: &str,
    ) -> Result<(), StoreError> {
        let params = (
            card.to_owned(),
            emoji.map(str::to_owned),
            updated_at.to_owned(),
            id.to_owned(),
            user.to_string(),
        );
        let changed = self
            .writer
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "UPDATE companions SET card = ?, emoji = ?, updated_at = ? \
                         WHERE id = ? AND user_id = ?",
                    )?
                    .execute(rusqlite::params![
                        params.0, params.1, params.2, params.3, params.4
                    ])?)
            })
            .await?;
        require_row(changed)
    }

    async fn delete_companion(&self, user: &UserId, id: &str) -> Result<(), StoreError> {
        let params = [id.to_owned(), user.to_string()];
        require_row(
            self.execute(
                "DELETE FROM companions WHERE id = ? AND user_id = ?",
                params,
            )
            .await?,
        )
    }

    async fn companion_avatar(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<Avatar>, StoreError> {
        let (user, id) = (user.clone(), id.to_owned());
        self.readers
            .run(move |conn| {
                let found = conn
                    .prepare_cached(
                        "SELECT c.avatar_type, a.bytes FROM companions c \
                         LEFT JOIN companion_avatars a ON a.companion_id = c.id \
                         WHERE c.id = ? AND c.user_id = ?",
                    )?
                    .query_row([id.as_str(), user.as_str()], |row| {
                        Ok((
                            row.get::<_, Option<String>>(0)?,
                            row.get::<_, Option<Vec<u8>>>(1)?,
                        ))
                    })
                    .optional()?
                    .ok_or(StoreError::NotFound)?;
                Ok(match found {
                    (Some(content_type), Some(bytes)) => Some(Avatar {
                        content_type,
                        bytes,
                    }),
                    _ => None,
                })
            })
            .await
    }

    async fn set_companion_avatar(
        &self,
        user: &UserId,
        id: &str,
        avatar: Option<Avatar>,
        updated_at: &str,
    ) -> Result<(), StoreError> {
        let (user, id, updated_at) = (user.clone(), id.to_owned(), updated_at.to_owned());
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE companions SET avatar_type = ?, updated_at = ? \
                         WHERE id = ? AND user_id = ?",
                    )?
                    .execute(rusqlite::params![
                        avatar.as_ref().map(|a| a.content_type.as_str()),
                        updated_at,
                        id,
                        user.as_str(),
                    ])?;
                require_row(changed)?;
                match avatar {
                    Some(avatar) => conn
                        .prepare_cached(
                            "INSERT INTO companion_avatars (companion_id, bytes) VALUES (?, ?) \
                             ON CONFLICT (companion_id) DO UPDATE SET bytes = excluded.bytes",
                        )?
                        .execute(rusqlite::params![id, avatar.bytes])?,
                    None => conn
                        .prepare_cached("DELETE FROM companion_avatars WHERE companion_id = ?")?
                        .execute([id.as_str()])?,
                };
                Ok(())
            })
            .await
    }
}
