//! Long conversations: a `snapshot` carries only the newest messages (the
//! window, `HISTORY_WINDOW`), and older ones come a page at a time
//! (`history` → `history_page`, `HISTORY_PAGE_MAX` at most).
//!
//! The window never holds the reply in progress: that travels in the
//! snapshot's `streaming`, exactly as before, so resume, lag resync and
//! `Last-Event-ID` are untouched. Pages are read by a keyset query on the
//! conversation's index ([`Store::messages_before`](super::Store)): the
//! cursor is a message id, answering the same page however often it is
//! asked. Only the owner's conversations are paged (`not_found` otherwise).

use super::{ChatError, ChatService};
use crate::protocol::{ConversationId, Message, MessageId, ServerFrame, StreamingMessage, UserId};

/// The newest stored messages of a conversation, oldest first, and whether
/// older ones exist.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Window {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

impl Window {
    /// The newest `size` of `messages` (oldest first), as a window.
    pub fn of(mut messages: Vec<Message>, size: usize) -> Self {
        let older = messages.len().saturating_sub(size);
        Self {
            has_more: older > 0,
            messages: messages.split_off(older),
        }
    }
}

impl ChatService {
    /// The window of a snapshot: the newest `HISTORY_WINDOW` stored
    /// messages, without the reply in progress (it is `streaming`).
    pub(super) async fn window(
        &self,
        conversation_id: &ConversationId,
        streaming: Option<&StreamingMessage>,
    ) -> Result<Window, ChatError> {
        let size = self.config.limits.history_window;
        // One more than the window, since the reply in progress may be
        // among the newest rows and is left out.
        let page = self
            .store
            .messages_before(conversation_id, None, size + 1)
            .await?
            .unwrap_or_default();
        let mut messages = page.messages;
        if let Some(s) = streaming {
            messages.retain(|m| m.id != s.message.id);
        }
        let window = Window::of(messages, size);
        Ok(Window {
            has_more: window.has_more || page.has_more,
            messages: window.messages,
        })
    }

    /// `history`: the owner's stored messages before `before` (the newest
    /// without it), at most `limit` (default `HISTORY_WINDOW`, capped at
    /// `HISTORY_PAGE_MAX`), as a `history_page`. A cursor that is not a
    /// message of the conversation, or a `limit` of 0, is `bad_request`.
    pub async fn history_page(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> Result<ServerFrame, ChatError> {
        let limits = &self.config.limits;
        let limit = match limit {
            Some(0) => {
                return Err(ChatError::BadRequest(
                    "limit must be at least 1 message".into(),
                ))
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => limits.history_window,
        }
        .min(limits.history_page_max);
        self.owned(user, conversation_id).await?;
        let page = self
            .store
            .messages_before(conversation_id, before.as_ref(), limit)
            .await?
            .ok_or_else(|| {
                ChatError::BadRequest(format!(
                    "unknown cursor: {} is not a message of this conversation",
                    before.as_ref().map(MessageId::as_str).unwrap_or_default()
                ))
            })?;
        tracing::debug!(
            conversation_id = %conversation_id,
            limit,
            returned = page.messages.len(),
            has_more = page.has_more,
            "history page"
        );
        Ok(ServerFrame::HistoryPage {
            conversation_id: conversation_id.clone(),
            before,
            messages: page.messages,
            has_more: page.has_more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn message(n: usize) -> Message {
        Message {
            id: format!("m{n}").as_str().into(),
            role: Role::User,
            content: String::new(),
            created_at: String::new(),
            finish_reason: None,
            alternatives: None,
            model: None,
        }
    }

    #[test]
    fn a_window_keeps_the_newest_and_says_whether_there_is_more() {
        let all: Vec<Message> = (0..5).map(message).collect();
        let window = Window::of(all.clone(), 2);
        assert_eq!(window.messages, all[3..]);
        assert!(window.has_more);
        let whole = Window::of(all.clone(), 5);
        assert_eq!(whole.messages, all);
        assert!(!whole.has_more);
        assert_eq!(Window::of(Vec::new(), 3), Window::default());
    }
}
