//! Live conversations: who is subscribed, and the reply in progress.
//!
//! A [`LiveConversation`] exists while a reply runs or a socket is subscribed,
//! and is dropped when neither is true. Its small state (the reply slot and the
//! text streamed so far) sits behind a short `std` mutex that is never held
//! across an `.await`. Events are serialised once and fanned out on a bounded
//! `broadcast` channel: a subscriber that falls behind is told it lagged and
//! resubscribes with a fresh snapshot instead of growing memory.
//!
//! Consistency rule: every change of the streaming text and the event that
//! announces it happen under the same lock, and so does taking a subscription
//! together with the snapshot of that text. A subscriber therefore receives
//! exactly the deltas from `next_index` on, with no gap and no repeat.
//!
//! The reply slot is taken as a [`Reservation`]: dropping it before the
//! reply begins gives the slot back, so no refusal path can leave a
//! conversation busy.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

// The one axum type of the chat core: the text of a WebSocket message. A
// frame is serialised once into it and every socket writes it as it is (a
// reference-count increment, no copy); the SSE transport reads it as `&str`.
use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::protocol::{ConversationId, Message, ServerFrame, StreamingMessage, UserId};

/// One server frame as it is fanned out: serialised once, shared by every
/// subscriber (cloning is a reference count), with the [`EventFacts`] a
/// transport routes by, so no transport parses the JSON again.
#[derive(Clone, Debug)]
pub struct Event(Arc<Published>);

#[derive(Debug)]
struct Published {
    json: Utf8Bytes,
    facts: EventFacts,
}

impl Event {
    pub fn new(frame: &ServerFrame) -> Self {
        Self(Arc::new(Published {
            json: Utf8Bytes::from(frame.to_json()),
            facts: EventFacts::of(frame),
        }))
    }

    /// The frame's JSON, as a WebSocket text message.
    pub fn json(&self) -> &Utf8Bytes {
        &self.0.json
    }

    pub fn facts(&self) -> &EventFacts {
        &self.0.facts
    }
}

/// What a transport needs to know of a frame without parsing it. Taken
/// once per published frame (every delta), so it only copies the one id a
/// frame is about; anything formatted from it is the transport's to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFacts {
    /// The frame's `type`.
    pub frame_type: &'static str,
    /// The id the frame is about: the message of `accepted`, `message`,
    /// `delta` and `done`, the conversation of `snapshot` and `error`.
    pub subject: Option<String>,
    /// A `delta`'s index.
    pub index: Option<u64>,
}

impl EventFacts {
    pub fn of(frame: &ServerFrame) -> Self {
        let (frame_type, subject, index) = match frame {
            ServerFrame::Hello { .. } => ("hello", None, None),
            ServerFrame::Accepted { message_id, .. } => {
                ("accepted", Some(message_id.as_str()), None)
            }
            ServerFrame::Snapshot {
                conversation_id, ..
            } => ("snapshot", Some(conversation_id.as_str()), None),
            ServerFrame::Message { message, .. } => ("message", Some(message.id.as_str()), None),
            ServerFrame::Delta {
                message_id, index, ..
            } => ("delta", Some(message_id.as_str()), Some(*index)),
            ServerFrame::Done { message_id, .. } => ("done", Some(message_id.as_str()), None),
            ServerFrame::Error {
                conversation_id, ..
            } => (
                "error",
                conversation_id.as_ref().map(|id| id.as_str()),
                None,
            ),
            ServerFrame::Pong { .. } => ("pong", None, None),
            ServerFrame::Conversations { .. } => ("conversations", None, None),
        };
        Self {
            frame_type,
            subject: subject.map(str::to_owned),
            index,
        }
    }

    /// A stable id of this event: `<message_id>:<index>` for a `delta`,
    /// `<subject>:<type>` for the others that have a subject (the SSE `id`).
    pub fn stable_id(&self) -> Option<String> {
        let subject = self.subject.as_deref()?;
        Some(match self.index {
            Some(index) => format!("{subject}:{index}"),
            None => format!("{subject}:{}", self.frame_type),
        })
    }

    /// A `done`: the reply it ends is over.
    pub fn ends_reply(&self) -> bool {
        self.frame_type == "done"
    }
}

/// The index of the first `delta` of a reply that starts from `text`: its
/// length in bytes. A new reply starts from `""`, so at `0`. A continued
/// reply (`continue`) starts from its stored text, and every `delta` carries
/// at least one byte, so this is past every index its earlier runs gave the
/// deltas of that text: a `delta` id (`<message_id>:<index>`) never names
/// two pieces of text.
pub fn first_delta_index(text: &str) -> u64 {
    text.len() as u64
}

/// A subscriber's end of a conversation's events.
pub type EventRx = broadcast::Receiver<Event>;

/// The reply slot of a conversation: at most one reply at a time.
#[derive(Debug, Default)]
enum ReplySlot {
    #[default]
    Idle,
    /// A `send`, `regenerate` or `continue` is storing its message; the reply starts next.
    Reserved,
    Streaming(Streaming),
}

#[derive(Debug)]
struct Streaming {
    message: Message,
    next_index: u64,
    cancel: CancellationToken,
}

#[derive(Debug, Default)]
struct LiveState {
    reply: ReplySlot,
}

/// A conversation that is being watched or answered right now.
#[derive(Debug)]
pub struct LiveConversation {
    pub id: ConversationId,
    pub owner: UserId,
    state: Mutex<LiveState>,
    events: broadcast::Sender<Event>,
}

/// The reply slot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A conversation's reply slot, held between `send`'s checks and the start
/// of its reply. [`Reservation::begin`] turns it into the running reply;
/// dropping it instead (a refusal, a failed write, a duplicate) frees the
/// slot and lets an unwatched conversation go.
#[must_use = "dropping a reservation frees the reply slot"]
#[derive(Debug)]
pub struct Reservation {
    live: Arc<LiveConversation>,
    hub: Arc<ConversationHub>,
    /// The reply began: the slot is the reply's now.
    begun: bool,
}

impl Reservation {
    pub fn conversation(&self) -> &Arc<LiveConversation> {
        &self.live
    }

    /// Starts streaming into `message`; the slot now belongs to the reply,
    /// which frees it with [`LiveConversation::finish`].
    ///
    /// The reply's first `delta` has the index [`first_delta_index`] of the
    /// text `message` already holds: `0` for a new reply.
    pub fn begin(mut self, message: Message, cancel: CancellationToken) -> Arc<LiveConversation> {
        let next_index = first_delta_index(&message.content);
        self.live.lock().reply = ReplySlot::Streaming(Streaming {
            message,
            next_index,
            cancel,
        });
        self.begun = true;
        self.live.clone()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.begun {
            self.live.unreserve();
            self.hub.release_if_idle(&self.live.id);
        }
    }
}

impl LiveState {
    fn streaming(&self) -> Option<StreamingMessage> {
        match &self.reply {
            ReplySlot::Streaming(s) => Some(StreamingMessage {
                message: s.message.clone(),
                next_index: s.next_index,
            }),
            _ => None,
        }
    }
}

impl LiveConversation {
    fn new(id: ConversationId, owner: UserId, buffer: usize) -> Self {
        let (events, _) = broadcast::channel(buffer.max(1));
        Self {
            id,
            owner,
            state: Mutex::new(LiveState::default()),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding this lock cannot leave the state half-written
        // (every update is a single assignment or push), so poison is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialises `frame` once and sends it to every subscriber.
    pub fn publish(&self, frame: &ServerFrame) {
        // No subscriber is not an error: replies run with every socket gone.
        let _ = self.events.send(Event::new(frame));
    }

    /// Takes the reply slot (see [`ConversationHub::reserve`]).
    fn try_reserve(&self) -> Result<(), Busy> {
        let mut state = self.lock();
        match state.reply {
            ReplySlot::Idle => {
                state.reply = ReplySlot::Reserved;
                Ok(())
            }
            _ => Err(Busy),
        }
    }

    /// Gives a reserved slot back; a slot already streaming is left alone.
    fn unreserve(&self) {
        let mut state = self.lock();
        if matches!(state.reply, ReplySlot::Reserved) {
            state.reply = ReplySlot::Idle;
        }
    }

    /// Appends a piece of the reply and announces it as a `delta`.
    pub fn push_delta(&self, text: &str) {
        let mut state = self.lock();
        if let ReplySlot::Streaming(s) = &mut state.reply {
            s.message.content.push_str(text);
            let frame = ServerFrame::Delta {
                conversation_id: self.id.clone(),
                message_id: s.message.id.clone(),
                index: s.next_index,
                text: text.to_owned(),
            };
            s.next_index += 1;
            self.publish(&frame);
        }
    }

    /// The text streamed so far.
    pub fn streamed_text(&self) -> String {
        match &self.lock().reply {
            ReplySlot::Streaming(s) => s.message.content.clone(),
            _ => String::new(),
        }
    }

    /// Ends the reply: frees the slot and announces `done` (and before it, optionally, `error`).
    pub fn finish(&self, error: Option<&ServerFrame>, done: &ServerFrame) {
        let mut state = self.lock();
        state.reply = ReplySlot::Idle;
        if let Some(error) = error {
            self.publish(error);
        }
        self.publish(done);
    }

    /// Cancels the running reply; `false` if none runs.
    pub fn stop(&self) -> bool {
        match &self.lock().reply {
            ReplySlot::Streaming(s) => {
                s.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Whether a reply is reserved or streaming.
    pub fn is_busy(&self) -> bool {
        !matches!(self.lock().reply, ReplySlot::Idle)
    }

    /// A new subscription and, atomically with it, the reply in progress.
    pub fn subscribe(&self) -> (EventRx, Option<StreamingMessage>) {
        let state = self.lock();
        (self.events.subscribe(), state.streaming())
    }

    /// The reply in progress, without following it.
    pub fn streaming(&self) -> Option<StreamingMessage> {
        self.lock().streaming()
    }
}

/// All live conversations of the server.
#[derive(Debug)]
pub struct ConversationHub {
    live: Mutex<HashMap<ConversationId, Arc<LiveConversation>>>,
    buffer: usize,
}

impl ConversationHub {
    /// `buffer`: events a subscriber may fall behind before it is resynced.
    pub fn new(buffer: usize) -> Self {
        Self {
            live: Mutex::new(HashMap::new()),
            buffer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConversationId, Arc<LiveConversation>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live conversation, if there is one.
    pub fn get(&self, id: &ConversationId) -> Option<Arc<LiveConversation>> {
        self.lock().get(id).cloned()
    }

    /// The live conversation, created if needed. The caller has checked `owner`.
    pub fn get_or_create(&self, id: &ConversationId, owner: &UserId) -> Arc<LiveConversation> {
        self.entry(&mut self.lock(), id, owner)
    }

    /// Takes the conversation's one reply slot, or says a reply is already
    /// running. The caller has checked `owner`.
    pub fn reserve(
        self: &Arc<Self>,
        id: &ConversationId,
        owner: &UserId,
    ) -> Result<Reservation, Busy> {
        let live = self.get_or_create(id, owner);
        match live.try_reserve() {
            Ok(()) => Ok(Reservation {
                live,
                hub: self.clone(),
                begun: false,
            }),
            // Busy: a reply holds the entry, so there is nothing to release.
            Err(busy) => Err(busy),
        }
    }

    fn entry(
        &self,
        live: &mut HashMap<ConversationId, Arc<LiveConversation>>,
        id: &ConversationId,
        owner: &UserId,
    ) -> Arc<LiveConversation> {
        live.entry(id.clone())
            .or_insert_with(|| {
                Arc::new(LiveConversation::new(
                    id.clone(),
                    owner.clone(),
                    self.buffer,
                ))
            })
            .clone()
    }

    /// Subscribes under the hub lock, so a concurrent [`ConversationHub::release_if_idle`]
    /// cannot drop the conversation between lookup and subscription.
    pub fn subscribe(
        &self,
        id: &ConversationId,
        owner: &UserId,
    ) -> (Arc<LiveConversation>, EventRx, Option<StreamingMessage>) {
        let mut live = self.lock();
        let conversation = self.entry(&mut live, id, owner);
        let (rx, streaming) = conversation.subscribe();
        (conversation, rx, streaming)
    }

    /// Drops the conversation if nobody watches it and no reply runs.
    pub fn release_if_idle(&self, id: &ConversationId) {
        let mut live = self.lock();
        if let Some(conversation) = live.get(id) {
            if conversation.events.receiver_count() == 0 && !conversation.is_busy() {
                live.remove(id);
            }
        }
    }

    /// Forgets a conversation (it was deleted), stopping its reply.
    pub fn remove(&self, id: &ConversationId) {
        if let Some(conversation) = self.lock().remove(id) {
            conversation.stop();
        }
    }

    /// How many conversations are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no conversation is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn assistant(id: &str) -> Message {
        Message {
            id: id.into(),
            role: Role::Assistant,
            content: String::new(),
            created_at: "2026-11-24T00:00:00Z".into(),
            finish_reason: None,
        }
    }

    fn delta_index(event: &Event) -> u64 {
        match serde_json::from_str::<ServerFrame>(event.json().as_str()).expect("frame") {
            ServerFrame::Delta { index, .. } => index,
            other => panic!("expected delta, got {other:?}"),
        }
    }

    #[test]
    fn one_reply_at_a_time() {
        let hub = Arc::new(ConversationHub::new(8));
        let (c, u) = ("c".into(), "u".into());
        let reserved = hub.reserve(&c, &u);
        assert!(reserved.is_ok());
        assert_eq!(hub.reserve(&c, &u).err(), Some(Busy));
        drop(reserved);
        assert!(hub.reserve(&c, &u).is_ok());
    }

    #[test]
    fn a_begun_reply_keeps_its_slot_until_finished() {
        let hub = Arc::new(ConversationHub::new(8));
        let (c, u) = ("c".into(), "u".into());
        let live = hub
            .reserve(&c, &u)
            .expect("free")
            .begin(assistant("m"), CancellationToken::new());
        assert_eq!(hub.reserve(&c, &u).err(), Some(Busy));
        let done = ServerFrame::Pong {
            nonce: serde_json::Value::Null,
        };
        live.finish(None, &done);
        assert!(hub.reserve(&c, &u).is_ok());
    }

    #[test]
    fn late_subscriber_gets_text_so_far_and_exactly_the_rest() {
        let hub = Arc::new(ConversationHub::new(64));
        let (_, mut early, _) = hub.subscribe(&"c".into(), &"u".into());
        let live = hub
            .reserve(&"c".into(), &"u".into())
            .expect("free")
            .begin(assistant("m"), CancellationToken::new());
        live.push_delta("Hel");
        live.push_delta("lo");
        let (_, mut late, streaming) = hub.subscribe(&"c".into(), &"u".into());
        let streaming = streaming.expect("streaming");
        assert_eq!(streaming.message.content, "Hello");
        assert_eq!(streaming.next_index, 2);
        live.push_delta(" you");
        assert_eq!(delta_index(&late.try_recv().expect("delta")), 2);
        assert!(
            late.try_recv().is_err(),
            "nothing else for the late subscriber"
        );
        for expected in 0..3 {
            assert_eq!(delta_index(&early.try_recv().expect("delta")), expected);
        }
    }

    #[test]
    fn a_continued_reply_numbers_its_deltas_after_its_stored_text() {
        let hub = Arc::new(ConversationHub::new(64));
        let mut partial = assistant("m");
        partial.content = "Héllo".into();
        let live = hub
            .reserve(&"c".into(), &"u".into())
            .expect("free")
            .begin(partial, CancellationToken::new());
        let (_, mut rx, streaming) = hub.subscribe(&"c".into(), &"u".into());
        let streaming = streaming.expect("streaming");
        assert_eq!(streaming.message.content, "Héllo");
        assert_eq!(streaming.next_index, 6, "the stored text's bytes");
        live.push_delta(" you");
        assert_eq!(delta_index(&rx.try_recv().expect("delta")), 6);
        assert_eq!(live.streamed_text(), "Héllo you", "the whole text");
    }

    #[test]
    fn idle_conversation_without_subscribers_is_released() {
        let hub = Arc::new(ConversationHub::new(8));
        let (live, rx, _) = hub.subscribe(&"c".into(), &"u".into());
        hub.release_if_idle(&live.id);
        assert_eq!(hub.len(), 1, "still subscribed");
        drop(rx);
        let reserved = hub.reserve(&live.id, &live.owner).expect("free");
        hub.release_if_idle(&live.id);
        assert_eq!(hub.len(), 1, "reply reserved");
        drop(reserved);
        hub.release_if_idle(&live.id);
        assert!(hub.is_empty());
    }

    #[test]
    fn slow_subscriber_lags_instead_of_growing() {
        let hub = Arc::new(ConversationHub::new(4));
        let (_, mut rx, _) = hub.subscribe(&"c".into(), &"u".into());
        let live = hub
            .reserve(&"c".into(), &"u".into())
            .expect("free")
            .begin(assistant("m"), CancellationToken::new());
        for _ in 0..10 {
            live.push_delta("x");
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
