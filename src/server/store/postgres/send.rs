//! Storing a user message: key, conversation, message, the reply's empty
//! message and the prompt's history, in one transaction.
//!
//! The idempotency key is claimed first (`INSERT … ON CONFLICT DO NOTHING`):
//! a concurrent send with the same key, on any connection or instance,
//! waits on that row until this transaction ends, then finds it taken and
//! answers `Duplicate` with what this one stored. After the ownership check
//! the statements go two at a time (pipelined: sent together, run in order).
//! A reply already running in the conversation fails the whole transaction
//! with `Busy`: nothing of the send is stored, not even its key.

use deadpool_postgres::{Client, Transaction};
use tokio_postgres::types::ToSql;

use super::{
    branches, replies,
    rows::{self, CONVERSATION_COLUMNS},
};
use crate::protocol::{ClientMsgId, ConversationId, Message, MessageId, Role, UserId};
use crate::server::store::{
    new_id, now_rfc3339, ConversationRecord, NewUserMessage, ReplyRun, SendOutcome, StoreError,
    Target,
};

/// Stores `msg`, or answers `Duplicate` when its key was taken before.
pub(super) async fn add_user_message(
    client: &mut Client,
    msg: NewUserMessage,
) -> Result<SendOutcome, StoreError> {
    let now = now_rfc3339();
    let conversation_id = match &msg.target {
        Target::Existing(id) => id.clone(),
        Target::New { .. } => ConversationId(new_id()),
    };
    let mut message = Message {
        id: MessageId(new_id()),
        role: Role::User,
        content: msg.text,
        created_at: now.clone(),
        finish_reason: None,
        alternatives: None,
        model: None,
    };
    let tx = client.transaction().await?;
    let claimed = claim_key(
        &tx,
        &msg.user_id,
        &msg.client_msg_id,
        &conversation_id,
        &message.id,
        &now,
    )
    .await?;
    if !claimed {
        tx.rollback().await?;
        let earlier = find_client_message(client, &msg.user_id, msg.client_msg_id.as_str()).await?;
        // Gone already: its conversation was deleted in between.
        let (conversation_id, message_id) = earlier.ok_or(StoreError::NotFound)?;
        return Ok(SendOutcome::Duplicate {
            conversation_id,
            message_id,
        });
    }
    let (conversation, greeting) =
        target_conversation(&tx, &msg.user_id, &msg.target, conversation_id, &now).await?;
    // An edit's message takes the place of the one it edits.
    let parent = match &msg.replaces {
        Some(edited) => Some(branches::set_aside(&tx, &conversation.id, edited, Role::User).await?),
        None => None,
    };
    let (history, reply) = add_messages(
        &tx,
        &conversation.id,
        (&mut message, parent.as_deref()),
        msg.history,
        &msg.run,
    )
    .await?;
    tx.commit().await?;
    Ok(SendOutcome::Stored {
        conversation,
        message,
        reply,
        history,
        greeting,
    })
}

/// Inserts a conversation row, and its user's row when missing (a user's
/// first conversation brings it: opening a socket or a page stores nothing).
pub(super) async fn insert_conversation(
    tx: &Transaction<'_>,
    record: &ConversationRecord,
) -> Result<(), StoreError> {
    let add_user = tx
        .prepare_cached("INSERT INTO users (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO conversations (id, user_id, title, persona, created_at, updated_at, model) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    tx.execute(&add_user, &[&record.user_id.as_str(), &record.created_at])
        .await?;
    tx.execute(
        &insert,
        &[
            &record.id.as_str(),
            &record.user_id.as_str(),
            &record.title,
            &record.persona,
            &record.created_at,
            &record.updated_at,
            &record.model,
        ],
    )
    .await?;
    Ok(())
}

/// Claims an idempotency key: `$1` user, `$2` key, `$3` conversation, `$4`
/// message, `$5` time; no row when it was taken before.
pub(super) const CLAIM_KEY: &str = "INSERT INTO client_messages \
     (user_id, client_msg_id, conversation_id, message_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// Claims idempotency key `client_msg_id` for `message` (`false`: it was
/// taken before; a concurrent claim waits for this transaction to end).
pub(super) async fn claim_key(
    tx: &Transaction<'_>,
    user: &UserId,
    client_msg_id: &ClientMsgId,
    conversation: &ConversationId,
    message: &MessageId,
    now: &str,
) -> Result<bool, StoreError> {
    let claim = tx.prepare_cached(CLAIM_KEY).await?;
    let claimed = tx
        .execute(
            &claim,
            &[
                &user.as_str(),
                &client_msg_id.as_str(),
                &conversation.as_str(),
                &message.as_str(),
                &now,
            ],
        )
        .await?;
    Ok(claimed == 1)
}

/// The conversation and message an earlier `client_msg_id` produced.
pub(super) async fn find_client_message(
    client: &Client,
    user: &UserId,
    client_msg_id: &str,
) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT conversation_id, message_id FROM client_messages \
             WHERE user_id = $1 AND client_msg_id = $2",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&user.as_str(), &client_msg_id])
        .await?;
    row.map(|row| Ok((ConversationId(row.try_get(0)?), MessageId(row.try_get(1)?))))
        .transpose()
}

/// The conversation a user message goes into: an existing one of the user
/// (touched; `NotFound` if it is not theirs), or a new one with id `id`
/// (with its greeting stored, returned too).
async fn target_conversation(
    tx: &Transaction<'_>,
    user: &UserId,
    target: &Target,
    id: ConversationId,
    now: &str,
) -> Result<(ConversationRecord, Option<Message>), StoreError> {
    let new = match target {
        Target::Existing(_) => {
            let touch = tx
                .prepare_cached(&format!(
                    "UPDATE conversations SET updated_at = $1 WHERE id = $2 AND user_id = $3 \
                     RETURNING {CONVERSATION_COLUMNS}"
                ))
                .await?;
            let row = tx
                .query_opt(&touch, &[&now, &id.as_str(), &user.as_str()])
                .await?
                .ok_or(StoreError::NotFound)?;
            return Ok((rows::conversation(&row)?, None));
        }
        Target::New {
            persona,
            title,
            greeting,
            model,
        } => (persona, title, greeting, model),
    };
    let (persona, title, greeting, model) = new;
    let record = ConversationRecord {
        id,
        user_id: user.clone(),
        title: title.clone(),
        persona: persona.clone(),
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
        model: Some(model.clone()),
    };
    insert_conversation(tx, &record).await?;
    let greeting = match greeting {
        Some(text) => {
            let message = crate::server::store::greeting_message(text, now);
            tx.execute(
                "INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, parent_id) \
                 VALUES ($1, $2, 'assistant', $3, 'stop', $4, $2)",
                &[
                    &message.id.as_str(),
                    &record.id.as_str(),
                    &message.content,
                    &message.created_at,
                ],
            )
            .await?;
            Some(message)
        }
        None => None,
    };
    Ok((record, greeting))
}

/// Inserts the user message (after `parent`, else after the last message
/// shown) and reads the history (it included) in one round trip, then
/// inserts the reply's empty message for `run`.
async fn add_messages(
    tx: &Transaction<'_>,
    conversation: &ConversationId,
    (message, parent): (&mut Message, Option<&str>),
    history: usize,
    run: &ReplyRun,
) -> Result<(Vec<Message>, Message), StoreError> {
    if let Some(parent) = parent {
        // An edit: its message is inserted alone, then the path is redrawn.
        insert_user(tx, conversation, message, Some(parent)).await?;
        branches::refresh_path(tx, conversation).await?;
        message.alternatives = branches::alternatives_of(tx, parent, &message.id).await?;
        let recent = tx.prepare_cached(RECENT_MESSAGES).await?;
        let limit = i64::try_from(history).unwrap_or(i64::MAX);
        let newest_first = tx.query(&recent, &[&conversation.as_str(), &limit]).await?;
        let mut history = rows::messages(&newest_first)?;
        history.reverse();
        let reply = replies::insert_assistant(tx, conversation, run, Some(&message.id)).await?;
        return Ok((history, reply));
    }
    let insert = tx.prepare_cached(INSERT_USER).await?;
    let recent = tx.prepare_cached(RECENT_MESSAGES).await?;
    let limit = i64::try_from(history).unwrap_or(i64::MAX);
    let (id, id_of_conversation) = (message.id.as_str(), conversation.as_str());
    let no_parent: Option<&str> = None;
    let user_params: [&(dyn ToSql + Sync); 5] = [
        &id,
        &id_of_conversation,
        &message.content,
        &message.created_at,
        &no_parent,
    ];
    let recent_params: [&(dyn ToSql + Sync); 2] = [&id_of_conversation, &limit];
    let (_, newest_first) = futures::try_join!(
        tx.execute(&insert, &user_params),
        tx.query(&recent, &recent_params),
    )?;
    let mut history = rows::messages(&newest_first)?;
    history.reverse();
    let reply = replies::insert_assistant(tx, conversation, run, Some(&message.id)).await?;
    Ok((history, reply))
}

/// Inserts a user message `$1` into conversation `$2` with text `$3` at
/// `$4`, after message `$5` (`NULL`: after the last message shown, or
/// first).
const INSERT_USER: &str = "INSERT INTO messages (id, conversation_id, role, content, created_at, parent_id) \
     VALUES ($1, $2, 'user', $3, $4, COALESCE($5::text, \
         (SELECT id FROM messages WHERE conversation_id = $2 AND active ORDER BY seq DESC LIMIT 1), $2))";

async fn insert_user(
    tx: &Transaction<'_>,
    conversation: &ConversationId,
    message: &Message,
    parent: Option<&str>,
) -> Result<(), StoreError> {
    let insert = tx.prepare_cached(INSERT_USER).await?;
    tx.execute(
        &insert,
        &[
            &message.id.as_str(),
            &conversation.as_str(),
            &message.content,
            &message.created_at,
            &parent,
        ],
    )
    .await?;
    Ok(())
}

/// The newest `$2` messages with text of the path shown, newest first.
const RECENT_MESSAGES: &str = "SELECT id, role, content, finish_reason, created_at, model \
     FROM messages WHERE conversation_id = $1 AND active AND content <> '' ORDER BY seq DESC LIMIT $2";

/// The empty assistant message a reply streams into, before it is inserted.
pub(super) fn new_reply() -> Message {
    Message {
        id: MessageId(new_id()),
        role: Role::Assistant,
        content: String::new(),
        created_at: now_rfc3339(),
        finish_reason: None,
        alternatives: None,
        model: None,
    }
}
