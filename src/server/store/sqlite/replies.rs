//! The life of an assistant message on SQLite: started by a run, written
//! only by that run (its token fences every write), finished or recovered.
//!
//! The partial unique index `one_reply_at_a_time` (migration 2) keeps at
//! most one unfinished assistant message per conversation; inserting or
//! reopening a second one answers [`StoreError::Busy`].

use rusqlite::{Connection, ErrorCode, OptionalExtension};

use super::require_row;
use crate::{
    protocol::{ConversationId, FinishReason, Message, MessageId, Role, Usage},
    server::store::{new_id, now_rfc3339, OrphanedReply, ReplyRun, StoreError},
};

/// `Busy` for a write refused by `one_reply_at_a_time`.
fn busy_or(err: rusqlite::Error) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation => {
            StoreError::Busy
        }
        _ => err.into(),
    }
}

/// Marks `error` the unfinished reply an earlier run of `instance` left in
/// the conversation (its final write failed): the caller holds the
/// instance's reply slot, so none of its replies runs there now.
fn close_own_leftover(
    conn: &Connection,
    conversation: &ConversationId,
    instance: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE messages SET finish_reason = 'error' WHERE conversation_id = ? \
         AND role = 'assistant' AND finish_reason IS NULL AND owner = ?",
    )?
    .execute([conversation.as_str(), instance])?;
    Ok(())
}

/// An empty assistant message: id, conversation, time, instance, run
/// token, the message it follows, model.
pub(super) const INSERT_ASSISTANT: &str =
    "INSERT INTO messages (id, conversation_id, role, content, created_at, owner, run, parent_id, model) \
     VALUES (?, ?, 'assistant', '', ?, ?, ?, ?, ?)";

/// A new empty assistant message (finish reason unset) of `run` to stream
/// into, after message `parent`, written by `model` (the conversation's).
pub(super) fn insert_assistant(
    conn: &Connection,
    conversation: &ConversationId,
    run: &ReplyRun,
    (parent, model): (&str, Option<&str>),
) -> Result<Message, StoreError> {
    close_own_leftover(conn, conversation, &run.instance)?;
    let message = Message {
        id: MessageId(new_id()),
        role: Role::Assistant,
        content: String::new(),
        created_at: now_rfc3339(),
        finish_reason: None,
        alternatives: None,
        model: model.map(str::to_owned),
    };
    conn.prepare_cached(INSERT_ASSISTANT)?
        .execute(rusqlite::params![
            message.id.as_str(),
            conversation.as_str(),
            &message.created_at,
            &run.instance,
            &run.token,
            parent,
            model,
        ])
        .map_err(busy_or)?;
    Ok(message)
}

/// `Fenced` if the message exists (finished, or another run's), else `NotFound`.
fn refused(conn: &Connection, id: &MessageId) -> StoreError {
    let exists = conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?")
        .and_then(|mut s| s.query_row([id.as_str()], |_| Ok(())).optional());
    match exists {
        Ok(Some(())) => StoreError::Fenced,
        Ok(None) => StoreError::NotFound,
        Err(err) => err.into(),
    }
}

pub(super) fn checkpoint(
    conn: &Connection,
    id: &MessageId,
    run: &str,
    content: &str,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET content = ? \
             WHERE id = ? AND run = ? AND finish_reason IS NULL",
        )?
        .execute([content, id.as_str(), run])?;
    if changed == 0 {
        return Err(refused(conn, id));
    }
    Ok(())
}

pub(super) fn finish(
    conn: &Connection,
    id: &MessageId,
    run: &str,
    content: &str,
    finish_reason: FinishReason,
    usage: Option<Usage>,
) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET content = ?, finish_reason = ?, prompt_tokens = ?, \
             completion_tokens = ? WHERE id = ? AND run = ? AND finish_reason IS NULL",
        )?
        .execute(rusqlite::params![
            content,
            finish_reason.as_str(),
            usage.map(|u| u.prompt_tokens),
            usage.map(|u| u.completion_tokens),
            id.as_str(),
            run,
        ])?;
    if changed == 0 {
        // NotFound: the conversation was deleted while the reply streamed.
        return Err(refused(conn, id));
    }
    conn.prepare_cached(
        "UPDATE conversations SET updated_at = ? \
         WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
    )?
    .execute([now_rfc3339().as_str(), id.as_str()])?;
    Ok(())
}

pub(super) fn reopen(
    conn: &Connection,
    id: &MessageId,
    was: FinishReason,
    run: &ReplyRun,
) -> Result<(), StoreError> {
    let conversation: Option<String> = conn
        .prepare_cached(
            "SELECT conversation_id FROM messages \
             WHERE id = ? AND role = 'assistant' AND finish_reason = ?",
        )?
        .query_row([id.as_str(), was.as_str()], |row| row.get(0))
        .optional()?;
    let conversation = ConversationId(conversation.ok_or(StoreError::NotFound)?);
    close_own_leftover(conn, &conversation, &run.instance)?;
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET finish_reason = NULL, owner = ?, run = ? \
             WHERE id = ? AND finish_reason = ?",
        )?
        .execute([&run.instance, &run.token, id.as_str(), was.as_str()])
        .map_err(busy_or)?;
    require_row(changed)
}

pub(super) fn heartbeat(conn: &Connection, instance: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO instances (id, seen_at) VALUES (?, ?) \
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
    )?
    .execute([instance, &now_rfc3339()])?;
    Ok(())
}

/// Unfinished replies whose instance was last seen before `cutoff` (RFC 3339).
pub(super) fn orphaned(conn: &Connection, cutoff: &str) -> Result<Vec<OrphanedReply>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT m.conversation_id, m.id, COALESCE(m.run, ''), m.content \
             FROM messages m LEFT JOIN instances i ON i.id = m.owner \
             WHERE m.role = 'assistant' AND m.finish_reason IS NULL \
             AND (i.id IS NULL OR i.seen_at < ?)",
        )?
        .query_map([cutoff], |row| {
            Ok(OrphanedReply {
                conversation_id: ConversationId(row.get(0)?),
                message_id: MessageId(row.get(1)?),
                run: row.get(2)?,
                content: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

pub(super) fn recover(
    conn: &Connection,
    id: &MessageId,
    run: &str,
    content: &str,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET content = ?, finish_reason = 'error', run = ? \
             WHERE id = ? AND COALESCE(run, '') = ? AND finish_reason IS NULL",
        )?
        .execute([content, &new_id(), id.as_str(), run])?;
    Ok(changed == 1)
}

pub(super) fn shared_setting(
    conn: &Connection,
    key: &str,
    proposed: &str,
) -> Result<String, StoreError> {
    conn.prepare_cached("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)")?
        .execute([key, proposed])?;
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?")?
        .query_row([key], |row| row.get(0))?)
}
