//! The client's view of one conversation, and how server frames change it.
//!
//! Pure data and logic, compiled on both sides so it is unit-tested natively.
//! The rule that makes streaming exact: a `delta` is applied only when its
//! `index` is the one expected; a `snapshot` replaces everything and sets the
//! expected index to its `next_index`. Messages are keyed by id, so seeing the
//! same message twice (snapshot and event) never duplicates it.
//!
//! [`ChatView::apply`] only drops frames of other conversations and hands each
//! frame kind to its own method (`apply_accepted`, `apply_snapshot`, …).

use crate::protocol::{
    ClientMsgId, ConversationId, ErrorCode, FinishReason, Message, MessageId, Role, ServerFrame,
    StreamingMessage,
};

/// Numbers shown under a finished reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplyStats {
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub completion_tokens: Option<u32>,
}

/// A message as displayed.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewMessage {
    pub message: Message,
    /// `true` while the assistant is still writing it.
    pub streaming: bool,
    pub stats: Option<ReplyStats>,
    /// Not yet accepted by the server (shown dimmed).
    pub pending: bool,
}

impl ViewMessage {
    /// A message as the server stored it.
    pub fn stored(message: Message) -> Self {
        Self {
            message,
            streaming: false,
            stats: None,
            pending: false,
        }
    }

    /// The reply the assistant is still writing.
    fn streaming(message: Message) -> Self {
        Self {
            streaming: true,
            ..Self::stored(message)
        }
    }
}

/// What "Retry" does for a notice.
#[derive(Clone, Debug, PartialEq)]
pub enum Retry {
    /// Send this text again (the refused message, as the user wrote it).
    Resend(String),
    /// Ask for the last reply again.
    Regenerate,
}

/// A refusal or failure shown to the user.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub code: ErrorCode,
    pub text: String,
    pub client_msg_id: Option<ClientMsgId>,
    /// `None` when trying again cannot help (bad input, not found, …).
    pub retry: Option<Retry>,
}

/// The id a message has while it waits for the server's `accepted`.
fn pending_id(client_msg_id: &ClientMsgId) -> MessageId {
    MessageId(format!("pending:{client_msg_id}"))
}

/// The id a new conversation's greeting has until the server stores it.
const PENDING_GREETING: &str = "pending:greeting";

/// Whether trying the same thing again later can succeed.
fn transient(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::RateLimited
            | ErrorCode::Busy
            | ErrorCode::UpstreamError
            | ErrorCode::UpstreamTimeout
            | ErrorCode::Internal
            | ErrorCode::Unavailable
    )
}

/// The conversation being shown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatView {
    pub conversation_id: Option<ConversationId>,
    pub messages: Vec<ViewMessage>,
    /// The streaming message and the next `delta.index` expected for it.
    pub expected: Option<(MessageId, u64)>,
    pub notice: Option<Notice>,
    /// A refused message's text, for the composer to take back.
    pub returned_draft: Option<String>,
    /// Older messages exist than the first one shown (`client::earlier`).
    pub has_more: bool,
    /// A page of older messages was asked for and has not arrived yet.
    pub loading_earlier: bool,
}

impl ChatView {
    /// Whether a reply is being written.
    pub fn is_streaming(&self) -> bool {
        self.expected.is_some()
    }

    /// Shows a message the user just sent, before the server accepts it.
    pub fn add_pending(&mut self, client_msg_id: &ClientMsgId, text: &str, now: String) {
        self.messages.push(ViewMessage {
            message: Message {
                id: pending_id(client_msg_id),
                role: Role::User,
                content: text.to_owned(),
                created_at: now,
                finish_reason: None,
                alternatives: None,
                model: None,
            },
            streaming: false,
            stats: None,
            pending: true,
        });
    }

    /// Shows a new conversation's greeting (a companion's first message)
    /// before the user's first message, until the server's copy arrives.
    pub fn add_pending_greeting(&mut self, text: &str, now: String) {
        self.messages.push(ViewMessage {
            message: Message {
                id: MessageId(PENDING_GREETING.into()),
                role: Role::Assistant,
                content: text.to_owned(),
                created_at: now,
                finish_reason: Some(FinishReason::Stop),
                alternatives: None,
                model: None,
            },
            streaming: false,
            stats: None,
            pending: true,
        });
    }

    /// Applies one server frame. Frames of other conversations are ignored.
    pub fn apply(&mut self, frame: &ServerFrame) {
        if self.is_elsewhere(frame) {
            return;
        }
        match frame {
            ServerFrame::Accepted {
                client_msg_id,
                conversation_id,
                message_id,
                ..
            } => self.apply_accepted(client_msg_id, conversation_id, message_id),
            ServerFrame::Snapshot {
                conversation_id,
                messages,
                streaming,
                has_more,
            } => {
                let kept = self.older_than(messages);
                self.apply_snapshot(conversation_id, messages, streaming.as_ref());
                self.keep_older(kept, *has_more);
            }
            ServerFrame::HistoryPage {
                before,
                messages,
                has_more,
                ..
            } => self.apply_history_page(before.as_ref(), messages, *has_more),
            ServerFrame::Message { message, .. } => self.apply_message(message.clone()),
            ServerFrame::Delta {
                message_id,
                index,
                text,
                ..
            } => self.apply_delta(message_id, *index, text),
            ServerFrame::Done {
                message_id,
                finish_reason,
                usage,
                ttft_ms,
                total_ms,
                model,
                ..
            } => self.apply_done(
                message_id,
                (*finish_reason, model.as_deref()),
                ReplyStats {
                    ttft_ms: *ttft_ms,
                    total_ms: *total_ms,
                    completion_tokens: usage.map(|u| u.completion_tokens),
                },
            ),
            ServerFrame::Error {
                code,
                message,
                client_msg_id,
                ..
            } => {
                // A refused page (a cursor gone with its message) may be asked again.
                self.loading_earlier = false;
                self.apply_error(*code, message, client_msg_id.as_ref());
            }
            ServerFrame::Hello { .. }
            | ServerFrame::Pong { .. }
            | ServerFrame::Conversations { .. }
            | ServerFrame::Changed { .. } => {}
        }
    }

    /// Whether `frame` belongs to another conversation than the one shown
    /// (an `accepted` always concerns this view: it may be the one it started).
    fn is_elsewhere(&self, frame: &ServerFrame) -> bool {
        match (&self.conversation_id, frame.conversation_id()) {
            (Some(mine), Some(theirs)) => {
                mine != theirs && !matches!(frame, ServerFrame::Accepted { .. })
            }
            _ => false,
        }
    }

    /// The server stored a message this view shows as pending: it takes the
    /// stored id (or goes, if the stored message is already shown).
    fn apply_accepted(
        &mut self,
        client_msg_id: &ClientMsgId,
        conversation_id: &ConversationId,
        message_id: &MessageId,
    ) {
        let pending_id = pending_id(client_msg_id);
        let Some(pos) = self
            .messages
            .iter()
            .position(|m| m.message.id == pending_id)
        else {
            return;
        };
        if self.conversation_id.is_none() {
            self.conversation_id = Some(conversation_id.clone());
        }
        if self.messages.iter().any(|m| m.message.id == *message_id) {
            self.messages.remove(pos);
        } else {
            let m = &mut self.messages[pos];
            m.message.id = message_id.clone();
            m.pending = false;
        }
    }

    /// Replaces the conversation (keeping messages not yet accepted) and
    /// expects the streaming reply's deltas from its `next_index`.
    fn apply_snapshot(
        &mut self,
        conversation_id: &ConversationId,
        messages: &[Message],
        streaming: Option<&StreamingMessage>,
    ) {
        let pending: Vec<ViewMessage> = self
            .messages
            .iter()
            .filter(|m| m.pending)
            .cloned()
            .collect();
        self.conversation_id = Some(conversation_id.clone());
        self.messages = messages.iter().cloned().map(ViewMessage::stored).collect();
        self.messages.extend(pending);
        self.expected = None;
        if let Some(s) = streaming {
            self.messages
                .push(ViewMessage::streaming(s.message.clone()));
            self.expected = Some((s.message.id.clone(), s.next_index));
        }
    }

    /// A complete message: replaces the one with its id, else is added.
    fn apply_message(&mut self, message: Message) {
        if let Some(m) = self.find_mut(&message.id) {
            m.message = message;
            return;
        }
        // The stored greeting takes the place of the one shown while sending.
        let greeting = self.messages.iter_mut().find(|m| {
            m.message.id.as_str() == PENDING_GREETING && m.message.content == message.content
        });
        match greeting {
            Some(m) => *m = ViewMessage::stored(message),
            None => self.messages.push(ViewMessage::stored(message)),
        }
    }

    /// One piece of a reply, applied only at the index expected next.
    fn apply_delta(&mut self, message_id: &MessageId, index: u64, text: &str) {
        match &mut self.expected {
            Some((id, next)) if id == message_id => {
                if index != *next {
                    return; // a repeat (index < next) or a gap: a snapshot will follow
                }
                *next += 1;
            }
            _ => {
                // The first delta of a reply this view has not seen start.
                if index != 0 {
                    return;
                }
                self.expected = Some((message_id.clone(), 1));
            }
        }
        match self.find_mut(message_id) {
            Some(m) => m.message.content.push_str(text),
            None => self.messages.push(ViewMessage::streaming(Message {
                id: message_id.clone(),
                role: Role::Assistant,
                content: text.to_owned(),
                created_at: String::new(),
                finish_reason: None,
                alternatives: None,
                model: None,
            })),
        }
    }

    /// A reply is complete: it stops streaming and shows its numbers.
    fn apply_done(
        &mut self,
        message_id: &MessageId,
        (finish_reason, model): (FinishReason, Option<&str>),
        stats: ReplyStats,
    ) {
        if let Some(m) = self.find_mut(message_id) {
            m.streaming = false;
            m.message.finish_reason = Some(finish_reason);
            if let Some(model) = model {
                m.message.model = Some(model.to_owned());
            }
            m.stats = Some(stats);
        }
        if self
            .expected
            .as_ref()
            .is_some_and(|(id, _)| id == message_id)
        {
            self.expected = None;
        }
    }

    /// A refusal or failure: the refused pending message leaves the list and
    /// the notice says why, with what "Retry" can do about it.
    fn apply_error(&mut self, code: ErrorCode, message: &str, client_msg_id: Option<&ClientMsgId>) {
        let refused_text = client_msg_id.and_then(|id| self.take_pending(id));
        let retry = match refused_text {
            Some(text) if transient(code) => Some(Retry::Resend(text)),
            // A refused message that cannot simply be resent goes back
            // to the composer to be edited, not into the void.
            Some(text) => {
                self.returned_draft = Some(text);
                None
            }
            None if transient(code) && code != ErrorCode::Busy => Some(Retry::Regenerate),
            None => None,
        };
        self.notice = Some(Notice {
            code,
            text: message.to_owned(),
            client_msg_id: client_msg_id.cloned(),
            retry,
        });
    }

    /// Removes the pending message sent as `client_msg_id`; its text.
    fn take_pending(&mut self, client_msg_id: &ClientMsgId) -> Option<String> {
        let pending_id = pending_id(client_msg_id);
        let pos = self
            .messages
            .iter()
            .position(|m| m.pending && m.message.id == pending_id)?;
        let text = self.messages.remove(pos).message.content;
        // A refused first message takes the greeting shown before it along.
        self.messages
            .retain(|m| m.message.id.as_str() != PENDING_GREETING);
        Some(text)
    }

    fn find_mut(&mut self, id: &MessageId) -> Option<&mut ViewMessage> {
        self.messages.iter_mut().find(|m| m.message.id == *id)
    }

    /// How the last reply ended, when it can be continued: it is the
    /// conversation's last message, it has text, nothing streams, and it
    /// ended early (`error`, `length` or `stopped`). The same rule as the
    /// server's for `continue`.
    pub fn continuable(&self) -> Option<FinishReason> {
        let last = self
            .messages
            .last()
            .filter(|m| !m.pending && !m.streaming)?;
        let reason = last.message.finish_reason?;
        let early = matches!(
            reason,
            FinishReason::Error | FinishReason::Length | FinishReason::Stopped
        );
        (early
            && !self.is_streaming()
            && last.message.role == Role::Assistant
            && !last.message.content.is_empty())
        .then_some(reason)
    }

    /// The stopped/error state of the last reply, for the UI.
    pub fn last_finish(&self) -> Option<FinishReason> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.message.role == Role::Assistant)
            .and_then(|m| m.message.finish_reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::StreamingMessage;

    fn delta(index: u64, text: &str) -> ServerFrame {
        ServerFrame::Delta {
            conversation_id: "c".into(),
            message_id: "a".into(),
            index,
            text: text.into(),
        }
    }

    fn accepted(view: &mut ChatView) {
        view.add_pending(&"k".into(), "hi", String::new());
        view.apply(&ServerFrame::Accepted {
            client_msg_id: "k".into(),
            conversation_id: "c".into(),
            message_id: "u1".into(),
            duplicate: false,
        });
    }

    #[test]
    fn deltas_in_order_build_the_text_and_repeats_are_ignored() {
        let mut view = ChatView::default();
        accepted(&mut view);
        assert_eq!(view.conversation_id, Some("c".into()));
        assert!(!view.messages[0].pending);
        for frame in [
            delta(0, "Hel"),
            delta(1, "lo"),
            delta(1, "lo"),
            delta(3, "!"),
        ] {
            view.apply(&frame);
        }
        assert_eq!(view.messages[1].message.content, "Hello");
        assert!(view.is_streaming());
    }

    #[test]
    fn snapshot_then_deltas_from_next_index_is_exact() {
        let mut view = ChatView::default();
        view.apply(&ServerFrame::Snapshot {
            conversation_id: "c".into(),
            messages: vec![],
            streaming: Some(StreamingMessage {
                message: Message {
                    id: "a".into(),
                    role: Role::Assistant,
                    content: "Hello".into(),
                    created_at: String::new(),
                    finish_reason: None,
                    alternatives: None,
                    model: None,
                },
                next_index: 2,
            }),
            has_more: false,
        });
        view.apply(&delta(1, "lo"));
        view.apply(&delta(2, " you"));
        view.apply(&ServerFrame::Done {
            conversation_id: "c".into(),
            message_id: "a".into(),
            finish_reason: FinishReason::Stop,
            usage: None,
            ttft_ms: Some(10.0),
            total_ms: 20.0,
            model: None,
        });
        assert_eq!(view.messages[0].message.content, "Hello you");
        assert!(!view.is_streaming());
        assert_eq!(view.last_finish(), Some(FinishReason::Stop));
    }

    #[test]
    fn a_greeting_shown_while_sending_takes_the_stored_ones_place() {
        let mut view = ChatView::default();
        view.add_pending_greeting("Hello, User.", String::new());
        accepted(&mut view);
        view.apply(&ServerFrame::Message {
            conversation_id: "c".into(),
            message: Message {
                id: "g1".into(),
                role: Role::Assistant,
                content: "Hello, User.".into(),
                created_at: String::new(),
                finish_reason: Some(FinishReason::Stop),
                alternatives: None,
                model: None,
            },
        });
        let ids: Vec<&str> = view
            .messages
            .iter()
            .map(|m| m.message.id.as_str())
            .collect();
        assert_eq!(ids, ["g1", "u1"], "the greeting stays first");
        assert!(!view.messages[0].pending);

        // A refused first message takes the shown greeting with it.
        let mut refused = ChatView::default();
        refused.add_pending_greeting("Hello", String::new());
        refused.add_pending(&"k".into(), "hi", String::new());
        refused.apply(&ServerFrame::Error {
            code: ErrorCode::BadRequest,
            message: "no".into(),
            client_msg_id: Some("k".into()),
            retry_after_ms: None,
            conversation_id: None,
        });
        assert!(refused.messages.is_empty());
    }

    #[test]
    fn refused_send_removes_the_pending_message_and_shows_why() {
        let mut view = ChatView::default();
        view.add_pending(&"k".into(), "hi", String::new());
        view.apply(&ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            client_msg_id: Some("k".into()),
            retry_after_ms: Some(100),
            conversation_id: None,
        });
        assert!(view.messages.is_empty());
        let notice = view.notice.as_ref().expect("notice");
        assert_eq!(notice.code, ErrorCode::RateLimited);
        assert_eq!(notice.retry, Some(Retry::Resend("hi".into())));
    }

    #[test]
    fn a_send_the_server_could_not_store_can_be_sent_again() {
        let mut view = ChatView::default();
        view.add_pending(&"k".into(), "keep me", String::new());
        view.apply(&ServerFrame::Error {
            code: ErrorCode::Unavailable,
            message: "The server's disk is full".into(),
            client_msg_id: Some("k".into()),
            retry_after_ms: Some(2_000),
            conversation_id: None,
        });
        assert!(view.messages.is_empty());
        let notice = view.notice.as_ref().expect("notice");
        assert_eq!(notice.retry, Some(Retry::Resend("keep me".into())));
    }

    #[test]
    fn a_failed_reply_offers_regenerate_and_bad_input_offers_nothing() {
        let mut view = ChatView::default();
        accepted(&mut view);
        view.apply(&ServerFrame::Error {
            code: ErrorCode::UpstreamError,
            message: "model failed".into(),
            client_msg_id: None,
            retry_after_ms: None,
            conversation_id: Some("c".into()),
        });
        assert_eq!(
            view.notice.as_ref().and_then(|n| n.retry.clone()),
            Some(Retry::Regenerate)
        );
        view.add_pending(&"k2".into(), "x".repeat(10).as_str(), String::new());
        view.apply(&ServerFrame::Error {
            code: ErrorCode::TooLarge,
            message: "too long".into(),
            client_msg_id: Some("k2".into()),
            retry_after_ms: None,
            conversation_id: Some("c".into()),
        });
        assert_eq!(view.notice.as_ref().and_then(|n| n.retry.clone()), None);
        assert_eq!(view.returned_draft.as_deref(), Some("xxxxxxxxxx"));
    }

    fn reply(content: &str, finish_reason: Option<FinishReason>) -> Message {
        Message {
            id: "a".into(),
            role: Role::Assistant,
            content: content.into(),
            created_at: String::new(),
            finish_reason,
            alternatives: None,
            model: None,
        }
    }

    fn stored(messages: Vec<Message>) -> ServerFrame {
        ServerFrame::Snapshot {
            conversation_id: "c".into(),
            messages,
            streaming: None,
            has_more: false,
        }
    }

    #[test]
    fn a_reply_that_ended_early_with_text_can_be_continued() {
        let user = Message {
            id: "u".into(),
            role: Role::User,
            content: "hi".into(),
            created_at: String::new(),
            finish_reason: None,
            alternatives: None,
            model: None,
        };
        let mut view = ChatView::default();
        for (last, expected) in [
            (
                reply("Hel", Some(FinishReason::Error)),
                Some(FinishReason::Error),
            ),
            (
                reply("Hel", Some(FinishReason::Length)),
                Some(FinishReason::Length),
            ),
            (
                reply("Hel", Some(FinishReason::Stopped)),
                Some(FinishReason::Stopped),
            ),
            (reply("Hello", Some(FinishReason::Stop)), None),
            (reply("", Some(FinishReason::Error)), None),
            (reply("Hel", None), None),
        ] {
            view.apply(&stored(vec![user.clone(), last.clone()]));
            assert_eq!(view.continuable(), expected, "{last:?}");
        }
        view.apply(&stored(vec![user]));
        assert_eq!(view.continuable(), None, "the last message is the user's");
    }

    #[test]
    fn a_continued_reply_grows_in_place_from_its_snapshot() {
        let mut view = ChatView::default();
        view.apply(&stored(vec![reply("Hel", Some(FinishReason::Error))]));
        // What every view gets when the reply is continued.
        view.apply(&ServerFrame::Snapshot {
            conversation_id: "c".into(),
            messages: vec![],
            streaming: Some(StreamingMessage {
                message: reply("Hel", None),
                next_index: 3,
            }),
            has_more: false,
        });
        assert!(view.is_streaming());
        assert_eq!(view.continuable(), None, "not while it streams");
        view.apply(&delta(0, "stale"));
        view.apply(&delta(3, "lo"));
        view.apply(&delta(4, " you"));
        view.apply(&ServerFrame::Done {
            conversation_id: "c".into(),
            message_id: "a".into(),
            finish_reason: FinishReason::Stop,
            usage: None,
            ttft_ms: Some(5.0),
            total_ms: 9.0,
            model: None,
        });
        assert_eq!(view.messages.len(), 1, "the same message");
        assert_eq!(view.messages[0].message.content, "Hello you");
        assert_eq!(view.last_finish(), Some(FinishReason::Stop));
        assert_eq!(view.continuable(), None);
    }

    #[test]
    fn other_conversations_are_ignored() {
        let mut view = ChatView::default();
        accepted(&mut view);
        view.apply(&ServerFrame::Delta {
            conversation_id: "other".into(),
            message_id: "x".into(),
            index: 0,
            text: "nope".into(),
        });
        assert_eq!(view.messages.len(), 1);
    }
}
