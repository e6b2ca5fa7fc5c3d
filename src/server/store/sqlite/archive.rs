//! [`ArchiveStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};

use super::{
    branches, conversation_from_row, ensure_user, insert_conversation, message_from_row,
    SqliteStore, CONVERSATION_COLUMNS,
};
use crate::{
    protocol::{ConversationId, MessageId, Usage, UserId},
    server::store::{
        archive::{ArchiveStore, ConversationTree, TreeMessage},
        ConversationRecord, StoreError,
    },
};

#[async_trait]
impl ArchiveStore for SqliteStore {
    async fn conversation_ids(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError> {
        let user = user.clone();
        self.readers
            .run(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT id FROM conversations WHERE user_id = ? ORDER BY created_at, rowid",
                    )?
                    .query_map([user.as_str()], |row| Ok(ConversationId(row.get(0)?)))?
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    async fn conversation_tree(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationTree, StoreError> {
        let (user, id) = (user.clone(), id.clone());
        self.readers.run(move |conn| tree(conn, &user, &id)).await
    }

    async fn import_conversation(
        &self,
        user: &UserId,
        tree: ConversationTree,
    ) -> Result<ConversationRecord, StoreError> {
        let user = user.clone();
        self.writer.run(move |conn| import(conn, &user, tree)).await
    }
}

fn tree(
    conn: &Connection,
    user: &UserId,
    id: &ConversationId,
) -> Result<ConversationTree, StoreError> {
    let conversation = conn
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ?"
        ))?
        .query_row([id.as_str(), user.as_str()], conversation_from_row)
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let messages = conn
        .prepare_cached(
            "SELECT id, role, content, finish_reason, created_at, model, parent_id, selected, \
                    prompt_tokens, completion_tokens \
             FROM messages WHERE conversation_id = ? ORDER BY seq",
        )?
        .query_map([id.as_str()], |row| {
            let parent: String = row.get(6)?;
            let prompt: Option<u32> = row.get(8)?;
            let completion: Option<u32> = row.get(9)?;
            Ok(TreeMessage {
                message: message_from_row(row)?,
                parent: (parent != id.as_str()).then_some(MessageId(parent)),
                selected: row.get(7)?,
                usage: prompt
                    .zip(completion)
                    .map(|(prompt_tokens, completion_tokens)| Usage {
                        prompt_tokens,
                        completion_tokens,
                    }),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(ConversationTree {
        conversation,
        messages,
    })
}

fn import(
    conn: &Connection,
    user: &UserId,
    tree: ConversationTree,
) -> Result<ConversationRecord, StoreError> {
    let ConversationTree {
        conversation,
        messages,
    } = tree;
    ensure_user(conn, user, &conversation.created_at)?;
    let record = ConversationRecord {
        user_id: user.clone(),
        ..conversation
    };
    insert_conversation(conn, &record)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, \
                               parent_id, selected, active, prompt_tokens, completion_tokens, model) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
    )?;
    for m in &messages {
        let role = match m.message.role {
            crate::protocol::Role::User => "user",
            crate::protocol::Role::Assistant => "assistant",
        };
        // An unfinished reply cannot go on: it is stored as what a crash makes of it.
        let finish = match m.message.role {
            crate::protocol::Role::User => None,
            crate::protocol::Role::Assistant => Some(
                m.message
                    .finish_reason
                    .unwrap_or(crate::protocol::FinishReason::Error)
                    .as_str(),
            ),
        };
        insert.execute(rusqlite::params![
            m.message.id.as_str(),
            record.id.as_str(),
            role,
            &m.message.content,
            finish,
            &m.message.created_at,
            m.parent
                .as_ref()
                .map_or(record.id.as_str(), MessageId::as_str),
            m.selected,
            m.usage.map(|u| u.prompt_tokens),
            m.usage.map(|u| u.completion_tokens),
            &m.message.model,
        ])?;
    }
    branches::refresh_path(conn, &record.id)?;
    Ok(record)
}
