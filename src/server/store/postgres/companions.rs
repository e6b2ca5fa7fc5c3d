//! [`CompanionStore`] on PostgreSQL. Creating a companion locks the user's
//! row first, so the limit check and the insert cannot race another
//! instance creating one for the same user.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{require_row, PgStore};
use crate::protocol::UserId;
use crate::server::store::{
    companions::{Avatar, CompanionRecord, CompanionStore},
    StoreError,
};

const COLUMNS: &str = "id, user_id, card, emoji, avatar_type, created_at, updated_at";

fn record(row: &Row) -> Result<CompanionRecord, StoreError> {
    Ok(CompanionRecord {
        id: row.try_get(0)?,
        user_id: UserId(row.try_get(1)?),
        card: row.try_get(2)?,
        emoji: row.try_get(3)?,
        avatar_type: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}

#[async_trait]
impl CompanionStore for PgStore {
    async fn list_companions(&self, user: &UserId) -> Result<Vec<CompanionRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM companions WHERE user_id = $1 \
             ORDER BY updated_at DESC, id DESC"
        );
        self.query(&sql, &[&user.as_str()])
            .await?
            .iter()
            .map(record)
            .collect()
    }

    async fn companion(&self, user: &UserId, id: &str) -> Result<CompanionRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM companions WHERE id = $1 AND user_id = $2");
        let rows = self.query(&sql, &[&id, &user.as_str()]).await?;
        rows.first()
            .map(record)
            .unwrap_or(Err(StoreError::NotFound))
    }

    async fn create_companion(
        &self,
        record: &CompanionRecord,
        avatar: Option<Avatar>,
        max: usize,
    ) -> Result<bool, StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            let user = record.user_id.as_str();
            tx.execute(
                "INSERT INTO users (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&user, &record.created_at],
            )
            .await?;
            tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user])
                .await?;
            let count: i64 = tx
                .query_one(
                    "SELECT count(*) FROM companions WHERE user_id = $1",
                    &[&user],
                )
                .await?
                .try_get(0)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                return Ok(false);
            }
            let avatar_type = avatar.as_ref().map(|a| a.content_type.as_str());
            tx.execute(
                format!("INSERT INTO companions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .as_str(),
                &[
                    &record.id,
                    &user,
                    &record.card,
                    &record.emoji,
                    &avatar_type,
                    &record.created_at,
                    &record.updated_at,
                ],
            )
            .await?;
            if let Some(avatar) = &avatar {
                tx.execute(
                    "INSERT INTO companion_avatars (companion_id, bytes) VALUES ($1, $2)",
                    &[&record.id, &avatar.bytes],
                )
                .await?;
            }
            tx.commit().await?;
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
        require_row(
            self.execute(
                "UPDATE companions SET card = $1, emoji = $2, updated_at = $3 \
                 WHERE id = $4 AND user_id = $5",
                &[&card, &emoji, &updated_at, &id, &user.as_str()],
            )
            .await?,
        )
    }

    async fn delete_companion(&self, user: &UserId, id: &str) -> Result<(), StoreError> {
        require_row(
            self.execute(
                "DELETE FROM companions WHERE id = $1 AND user_id = $2",
                &[&id, &user.as_str()],
            )
            .await?,
        )
    }

    async fn companion_avatar(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<Avatar>, StoreError> {
        let rows = self
            .query(
                "SELECT c.avatar_type, a.bytes FROM companions c \
                 LEFT JOIN companion_avatars a ON a.companion_id = c.id \
                 WHERE c.id = $1 AND c.user_id = $2",
                &[&id, &user.as_str()],
            )
            .await?;
        let row = rows.first().ok_or(StoreError::NotFound)?;
        let content_type: Option<String> = row.try_get(0)?;
        let bytes: Option<Vec<u8>> = row.try_get(1)?;
        Ok(content_type.zip(bytes).map(|(content_type, bytes)| Avatar {
            content_type,
            bytes,
        }))
    }

    async fn set_companion_avatar(
        &self,
        user: &UserId,
        id: &str,
        avatar: Option<Avatar>,
        updated_at: &str,
    ) -> Result<(), StoreError> {
        self.writing(|mut client| async move {
            let tx = client.transaction().await?;
            let avatar_type = avatar.as_ref().map(|a| a.content_type.as_str());
            require_row(
                tx.execute(
                    "UPDATE companions SET avatar_type = $1, updated_at = $2 \
                     WHERE id = $3 AND user_id = $4",
                    &[&avatar_type, &updated_at, &id, &user.as_str()],
                )
                .await?,
            )?;
            match &avatar {
                Some(avatar) => {
                    tx.execute(
                        "INSERT INTO companion_avatars (companion_id, bytes) VALUES ($1, $2) \
                         ON CONFLICT (companion_id) DO UPDATE SET bytes = excluded.bytes",
                        &[&id, &avatar.bytes],
                    )
                    .await?
                }
                None => {
                    tx.execute(
                        "DELETE FROM companion_avatars WHERE companion_id = $1",
                        &[&id],
                    )
                    .await?
                }
            };
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
