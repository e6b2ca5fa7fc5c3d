//! Swipes and branches on SQLite: a conversation is a tree of messages
//! (`parent_id`), one alternative of each turn is chosen (`selected`), and
//! the chosen path is kept materialised (`active`) so that every read of
//! the conversation stays a keyset read on its `(conversation_id, seq)`
//! index. Schema: `migrations/sqlite/0005_branches.sql`.

use rusqlite::{Connection, OptionalExtension};

use super::{find_client_message, require_row};
use crate::{
    protocol::{Alternatives, ConversationId, FinishReason, Message, MessageId, Role},
    server::store::{new_id, now_rfc3339, EditOutcome, ReplyEdit, StoreError},
};

/// The columns a shown message is read with: [`super::MESSAGE_COLUMNS`]
/// of `messages m`, then its alternatives' count and its place among them
/// (two lookups on `messages_by_parent`).
pub(super) const VIEW_COLUMNS: &str = "m.id, m.role, m.content, m.finish_reason, m.created_at, m.model, \
     (SELECT count(*) FROM messages s WHERE s.parent_id = m.parent_id) AS alt_count, \
     (SELECT count(*) FROM messages s WHERE s.parent_id = m.parent_id AND s.seq < m.seq) AS alt_index";

/// A message read with [`VIEW_COLUMNS`]: [`super::message_from_row`]'s,
/// with its alternatives.
pub(super) fn view_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        alternatives: Alternatives::counted(row.get(7)?, row.get(6)?),
        ..super::message_from_row(row)?
    })
}

/// The alternatives of message `id`, whose parent is `parent`.
pub(super) fn alternatives_of(
    conn: &Connection,
    parent: &str,
    id: &MessageId,
) -> Result<Option<Alternatives>, StoreError> {
    let (count, index): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), count(*) FILTER (WHERE seq < (SELECT seq FROM messages WHERE id = ?2)) \
             FROM messages WHERE parent_id = ?1",
        )?
        .query_row([parent, id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(Alternatives::counted(index, count))
}

/// Marks `active` exactly the messages of the chosen path: from the
/// conversation's chosen first message, each message's chosen child.
/// Only rows whose flag changes are written.
pub(super) fn refresh_path(
    conn: &Connection,
    conversation: &ConversationId,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "WITH RECURSIVE path(id) AS ( \
             SELECT id FROM messages WHERE parent_id = ?1 AND selected = 1 \
             UNION ALL \
             SELECT m.id FROM messages m JOIN path p ON m.parent_id = p.id WHERE m.selected = 1 \
         ) \
         UPDATE messages SET active = (id IN (SELECT id FROM path)) \
         WHERE conversation_id = ?1 AND active != (id IN (SELECT id FROM path))",
    )?
    .execute([conversation.as_str()])?;
    Ok(())
}

/// Un-chooses message `id` of `conversation` (of `role`), returning its
/// parent: the caller stores the alternative chosen in its place.
/// `NotFound` when there is no such message.
pub(super) fn set_aside(
    conn: &Connection,
    conversation: &ConversationId,
    id: &MessageId,
    role: Role,
) -> Result<String, StoreError> {
    let role = match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    conn.prepare_cached(
        "UPDATE messages SET selected = 0, active = 0 \
         WHERE id = ? AND conversation_id = ? AND role = ? RETURNING parent_id",
    )?
    .query_row([id.as_str(), conversation.as_str(), role], |row| row.get(0))
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Chooses alternative `index` of the turn of `message` (see
/// [`Store::select_alternative`](crate::server::store::Store::select_alternative)).
pub(super) fn select(
    conn: &Connection,
    conversation: &ConversationId,
    message: &MessageId,
    index: u32,
) -> Result<(), StoreError> {
    let parent: String = conn
        .prepare_cached("SELECT parent_id FROM messages WHERE id = ? AND conversation_id = ?")?
        .query_row([message.as_str(), conversation.as_str()], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let chosen: String = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE parent_id = ? ORDER BY seq LIMIT 1 OFFSET ?",
        )?
        .query_row(rusqlite::params![parent, i64::from(index)], |row| {
            row.get(0)
        })
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET selected = (id = ?2) \
             WHERE parent_id = ?1 AND selected != (id = ?2)",
        )?
        .execute([parent.as_str(), chosen.as_str()])?;
    if changed > 0 {
        refresh_path(conn, conversation)?;
    }
    Ok(())
}

/// Deletes a message and everything after it (see
/// [`Store::delete_message`](crate::server::store::Store::delete_message)).
pub(super) fn delete(
    conn: &Connection,
    conversation: &ConversationId,
    message: &MessageId,
) -> Result<(), StoreError> {
    let (parent, seq, selected): (String, i64, bool) = conn
        .prepare_cached(
            "SELECT parent_id, seq, selected FROM messages WHERE id = ? AND conversation_id = ?",
        )?
        .query_row([message.as_str(), conversation.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?
        .ok_or(StoreError::NotFound)?;
    conn.prepare_cached(
        "WITH RECURSIVE doomed(id) AS ( \
             SELECT ?1 \
             UNION ALL \
             SELECT m.id FROM messages m JOIN doomed d ON m.parent_id = d.id \
         ) \
         DELETE FROM messages WHERE id IN (SELECT id FROM doomed)",
    )?
    .execute([message.as_str()])?;
    if selected {
        // The alternative before it, else the one after, takes its place.
        conn.prepare_cached(
            "UPDATE messages SET selected = 1 WHERE id = ( \
                 SELECT id FROM messages WHERE parent_id = ?1 \
                 ORDER BY seq > ?2, CASE WHEN seq < ?2 THEN -seq ELSE seq END LIMIT 1)",
        )?
        .execute(rusqlite::params![parent, seq])?;
    }
    refresh_path(conn, conversation)
}

/// Stores an edited assistant message (see
/// [`Store::edit_reply`](crate::server::store::Store::edit_reply)).
pub(super) fn edit_reply(conn: &Connection, edit: ReplyEdit) -> Result<EditOutcome, StoreError> {
    if let Some((conversation_id, message_id)) =
        find_client_message(conn, edit.user_id.as_str(), edit.client_msg_id.as_str())?
    {
        return Ok(EditOutcome::Duplicate {
            conversation_id,
            message_id,
        });
    }
    let now = now_rfc3339();
    // Ownership check and touch.
    require_row(
        conn.prepare_cached(
            "UPDATE conversations SET updated_at = ? WHERE id = ? AND user_id = ?",
        )?
        .execute([&now, edit.conversation.as_str(), edit.user_id.as_str()])?,
    )?;
    let parent = set_aside(conn, &edit.conversation, &edit.of, Role::Assistant)?;
    let id = MessageId(new_id());
    conn.prepare_cached(
        "INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, parent_id) \
         VALUES (?, ?, 'assistant', ?, 'stop', ?, ?)",
    )?
    .execute([
        id.as_str(),
        edit.conversation.as_str(),
        &edit.text,
        &now,
        &parent,
    ])?;
    conn.prepare_cached(
        "INSERT INTO client_messages (user_id, client_msg_id, conversation_id, message_id, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )?
    .execute([
        edit.user_id.as_str(),
        edit.client_msg_id.as_str(),
        edit.conversation.as_str(),
        id.as_str(),
        &now,
    ])?;
    refresh_path(conn, &edit.conversation)?;
    let alternatives = alternatives_of(conn, &parent, &id)?;
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
