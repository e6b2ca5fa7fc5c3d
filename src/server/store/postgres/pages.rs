//! Pages of a long conversation ([`Store::messages_before`](super::Store::messages_before)),
//! as SQLite's store reads them: a keyset read on
//! `messages_by_conversation (conversation_id, seq)`, the cursor (a message
//! id) resolved to its `seq` within the conversation asked for.

use deadpool_postgres::Client;

use super::{branches::VIEW_COLUMNS, rows};
use crate::protocol::{ConversationId, MessageId};
use crate::server::store::{MessagePage, StoreError};

/// The newest `limit` messages before `before` (`None`: of all), oldest
/// first; `None` when `before` is not a message of `conversation`.
pub(super) async fn messages_before(
    client: &Client,
    conversation: &ConversationId,
    before: Option<&MessageId>,
    limit: usize,
) -> Result<Option<MessagePage>, StoreError> {
    let below = match before {
        None => i64::MAX,
        Some(id) => {
            let stmt = client
                .prepare_cached(
                    "SELECT seq FROM messages WHERE id = $1 AND conversation_id = $2 AND active",
                )
                .await?;
            match client
                .query_opt(&stmt, &[&id.as_str(), &conversation.as_str()])
                .await?
            {
                Some(row) => row.try_get::<_, i64>(0)?,
                None => return Ok(None),
            }
        }
    };
    // One row more than asked: it only says that older ones exist.
    let rows = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM messages m \
         WHERE m.conversation_id = $1 AND m.active AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let found = client
        .query(&stmt, &[&conversation.as_str(), &below, &rows])
        .await?;
    Ok(Some(MessagePage::from_newest_first(
        rows::views(&found)?,
        limit,
    )))
}
