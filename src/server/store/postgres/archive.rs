//! [`ArchiveStore`] on PostgreSQL, as SQLite's `archive.rs`.

use async_trait::async_trait;

use super::{branches, rows, send, PgStore};
use crate::{
    protocol::{ConversationId, FinishReason, MessageId, Role, Usage, UserId},
    server::store::{
        archive::{ArchiveStore, ConversationTree, TreeMessage},
        ConversationRecord, StoreError,
    },
};

#[async_trait]
impl ArchiveStore for PgStore {
    async fn conversation_ids(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError> {
        let rows = self
            .query(
                "SELECT id FROM conversations WHERE user_id = $1 ORDER BY created_at, seq",
                &[&user.as_str()],
            )
            .await?;
        rows.iter()
            .map(|row| Ok(ConversationId(row.try_get(0)?)))
            .collect()
    }

    async fn conversation_tree(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationTree, StoreError> {
        let found = self
            .query(
                &format!(
                    "SELECT {} FROM conversations WHERE id = $1 AND user_id = $2",
                    rows::CONVERSATION_COLUMNS
                ),
                &[&id.as_str(), &user.as_str()],
            )
            .await?;
        let conversation = rows::conversation(found.first().ok_or(StoreError::NotFound)?)?;
        let found = self
            .query(
                "SELECT id, role, content, finish_reason, created_at, model, parent_id, selected, \
                        prompt_tokens, completion_tokens \
                 FROM messages WHERE conversation_id = $1 ORDER BY seq",
                &[&id.as_str()],
            )
            .await?;
        let messages = found
            .iter()
            .map(|row| {
                let parent: String = row.try_get("parent_id")?;
                let prompt: Option<i64> = row.try_get("prompt_tokens")?;
                let completion: Option<i64> = row.try_get("completion_tokens")?;
                Ok(TreeMessage {
                    message: rows::message(row)?,
                    parent: (parent != id.as_str()).then_some(MessageId(parent)),
                    selected: row.try_get("selected")?,
                    usage: prompt.zip(completion).map(|(p, c)| Usage {
                        prompt_tokens: u32::try_from(p).unwrap_or(u32::MAX),
                        completion_tokens: u32::try_from(c).unwrap_or(u32::MAX),
                    }),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ConversationTree {
            conversation,
            messages,
        })
    }

    async fn import_conversation(
        &self,
        user: &UserId,
        tree: ConversationTree,
    ) -> Result<ConversationRecord, StoreError> {
        self.writing(|mut client| async move {
            let ConversationTree {
                conversation,
                messages,
            } = tree;
            let record = ConversationRecord {
                user_id: user.clone(),
                ..conversation
            };
            let tx = client.transaction().await?;
            send::insert_conversation(&tx, &record).await?;
            let insert = tx
                .prepare(
                    "INSERT INTO messages (id, conversation_id, role, content, finish_reason, \
                         created_at, parent_id, selected, active, prompt_tokens, completion_tokens, \
                         model) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, $10, $11)",
                )
                .await?;
            for m in &messages {
                let (role, finish) = match m.message.role {
                    Role::User => ("user", None),
                    Role::Assistant => (
                        "assistant",
                        Some(m.message.finish_reason.unwrap_or(FinishReason::Error).as_str()),
                    ),
                };
                let parent = m.parent.as_ref().map_or(record.id.as_str(), MessageId::as_str);
                let prompt = m.usage.map(|u| i64::from(u.prompt_tokens));
                let completion = m.usage.map(|u| i64::from(u.completion_tokens));
                tx.execute(
                    &insert,
                    &[
                        &m.message.id.as_str(),
                        &record.id.as_str(),
                        &role,
                        &m.message.content,
                        &finish,
                        &m.message.created_at,
                        &parent,
                        &m.selected,
                        &prompt,
                        &completion,
                        &m.message.model,
                    ],
                )
                .await?;
            }
            branches::refresh_path(&tx, &record.id).await?;
            tx.commit().await?;
            Ok(record)
        })
        .await
    }
}
