//! The life of an assistant message on PostgreSQL: started by a run,
//! written only by that run (its token fences every write), finished or
//! recovered. The same rules as SQLite's `replies.rs`, whose doc comments
//! (and the trait's) are the spec.
//!
//! The partial unique index `one_reply_at_a_time` (migration 2) keeps at
//! most one unfinished assistant message per conversation, across every
//! instance on the database; inserting or reopening a second one answers
//! [`StoreError::Busy`]. Instance staleness is judged by the database's
//! clock (`now()`), so instances whose clocks disagree still agree on it.

use std::time::Duration;

use deadpool_postgres::{Client, GenericClient, Transaction};
use futures::TryFutureExt;
use tokio_postgres::{error::SqlState, types::ToSql};

use super::send::new_reply;
use crate::{
    protocol::{ConversationId, FinishReason, Message, MessageId, Role, Usage},
    server::store::{new_id, now_rfc3339, OrphanedReply, ReplyRun, StoreError},
};

/// A new empty assistant message: `$1` id, `$2` conversation, `$3` time,
/// `$4` instance, `$5` run token, after `$6` (`NULL`: after the last
/// message shown).
const INSERT_ASSISTANT: &str =
    "INSERT INTO messages (id, conversation_id, role, content, created_at, owner, run, parent_id, model) \
     VALUES ($1, $2, 'assistant', '', $3, $4, $5, COALESCE($6::text, \
         (SELECT id FROM messages WHERE conversation_id = $2 AND active ORDER BY seq DESC LIMIT 1), $2), \
         (SELECT model FROM conversations WHERE id = $2)) \
     RETURNING model";

/// Marks `error` the unfinished reply an earlier run of instance `$2` left
/// in conversation `$1` (its final write failed): the caller holds the
/// instance's reply slot, so none of its replies runs there now.
const CLOSE_OWN_LEFTOVER: &str = "UPDATE messages SET finish_reason = 'error' \
     WHERE conversation_id = $1 AND role = 'assistant' AND finish_reason IS NULL AND owner = $2";

/// `Busy` for a write refused by `one_reply_at_a_time`.
pub(super) fn busy_or(err: tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db)
            if *db.code() == SqlState::UNIQUE_VIOLATION
                && db.constraint() == Some("one_reply_at_a_time") =>
        {
            StoreError::Busy
        }
        _ => err.into(),
    }
}

/// Closes the instance's leftover and inserts `run`'s empty reply, in
/// transaction `tx` (two statements, one round trip).
pub(super) async fn insert_assistant(
    tx: &Transaction<'_>,
    conversation: &ConversationId,
    run: &ReplyRun,
    parent: Option<&MessageId>,
) -> Result<Message, StoreError> {
    let close = tx.prepare_cached(CLOSE_OWN_LEFTOVER).await?;
    let insert = tx.prepare_cached(INSERT_ASSISTANT).await?;
    let reply = new_reply();
    let (conversation, id) = (conversation.as_str(), reply.id.as_str());
    let close_params: [&(dyn ToSql + Sync); 2] = [&conversation, &run.instance];
    let parent = parent.map(MessageId::as_str);
    let insert_params: [&(dyn ToSql + Sync); 6] = [
        &id,
        &conversation,
        &reply.created_at,
        &run.instance,
        &run.token,
        &parent,
    ];
    let (_, inserted) = futures::try_join!(
        tx.execute(&close, &close_params).map_err(StoreError::from),
        tx.query_one(&insert, &insert_params).map_err(busy_or),
    )?;
    let model: Option<String> = inserted.try_get(0)?;
    Ok(Message { model, ..reply })
}

/// [`insert_assistant`] in a transaction of its own: after the last
/// message shown, or in place of `replacing` (an alternative of it).
pub(super) async fn start(
    client: &mut Client,
    conversation: &ConversationId,
    run: &ReplyRun,
    replacing: Option<&MessageId>,
) -> Result<Message, StoreError> {
    let tx = client.transaction().await?;
    let reply = match replacing {
        None => insert_assistant(&tx, conversation, run, None).await?,
        Some(replaced) => {
            let parent =
                super::branches::set_aside(&tx, conversation, replaced, Role::Assistant).await?;
            let mut reply =
                insert_assistant(&tx, conversation, run, Some(&MessageId(parent.clone()))).await?;
            reply.alternatives = super::branches::alternatives_of(&tx, &parent, &reply.id).await?;
            reply
        }
    };
    tx.commit().await?;
    Ok(reply)
}

/// `Fenced` if the message exists (finished, or another run's), else `NotFound`.
async fn refused(client: &Client, id: &MessageId) -> StoreError {
    let exists = async {
        let stmt = client
            .prepare_cached("SELECT 1 FROM messages WHERE id = $1")
            .await?;
        client.query_opt(&stmt, &[&id.as_str()]).await
    }
    .await;
    match exists {
        Ok(Some(_)) => StoreError::Fenced,
        Ok(None) => StoreError::NotFound,
        Err(err) => err.into(),
    }
}

pub(super) async fn checkpoint(
    client: &Client,
    id: &MessageId,
    run: &str,
    content: &str,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE messages SET content = $1 \
             WHERE id = $2 AND run = $3 AND finish_reason IS NULL",
        )
        .await?;
    if client
        .execute(&stmt, &[&content, &id.as_str(), &run])
        .await?
        == 0
    {
        return Err(refused(client, id).await);
    }
    Ok(())
}

pub(super) async fn finish(
    client: &Client,
    id: &MessageId,
    run: &str,
    content: &str,
    finish_reason: FinishReason,
    usage: Option<Usage>,
) -> Result<(), StoreError> {
    let prompt = usage.map(|u| i64::from(u.prompt_tokens));
    let completion = usage.map(|u| i64::from(u.completion_tokens));
    // The message and its conversation's activity time in one statement.
    let stmt = client
        .prepare_cached(
            "WITH finished AS ( \
                 UPDATE messages SET content = $1, finish_reason = $2, prompt_tokens = $3, \
                 completion_tokens = $4 \
                 WHERE id = $5 AND run = $6 AND finish_reason IS NULL \
                 RETURNING conversation_id) \
             UPDATE conversations SET updated_at = $7 \
             WHERE id = (SELECT conversation_id FROM finished)",
        )
        .await?;
    let changed = client
        .execute(
            &stmt,
            &[
                &content,
                &finish_reason.as_str(),
                &prompt,
                &completion,
                &id.as_str(),
                &run,
                &now_rfc3339(),
            ],
        )
        .await?;
    if changed == 0 {
        // NotFound: the conversation was deleted while the reply streamed.
        return Err(refused(client, id).await);
    }
    Ok(())
}

pub(super) async fn reopen(
    client: &mut Client,
    id: &MessageId,
    was: FinishReason,
    run: &ReplyRun,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let find = tx
        .prepare_cached(
            "SELECT conversation_id FROM messages \
             WHERE id = $1 AND role = 'assistant' AND finish_reason = $2 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&find, &[&id.as_str(), &was.as_str()])
        .await?
        .ok_or(StoreError::NotFound)?;
    let conversation: &str = row.try_get(0)?;
    let close = tx.prepare_cached(CLOSE_OWN_LEFTOVER).await?;
    let open = tx
        .prepare_cached(
            "UPDATE messages SET finish_reason = NULL, owner = $1, run = $2 \
             WHERE id = $3 AND finish_reason = $4",
        )
        .await?;
    let (id, was) = (id.as_str(), was.as_str());
    let close_params: [&(dyn ToSql + Sync); 2] = [&conversation, &run.instance];
    let open_params: [&(dyn ToSql + Sync); 4] = [&run.instance, &run.token, &id, &was];
    futures::try_join!(
        tx.execute(&close, &close_params).map_err(StoreError::from),
        tx.execute(&open, &open_params).map_err(busy_or),
    )?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn heartbeat(client: &Client, instance: &str) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO instances (id, seen_at) VALUES ($1, now()) \
             ON CONFLICT (id) DO UPDATE SET seen_at = now()",
        )
        .await?;
    client.execute(&stmt, &[&instance]).await?;
    Ok(())
}

/// Unfinished replies whose instance was last seen longer than `stale_after`
/// ago by the database's clock, or never.
pub(super) async fn orphaned(
    client: &Client,
    stale_after: Duration,
) -> Result<Vec<OrphanedReply>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT m.conversation_id, m.id, COALESCE(m.run, ''), m.content \
             FROM messages m LEFT JOIN instances i ON i.id = m.owner \
             WHERE m.role = 'assistant' AND m.finish_reason IS NULL \
             AND (i.id IS NULL OR i.seen_at < now() - make_interval(secs => $1))",
        )
        .await?;
    let rows = client.query(&stmt, &[&stale_after.as_secs_f64()]).await?;
    rows.iter()
        .map(|row| {
            Ok(OrphanedReply {
                conversation_id: ConversationId(row.try_get(0)?),
                message_id: MessageId(row.try_get(1)?),
                run: row.try_get(2)?,
                content: row.try_get(3)?,
            })
        })
        .collect()
}

pub(super) async fn recover(
    client: &Client,
    id: &MessageId,
    run: &str,
    content: &str,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE messages SET content = $1, finish_reason = 'error', run = $2 \
             WHERE id = $3 AND COALESCE(run, '') = $4 AND finish_reason IS NULL",
        )
        .await?;
    let changed = client
        .execute(&stmt, &[&content, &new_id(), &id.as_str(), &run])
        .await?;
    Ok(changed == 1)
}

/// Two statements, not one: a statement sees the database as it was when
/// it began, so a value another caller committed while this insert waited
/// on it is only visible to the next one.
pub(super) async fn shared_setting(
    client: &Client,
    key: &str,
    proposed: &str,
) -> Result<String, StoreError> {
    let insert = client
        .prepare_cached("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .await?;
    client.execute(&insert, &[&key, &proposed]).await?;
    let select = client
        .prepare_cached("SELECT value FROM settings WHERE key = $1")
        .await?;
    Ok(client.query_one(&select, &[&key]).await?.try_get(0)?)
}
