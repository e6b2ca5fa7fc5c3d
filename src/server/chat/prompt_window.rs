//! The prompt window of a live conversation: its newest non-empty messages,
//! kept in memory so that a `send` builds its prompt without reading them
//! back from the store.
//!
//! It holds exactly what the store's history read would return (the newest
//! `HISTORY_MESSAGES` messages with text, oldest first): it is filled from
//! that read, then grows by the user messages sent and the replies finished
//! in the conversation while it stays live. Anything else that changes the
//! conversation's messages (`regenerate`, `continue`, a reply whose final
//! text could not be stored) forgets it, and the next `send` reads the
//! store again. It lives in the hub's [`LiveConversation`], under the lock
//! that frees the reply slot, so a `send` that follows a `done` always finds
//! that reply in it. With a relay (several instances) it is never used:
//! another instance may add messages this one does not see.
//!
//! [`LiveConversation`]: super::hub::LiveConversation

use std::collections::VecDeque;

use crate::protocol::Message;

/// The newest messages with text of one conversation, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptWindow {
    messages: VecDeque<Message>,
    cap: usize,
}

impl PromptWindow {
    /// The window of `history`, the store's newest `cap` messages with
    /// text, oldest first.
    pub fn new(history: &[Message], cap: usize) -> Self {
        let mut window = Self {
            messages: VecDeque::with_capacity(cap.min(history.len() + 2)),
            cap,
        };
        for message in history {
            window.push(message.clone());
        }
        window
    }

    /// A message stored after the ones in the window; one without text is
    /// left out (as the store's read leaves it out), the oldest goes when
    /// the window is full.
    pub fn push(&mut self, message: Message) {
        if message.content.is_empty() || self.cap == 0 {
            return;
        }
        if self.messages.len() == self.cap {
            self.messages.pop_front();
        }
        self.messages.push_back(message);
    }

    /// The messages, oldest first.
    pub fn to_vec(&self) -> Vec<Message> {
        self.messages.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MessageId, Role};

    fn msg(id: &str, content: &str) -> Message {
        Message {
            id: MessageId(id.into()),
            role: Role::User,
            content: content.into(),
            created_at: String::new(),
            finish_reason: None,
            alternatives: None,
            model: None,
        }
    }

    fn ids(window: &PromptWindow) -> Vec<String> {
        window.to_vec().into_iter().map(|m| m.id.0).collect()
    }

    #[test]
    fn keeps_the_newest_messages_with_text_like_the_store_read() {
        let mut window = PromptWindow::new(&[msg("a", "1"), msg("b", "2")], 3);
        window.push(msg("c", ""));
        window.push(msg("d", "4"));
        assert_eq!(ids(&window), ["a", "b", "d"], "an empty reply is left out");
        window.push(msg("e", "5"));
        assert_eq!(ids(&window), ["b", "d", "e"], "the oldest goes when full");
    }

    #[test]
    fn a_history_longer_than_the_window_keeps_its_newest() {
        let window = PromptWindow::new(&[msg("a", "1"), msg("b", "2"), msg("c", "3")], 2);
        assert_eq!(ids(&window), ["b", "c"]);
    }
}
