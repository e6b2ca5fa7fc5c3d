//! Swipes and branches on PostgreSQL: the same tree, chosen alternatives
//! and materialised path as SQLite's `branches.rs` (whose doc comments are
//! the spec); schema `migrations/postgres/0004_branches.sql`.

use deadpool_postgres::{Client, GenericClient, Transaction};

use super::send::{claim_key, find_client_message};
use crate::{
    protocol::{Alternatives, ConversationId, FinishReason, Message, MessageId, Role},
    server::store::{new_id, now_rfc3339, EditOutcome, ReplyEdit, StoreError},
};

/// The columns a shown message is read with (see [`super::rows::view`]).
pub(super) const VIEW_COLUMNS: &str = "m.id, m.role, m.content, m.finish_reason, m.created_at, m.model, \
     (SELECT count(*) FROM messages s WHERE s.parent_id = m.parent_id) AS alt_count, \
     (SELECT count(*) FROM messages s WHERE s.parent_id = m.parent_id AND s.seq < m.seq) AS alt_index";

/// The alternatives of message `id`, whose parent is `parent`.
pub(super) async fn alternatives_of(
    tx: &impl GenericClient,
    parent: &str,
    id: &MessageId,
) -> Result<Option<Alternatives>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT count(*), count(*) FILTER (WHERE seq < (SELECT seq FROM messages WHERE id = $2)) \
             FROM messages WHERE parent_id = $1",
        )
        .await?;
    let row = tx.query_one(&stmt, &[&parent, &id.as_str()]).await?;
    Ok(Alternatives::counted(row.try_get(1)?, row.try_get(0)?))
}

/// Marks `active` exactly the messages of the chosen path.
pub(super) async fn refresh_path(
    tx: &impl GenericClient,
    conversation: &ConversationId,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "WITH RECURSIVE path(id) AS ( \
                 SELECT id FROM messages WHERE parent_id = $1 AND selected \
                 UNION ALL \
                 SELECT m.id FROM messages m JOIN path p ON m.parent_id = p.id WHERE m.selected \
             ) \
             UPDATE messages SET active = (id IN (SELECT id FROM path)) \
             WHERE conversation_id = $1 AND active <> (id IN (SELECT id FROM path))",
        )
        .await?;
    tx.execute(&stmt, &[&conversation.as_str()]).await?;
    Ok(())
}

/// Un-chooses message `id` of `conversation` (of `role`), returning its parent.
pub(super) async fn set_aside(
    tx: &impl GenericClient,
    conversation: &ConversationId,
    id: &MessageId,
    role: Role,
) -> Result<String, StoreError> {
    let role = match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let stmt = tx
        .prepare_cached(
            "UPDATE messages SET selected = FALSE, active = FALSE \
             WHERE id = $1 AND conversation_id = $2 AND role = $3 RETURNING parent_id",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&id.as_str(), &conversation.as_str(), &role])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(row.try_get(0)?)
}

/// Chooses alternative `index` of the turn of `message`.
pub(super) async fn select(
    client: &mut Client,
    conversation: &ConversationId,
    message: &MessageId,
    index: u32,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let parent: String = tx
        .query_opt(
            "SELECT parent_id FROM messages WHERE id = $1 AND conversation_id = $2",
            &[&message.as_str(), &conversation.as_str()],
        )
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get(0)?;
    let chosen: String = tx
        .query_opt(
            "SELECT id FROM messages WHERE parent_id = $1 ORDER BY seq LIMIT 1 OFFSET $2",
            &[&parent, &i64::from(index)],
        )
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get(0)?;
    let changed = tx
        .execute(
            "UPDATE messages SET selected = (id = $2) \
             WHERE parent_id = $1 AND selected <> (id = $2)",
            &[&parent, &chosen],
        )
        .await?;
    if changed > 0 {
        refresh_path(&tx, conversation).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes a message and everything after it.
pub(super) async fn delete(
    client: &mut Client,
    conversation: &ConversationId,
    message: &MessageId,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT parent_id, seq, selected FROM messages WHERE id = $1 AND conversation_id = $2",
            &[&message.as_str(), &conversation.as_str()],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let (parent, seq, selected): (String, i64, bool) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    tx.execute(
        "WITH RECURSIVE doomed(id) AS ( \
             SELECT $1::text \
             UNION ALL \
             SELECT m.id FROM messages m JOIN doomed d ON m.parent_id = d.id \
         ) \
         DELETE FROM messages WHERE id IN (SELECT id FROM doomed)",
        &[&message.as_str()],
    )
    .await?;
    if selected {
        tx.execute(
            "UPDATE messages SET selected = TRUE WHERE id = ( \
                 SELECT id FROM messages WHERE parent_id = $1 \
                 ORDER BY seq > $2, CASE WHEN seq < $2 THEN -seq ELSE seq END LIMIT 1)",
            &[&parent, &seq],
        )
        .await?;
    }
    refresh_path(&tx, conversation).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores an edited assistant message.
pub(super) async fn edit_reply(
    client: &mut Client,
    edit: ReplyEdit,
) -> Result<EditOutcome, StoreError> {
    let now = now_rfc3339();
    let id = MessageId(new_id());
    let tx = client.transaction().await?;
    if !claim_key(
        &tx,
        &edit.user_id,
        &edit.client_msg_id,
        &edit.conversation,
        &id,
        &now,
    )
    .await?
    {
        tx.rollback().await?;
        let earlier =
            find_client_message(client, &edit.user_id, edit.client_msg_id.as_str()).await?;
        let (conversation_id, message_id) = earlier.ok_or(StoreError::NotFound)?;
        return Ok(EditOutcome::Duplicate {
            conversation_id,
            message_id,
        });
    }
    touch(&tx, &edit).await?;
    let parent = set_aside(&tx, &edit.conversation, &edit.of, Role::Assistant).await?;
    tx.execute(
        "INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, parent_id) \
         VALUES ($1, $2, 'assistant', $3, 'stop', $4, $5)",
        &[&id.as_str(), &edit.conversation.as_str(), &edit.text, &now, &parent],
    )
    .await?;
    refresh_path(&tx, &edit.conversation).await?;
    let alternatives = alternatives_of(&tx, &parent, &id).await?;
    tx.commit().await?;
    Ok(EditOutcome::Stored(Message {
        id,
        role: Role::Assistant,
        content: edit.text,
        created_at: now,
        finish_reason: Some(FinishReason::Stop),
        alternatives,
        model: None,
    }))
}

/// Ownership check and touch of the edited conversation.
async fn touch(tx: &Transaction<'_>, edit: &ReplyEdit) -> Result<(), StoreError> {
    let changed = tx
        .execute(
            "UPDATE conversations SET updated_at = $1 WHERE id = $2 AND user_id = $3",
            &[
                &now_rfc3339(),
                &edit.conversation.as_str(),
                &edit.user_id.as_str(),
            ],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
