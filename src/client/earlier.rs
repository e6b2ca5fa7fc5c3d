//! Earlier messages of a long conversation, as the view loads them.
//!
//! A `snapshot` carries the newest messages only (the server's window) and
//! says whether older ones exist (`has_more`). The view asks for the page
//! before its first message ([`ChatView::earlier_cursor`]) and prepends the
//! `history_page` that answers it. A page is applied only when it answers
//! the view's first message as it is now, so a late or repeated page never
//! duplicates or misplaces a message. A later snapshot (a reconnect, a lag
//! resync, a regenerate) keeps the earlier pages already shown when its
//! window joins them, so the person's place in a long history survives it.

use super::state::{ChatView, ViewMessage};
use crate::protocol::{Message, MessageId};

/// Messages older than a snapshot's window that the view keeps, and whether
/// older ones than those exist.
pub(super) type Kept = Option<(Vec<ViewMessage>, bool)>;

impl ChatView {
    /// The cursor of the next page to ask for: the first message's id, when
    /// older ones exist and no page is on its way.
    pub fn earlier_cursor(&self) -> Option<MessageId> {
        if !self.has_more || self.loading_earlier {
            return None;
        }
        self.messages
            .first()
            .filter(|m| !m.pending)
            .map(|m| m.message.id.clone())
    }

    /// A page was asked for: no other until it arrives.
    pub fn mark_loading_earlier(&mut self) {
        self.loading_earlier = true;
    }

    /// The messages shown before `window`'s first message, if the view
    /// holds that message (the view shows the same conversation, further back).
    pub(super) fn older_than(&self, window: &[Message]) -> Kept {
        let first = &window.first()?.id;
        let at = self
            .messages
            .iter()
            .position(|m| !m.pending && m.message.id == *first)?;
        (at > 0).then(|| {
            let older = self.messages[..at]
                .iter()
                .filter(|m| !m.pending && !m.streaming)
                .cloned()
                .collect();
            (older, self.has_more)
        })
    }

    /// After a snapshot: put back the older messages kept, or take the
    /// snapshot's word on whether older ones exist.
    pub(super) fn keep_older(&mut self, kept: Kept, snapshot_has_more: bool) {
        self.loading_earlier = false;
        match kept {
            Some((older, has_more)) => {
                self.messages.splice(0..0, older);
                self.has_more = has_more;
            }
            None => self.has_more = snapshot_has_more,
        }
    }

    /// A page of older messages: prepended when it answers the first
    /// message shown now, else dropped.
    pub(super) fn apply_history_page(
        &mut self,
        before: Option<&MessageId>,
        page: &[Message],
        has_more: bool,
    ) {
        let first = self.messages.first().map(|m| &m.message.id);
        if before.is_none() || first != before {
            return;
        }
        let older: Vec<ViewMessage> = page
            .iter()
            .filter(|m| !self.messages.iter().any(|v| v.message.id == m.id))
            .cloned()
            .map(ViewMessage::stored)
            .collect();
        self.messages.splice(0..0, older);
        self.has_more = has_more;
        self.loading_earlier = false;
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        client::state::ChatView,
        protocol::{Message, MessageId, Role, ServerFrame},
    };

    fn message(n: usize) -> Message {
        Message {
            id: MessageId(format!("m{n}")),
            role: if n.is_multiple_of(2) {
                Role::User
            } else {
                Role::Assistant
            },
            content: format!("text {n}"),
            created_at: String::new(),
            finish_reason: None,
            alternatives: None,
            model: None,
        }
    }

    fn snapshot(range: std::ops::Range<usize>, has_more: bool) -> ServerFrame {
        ServerFrame::Snapshot {
            conversation_id: "c".into(),
            messages: range.map(message).collect(),
            streaming: None,
            has_more,
        }
    }

    fn page(before: usize, range: std::ops::Range<usize>, has_more: bool) -> ServerFrame {
        ServerFrame::HistoryPage {
            conversation_id: "c".into(),
            before: Some(MessageId(format!("m{before}"))),
            messages: range.map(message).collect(),
            has_more,
        }
    }

    fn ids(view: &ChatView) -> Vec<String> {
        view.messages
            .iter()
            .map(|m| m.message.id.to_string())
            .collect()
    }

    fn expected(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| format!("m{n}")).collect()
    }

    #[test]
    fn pages_are_prepended_back_to_the_first_message() {
        let mut view = ChatView::default();
        view.apply(&snapshot(6..10, true));
        assert_eq!(view.earlier_cursor(), Some("m6".into()));
        view.mark_loading_earlier();
        assert_eq!(view.earlier_cursor(), None, "one page at a time");
        view.apply(&page(6, 2..6, true));
        assert_eq!(ids(&view), expected(2..10));
        assert_eq!(view.earlier_cursor(), Some("m2".into()));
        view.mark_loading_earlier();
        view.apply(&page(2, 0..2, false));
        assert_eq!(ids(&view), expected(0..10));
        assert_eq!(view.earlier_cursor(), None, "the start is reached");
        assert!(!view.loading_earlier);
    }

    #[test]
    fn a_late_or_repeated_page_changes_nothing() {
        let mut view = ChatView::default();
        view.apply(&snapshot(6..10, true));
        view.mark_loading_earlier();
        view.apply(&page(6, 2..6, true));
        view.apply(&page(6, 2..6, true));
        assert_eq!(ids(&view), expected(2..10), "the same page twice");
        view.apply(&page(9, 0..2, false));
        assert_eq!(ids(&view), expected(2..10), "a page for another place");
        assert!(view.has_more);
    }

    #[test]
    fn a_resync_snapshot_keeps_the_earlier_pages_shown() {
        let mut view = ChatView::default();
        view.apply(&snapshot(6..10, true));
        view.mark_loading_earlier();
        view.apply(&page(6, 2..6, true));
        // Reconnected: the window moved on by two messages.
        view.apply(&snapshot(8..12, true));
        assert_eq!(ids(&view), expected(2..12));
        assert_eq!(view.earlier_cursor(), Some("m2".into()));
        // A snapshot that does not join them (the window moved far on) replaces them.
        view.apply(&snapshot(20..24, true));
        assert_eq!(ids(&view), expected(20..24));
        assert_eq!(view.earlier_cursor(), Some("m20".into()));
    }

    #[test]
    fn an_old_server_snapshot_has_nothing_earlier() {
        let mut view = ChatView::default();
        view.apply(&snapshot(0..3, false));
        assert_eq!(view.earlier_cursor(), None);
    }
}
