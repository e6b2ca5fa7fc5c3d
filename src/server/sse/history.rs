//! `GET /api/conversations/{id}/messages?before=&limit=`: a page of older
//! messages for clients of the HTTP transport, the `history` frame a socket
//! sends. The answer is the `history_page` frame as JSON, and refusals are
//! the socket's `error` frames with their statuses: `404` for a conversation
//! that is not the caller's, `400` for a bad `limit` or an unknown cursor.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    response::Response,
};

use super::{handle, Received};
use crate::{
    protocol::{ClientFrame, ConversationId, MessageId},
    server::{
        access::{address::ClientAddr, Reader},
        chat::ChatError,
        error::ApiError,
        state::AppState,
    },
};

/// The page handler; the query's `before` is a message id, `limit` a count.
pub async fn messages(
    Received(received): Received,
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Reader(user): Reader,
    Path(conversation_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let conversation_id = ConversationId::from(conversation_id);
    let frame = page_frame(conversation_id.clone(), &query)
        .map_err(|err| err.refusing(None, Some(conversation_id)))?;
    handle(&state, (user, addr), frame, None, received, None).await
}

/// The `history` frame the query asks for.
fn page_frame(
    conversation_id: ConversationId,
    query: &HashMap<String, String>,
) -> Result<ClientFrame, ChatError> {
    let limit = match query.get("limit").map(|l| l.trim()) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            ChatError::BadRequest(format!(
                "limit must be a whole number of messages, not {text:?}"
            ))
        })?),
    };
    let before = query
        .get("before")
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .map(MessageId::from);
    Ok(ClientFrame::History {
        conversation_id,
        before,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_query_becomes_a_history_frame() {
        let frame = page_frame("c".into(), &query(&[("before", "m7"), ("limit", "20")]));
        assert_eq!(
            frame.expect("valid"),
            ClientFrame::History {
                conversation_id: "c".into(),
                before: Some("m7".into()),
                limit: Some(20),
            }
        );
        let newest = page_frame("c".into(), &query(&[("before", ""), ("limit", "")]));
        assert_eq!(
            newest.expect("valid"),
            ClientFrame::History {
                conversation_id: "c".into(),
                before: None,
                limit: None,
            }
        );
    }

    #[test]
    fn a_limit_that_is_not_a_count_is_a_bad_request() {
        for bad in ["ten", "-1", "1.5", "99999999999"] {
            let err = page_frame("c".into(), &query(&[("limit", bad)])).expect_err(bad);
            assert!(matches!(err, ChatError::BadRequest(_)), "{bad}: {err:?}");
        }
    }
}
