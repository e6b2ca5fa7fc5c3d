//! Pages of a long conversation ([`Store::messages_before`](super::Store::messages_before)):
//! a keyset read on `messages_by_conversation (conversation_id, seq)`, so a
//! page costs the same at the start of a conversation of 5,000 messages as
//! at its end. The cursor is a message id, resolved to its `seq` through
//! the unique index on `id`, and only within the conversation asked for.

use rusqlite::{Connection, OptionalExtension};

use super::branches::{view_from_row, VIEW_COLUMNS};
use crate::protocol::{ConversationId, Message, MessageId};
use crate::server::store::{MessagePage, StoreError};

/// The newest `limit` messages before `before` (`None`: of all), oldest
/// first; `None` when `before` is not a message of `conversation`.
pub(super) fn messages_before(
    conn: &Connection,
    conversation: &ConversationId,
    before: Option<&MessageId>,
    limit: usize,
) -> Result<Option<MessagePage>, StoreError> {
    let below = match before {
        None => i64::MAX,
        Some(id) => {
            let seq: Option<i64> = conn
                .prepare_cached(
                    "SELECT seq FROM messages WHERE id = ? AND conversation_id = ? AND active = 1",
                )?
                .query_row([id.as_str(), conversation.as_str()], |row| row.get(0))
                .optional()?;
            match seq {
                Some(seq) => seq,
                None => return Ok(None),
            }
        }
    };
    // One row more than asked: it only says that older ones exist.
    let rows = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let newest_first: Vec<Message> = conn
        .prepare_cached(&page_sql())?
        .query_map(
            rusqlite::params![conversation.as_str(), below, rows],
            view_from_row,
        )?
        .collect::<Result<_, _>>()?;
    Ok(Some(MessagePage::from_newest_first(newest_first, limit)))
}

/// The newest `?3` messages of the path shown of conversation `?1` below `seq` `?2`.
fn page_sql() -> String {
    format!(
        "SELECT {VIEW_COLUMNS} FROM messages m \
         WHERE m.conversation_id = ? AND m.active = 1 AND m.seq < ? ORDER BY m.seq DESC LIMIT ?"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page query reads the conversation's index, never the whole table.
    #[test]
    fn the_page_query_is_a_keyset_read_on_the_conversation_index() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        super::super::schema::migrate(&mut conn).expect("schema");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", page_sql()))
            .expect("plan")
            .query_map(rusqlite::params!["c", 10, 5], |row| row.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        let plan = plan.join(" | ");
        assert!(
            plan.contains("USING INDEX messages_by_conversation")
                || plan.contains("USING COVERING INDEX messages_by_conversation"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        // The alternatives are two lookups on the parent index, not scans.
        assert!(plan.contains("messages_by_parent"), "{plan}");
        assert!(!plan.contains("SCAN"), "no scan: {plan}");
    }
}
