//! Rows as the store's types: the same shapes SQLite's store returns.

use tokio_postgres::Row;

use crate::protocol::{
    Alternatives, ConversationId, FinishReason, Message, MessageId, Role, UserId,
};
use crate::server::store::{ConversationRecord, StoreError};

/// The columns [`conversation`] reads, in a `SELECT` or `RETURNING`.
pub(super) const CONVERSATION_COLUMNS: &str =
    "id, user_id, title, persona, created_at, updated_at, model";

pub(super) fn conversation(row: &Row) -> Result<ConversationRecord, StoreError> {
    Ok(ConversationRecord {
        id: ConversationId(row.try_get("id")?),
        user_id: UserId(row.try_get("user_id")?),
        title: row.try_get("title")?,
        persona: row.try_get("persona")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        model: row.try_get("model")?,
    })
}

pub(super) fn message(row: &Row) -> Result<Message, StoreError> {
    let role: &str = row.try_get("role")?;
    let finish: Option<&str> = row.try_get("finish_reason")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        role: if role == "user" {
            Role::User
        } else {
            Role::Assistant
        },
        content: row.try_get("content")?,
        created_at: row.try_get("created_at")?,
        finish_reason: finish.and_then(FinishReason::parse),
        alternatives: None,
        model: row.try_get("model")?,
    })
}

/// A message read with `branches::VIEW_COLUMNS`: [`message`]'s, with its alternatives.
pub(super) fn view(row: &Row) -> Result<Message, StoreError> {
    Ok(Message {
        alternatives: Alternatives::counted(row.try_get("alt_index")?, row.try_get("alt_count")?),
        ..message(row)?
    })
}

/// Every row as a conversation.
pub(super) fn conversations(rows: &[Row]) -> Result<Vec<ConversationRecord>, StoreError> {
    rows.iter().map(conversation).collect()
}

/// Every row as a message.
pub(super) fn messages(rows: &[Row]) -> Result<Vec<Message>, StoreError> {
    rows.iter().map(message).collect()
}

/// Every row (read with `branches::VIEW_COLUMNS`) as a shown message.
pub(super) fn views(rows: &[Row]) -> Result<Vec<Message>, StoreError> {
    rows.iter().map(view).collect()
}
