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

use super::prompt_window::PromptWindow;
use crate::protocol::{ConversationId, Message, MessageId, ServerFrame, StreamingMessage, UserId};

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

    /// A frame that arrived as JSON (from another instance): `json` is sent
    /// on as it is, `frame` is what it says.
    pub fn from_json(json: String, frame: &ServerFrame) -> Self {
        Self(Arc::new(Published {
            json: Utf8Bytes::from(json),
            facts: EventFacts::of(frame),
        }))
    }

    /// Not a frame: tells a subscriber that events may have been missed
    /// (the cluster bus reconnected, or a gap was seen), so it resyncs from
    /// a fresh snapshot exactly as after a lag.
    pub fn resync() -> Self {
        Self(Arc::new(Published {
            json: Utf8Bytes::from_static(""),
            facts: EventFacts {
                frame_type: RESYNC,
                subject: None,
                index: None,
            },
        }))
    }

    /// Whether this is [`Event::resync`].
    pub fn is_resync(&self) -> bool {
        self.0.facts.frame_type == RESYNC
    }

    /// The frame's JSON, as a WebSocket text message.
    pub fn json(&self) -> &Utf8Bytes {
        &self.0.json
    }

    pub fn facts(&self) -> &EventFacts {
        &self.0.facts
    }
}

/// The `frame_type` of [`Event::resync`].
const RESYNC: &str = "resync";

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
            ServerFrame::Changed { .. } => ("changed", None, None),
            ServerFrame::HistoryPage {
                conversation_id, ..
            } => ("history_page", Some(conversation_id.as_str()), None),
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

/// What the owner of a reply tells every instance following its
/// conversation, in order.
#[derive(Clone, Debug)]
pub enum Record {
    /// A reply starts (or goes on) streaming into this message: not shown
    /// to clients; it is what a snapshot taken on any instance includes.
    Begin(StreamingMessage),
    /// The reply's records may have been lost on the way (Redis restarted):
    /// its whole text so far, from which the log starts again. Subscribers
    /// start over from a snapshot.
    Restart(StreamingMessage),
    /// A frame for every subscriber.
    Frame(ServerFrame),
    /// The reply is over: its lease is given back (after its `done`).
    Release,
}

/// Where a conversation's events go when several instances share the live
/// state (`cluster`): instead of this process's subscribers, to every
/// instance following the conversation (this one included), which hands
/// them to its subscribers ([`LiveConversation::receive`]).
pub trait Relay: Send + Sync + std::fmt::Debug {
    /// Sends `record` on, in order, if `lease` still owns the
    /// conversation's reply (a stale owner's records are dropped).
    fn emit(&self, conversation: &ConversationId, lease: &str, record: Record);
    /// Nobody here follows the conversation any more.
    fn unfollow(&self, conversation: &ConversationId);
}

/// The reply slot of a conversation: at most one reply at a time.
#[derive(Debug, Default)]
enum ReplySlot {
    #[default]
    Idle,
    /// A `send`, `regenerate` or `continue` is storing its message; the
    /// reply starts next. With the cluster's lease it holds, if any.
    Reserved(Option<String>),
    Streaming(Streaming),
}

#[derive(Debug)]
struct Streaming {
    message: Message,
    next_index: u64,
    cancel: CancellationToken,
    /// The cluster lease the reply holds (its value), if any.
    lease: Option<String>,
}

#[derive(Debug, Default)]
struct LiveState {
    /// This instance's reply, if one runs here.
    reply: ReplySlot,
    /// With a [`Relay`]: the reply in progress as the cluster announced it
    /// (on whichever instance it runs), what snapshots are taken from.
    mirror: Option<StreamingMessage>,
    /// With a [`Relay`]: how far the mirror has followed the log.
    position: Position,
    /// Without a relay: the newest messages, once a `send` has read them
    /// (see [`PromptWindow`]); a finished reply joins them as its slot is freed.
    window: Option<PromptWindow>,
}

/// Records kept while a conversation's log is being loaded, at most.
const MAX_PENDING: usize = 4096;

/// Where the mirror stands in the conversation's log.
#[derive(Debug)]
enum Position {
    /// The log is being read; records that arrive meanwhile wait.
    Loading {
        pending: Vec<(u128, Record, Option<String>)>,
        /// More arrived than [`MAX_PENDING`]: read the log again.
        overflowed: bool,
    },
    /// Every record up to this position is applied.
    At(u128),
}

impl Position {
    fn loading() -> Self {
        Position::Loading {
            pending: Vec::new(),
            overflowed: false,
        }
    }
}

impl Default for Position {
    fn default() -> Self {
        Position::loading()
    }
}

impl ReplySlot {
    fn lease(&self) -> Option<&str> {
        match self {
            ReplySlot::Idle => None,
            ReplySlot::Reserved(lease) => lease.as_deref(),
            ReplySlot::Streaming(s) => s.lease.as_deref(),
        }
    }
}

/// A conversation that is being watched or answered right now.
#[derive(Debug)]
pub struct LiveConversation {
    pub id: ConversationId,
    pub owner: UserId,
    state: Mutex<LiveState>,
    events: broadcast::Sender<Event>,
    relay: Option<Arc<dyn Relay>>,
    /// With a relay: this instance listens to the conversation.
    followed: tokio::sync::OnceCell<()>,
}

/// The reply slot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A relayed `delta` was not the next one: something was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap;

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
        let mut state = self.live.lock();
        let lease = state.reply.lease().map(str::to_owned);
        if let Some(lease) = &lease {
            self.live.relay(
                lease,
                Record::Begin(StreamingMessage {
                    message: message.clone(),
                    next_index,
                }),
            );
        }
        state.reply = ReplySlot::Streaming(Streaming {
            message,
            next_index,
            cancel,
            lease,
        });
        drop(state);
        self.begun = true;
        self.live.clone()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.begun {
            if let Some(lease) = self.live.unreserve() {
                self.live.relay(&lease, Record::Release);
            }
            self.hub.release_if_idle(&self.live.id);
        }
    }
}

impl LiveState {
    /// The reply in progress: this instance's, or with a relay, the mirror.
    fn streaming(&self, relayed: bool) -> Option<StreamingMessage> {
        if relayed {
            return self.mirror.clone();
        }
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
    fn new(
        id: ConversationId,
        owner: UserId,
        buffer: usize,
        relay: Option<Arc<dyn Relay>>,
    ) -> Self {
        let (events, _) = broadcast::channel(buffer.max(1));
        Self {
            id,
            owner,
            state: Mutex::new(LiveState::default()),
            events,
            relay,
            followed: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs `follow` once for this live conversation (concurrent callers
    /// wait for the first; a failure lets the next caller try again).
    pub async fn follow_once<F, Fut, E>(&self, follow: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        self.followed.get_or_try_init(follow).await.map(|_| ())
    }

    /// Starts the relayed log of this instance's reply again from its whole
    /// text (a `begin`), when records of `lease` may have been lost.
    pub fn restart_log(&self, lease: &str) {
        let state = self.lock();
        if state.reply.lease() == Some(lease) {
            if let Some(streaming) = state.streaming(false) {
                self.relay(lease, Record::Restart(streaming));
            }
        }
    }

    /// Hands `record` to the relay (no-op without one).
    fn relay(&self, lease: &str, record: Record) {
        if let Some(relay) = &self.relay {
            relay.emit(&self.id, lease, record);
        }
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding this lock cannot leave the state half-written
        // (every update is a single assignment or push), so poison is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialises `frame` once and sends it to every subscriber (with a
    /// relay: to every instance's, through the relay, under the lease of
    /// this instance's reply).
    pub fn publish(&self, frame: &ServerFrame) {
        let state = self.lock();
        self.publish_locked(&state, frame);
    }

    fn publish_locked(&self, state: &LiveState, frame: &ServerFrame) {
        match (&self.relay, state.reply.lease()) {
            (None, _) => self.broadcast(Event::new(frame)),
            (Some(relay), Some(lease)) => relay.emit(&self.id, lease, Record::Frame(frame.clone())),
            (Some(_), None) => {
                tracing::debug!(conversation_id = %self.id, "no reply holds the lease; frame dropped");
            }
        }
    }

    fn broadcast(&self, event: Event) {
        // No subscriber is not an error: replies run with every socket gone.
        let _ = self.events.send(event);
    }

    /// Takes the reply slot (see [`ConversationHub::reserve`]).
    fn try_reserve(&self) -> Result<(), Busy> {
        let mut state = self.lock();
        match state.reply {
            ReplySlot::Idle => {
                state.reply = ReplySlot::Reserved(None);
                Ok(())
            }
            _ => Err(Busy),
        }
    }

    /// Gives a reserved slot back; a slot already streaming is left alone.
    /// Returns the lease it held, to give back too.
    fn unreserve(&self) -> Option<String> {
        let mut state = self.lock();
        match &mut state.reply {
            ReplySlot::Reserved(lease) => {
                let lease = lease.take();
                state.reply = ReplySlot::Idle;
                lease
            }
            _ => None,
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
            let state = &*state;
            self.publish_locked(state, &frame);
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
        if let Some(error) = error {
            self.publish_locked(&state, error);
        }
        self.publish_locked(&state, done);
        if let Some(lease) = state.reply.lease() {
            self.relay(lease, Record::Release);
        }
        if let ReplySlot::Streaming(mut s) = std::mem::take(&mut state.reply) {
            if let (Some(window), ServerFrame::Done { finish_reason, .. }) =
                (&mut state.window, done)
            {
                s.message.finish_reason = Some(*finish_reason);
                window.push(s.message);
            }
        }
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

    /// Cancels the running reply if it holds `lease` (a stop sent to
    /// another instance, or a lease lost); `false` if not.
    pub fn stop_leased(&self, lease: &str) -> bool {
        match &self.lock().reply {
            ReplySlot::Streaming(s) if s.lease.as_deref() == Some(lease) => {
                s.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// The message and text so far of this instance's reply, if it runs
    /// under `lease`.
    pub fn running(&self, lease: &str) -> Option<(MessageId, String)> {
        match &self.lock().reply {
            ReplySlot::Streaming(s) if s.lease.as_deref() == Some(lease) => {
                Some((s.message.id.clone(), s.message.content.clone()))
            }
            _ => None,
        }
    }

    /// The lease this instance's reply holds, if one runs here.
    pub fn lease(&self) -> Option<String> {
        self.lock().reply.lease().map(str::to_owned)
    }

    /// Records that `lease` (the cluster's) holds the reserved slot.
    pub fn hold_lease(&self, lease: String) {
        if let ReplySlot::Reserved(held) = &mut self.lock().reply {
            *held = Some(lease);
        }
    }

    /// A record relayed from the owner of the reply (any instance), with
    /// its position in the conversation's log (`seq`, increasing): the
    /// mirror follows it and frames go to this instance's subscribers.
    /// While the log is being loaded, records wait; one already in the
    /// loaded log is skipped. `Err(Gap)` when a `delta` is not the next
    /// one (something was missed): the caller reloads.
    pub fn receive(&self, seq: u128, record: Record, json: Option<String>) -> Result<(), Gap> {
        let mut state = self.lock();
        match &mut state.position {
            Position::Loading {
                pending,
                overflowed,
            } => {
                if pending.len() >= MAX_PENDING {
                    *overflowed = true;
                } else {
                    pending.push((seq, record, json));
                }
                Ok(())
            }
            Position::At(at) if seq <= *at => Ok(()),
            Position::At(at) => {
                *at = seq;
                self.apply(&mut state, record, json)
            }
        }
    }

    fn apply(
        &self,
        state: &mut LiveState,
        record: Record,
        json: Option<String>,
    ) -> Result<(), Gap> {
        let frame = match record {
            Record::Begin(streaming) => {
                state.mirror = Some(streaming);
                return Ok(());
            }
            Record::Restart(streaming) => {
                state.mirror = Some(streaming);
                self.broadcast(Event::resync());
                return Ok(());
            }
            Record::Release => return Ok(()),
            Record::Frame(frame) => frame,
        };
        match (&frame, state.mirror.as_mut()) {
            (
                ServerFrame::Delta {
                    index,
                    text,
                    message_id,
                    ..
                },
                Some(m),
            ) if *index == m.next_index && *message_id == m.message.id => {
                m.message.content.push_str(text);
                m.next_index += 1;
            }
            (ServerFrame::Delta { .. }, _) => {
                state.position = Position::loading();
                return Err(Gap);
            }
            (ServerFrame::Done { message_id, .. }, Some(m)) if *message_id == m.message.id => {
                state.mirror = None;
            }
            _ => {}
        }
        self.broadcast(match json {
            Some(json) => Event::from_json(json, &frame),
            None => Event::new(&frame),
        });
        Ok(())
    }

    /// Records wait from now on until [`LiveConversation::reload`].
    pub fn start_loading(&self) {
        self.lock().position = Position::loading();
    }

    /// Sets the mirror from the cluster's log (read up to `at`), then
    /// applies what arrived meanwhile; with `resync`, subscribers start over
    /// from a fresh snapshot. `Err(Gap)` when records were missed meanwhile.
    pub fn reload(
        &self,
        streaming: Option<StreamingMessage>,
        at: u128,
        resync: bool,
    ) -> Result<(), Gap> {
        let mut state = self.lock();
        let waiting = std::mem::replace(&mut state.position, Position::At(at));
        state.mirror = streaming;
        if resync {
            self.broadcast(Event::resync());
        }
        let Position::Loading {
            pending,
            overflowed,
        } = waiting
        else {
            return Ok(());
        };
        if overflowed {
            state.position = Position::loading();
            return Err(Gap);
        }
        for (seq, record, json) in pending {
            if seq > at {
                if let Position::At(now) = &mut state.position {
                    *now = seq;
                }
                self.apply(&mut state, record, json)?;
            }
        }
        Ok(())
    }

    /// Whether a reply is reserved or streaming here, or (with a relay)
    /// streaming on another instance.
    pub fn is_busy(&self) -> bool {
        let state = self.lock();
        !matches!(state.reply, ReplySlot::Idle) || state.mirror.is_some()
    }

    /// Whether this instance's reply slot is taken.
    fn slot_taken(&self) -> bool {
        !matches!(self.lock().reply, ReplySlot::Idle)
    }

    /// A new subscription and, atomically with it, the reply in progress.
    pub fn subscribe(&self) -> (EventRx, Option<StreamingMessage>) {
        let state = self.lock();
        (
            self.events.subscribe(),
            state.streaming(self.relay.is_some()),
        )
    }

    /// The reply in progress, without following it.
    pub fn streaming(&self) -> Option<StreamingMessage> {
        self.lock().streaming(self.relay.is_some())
    }
}

/// The prompt window ([`PromptWindow`]) of a conversation that runs here
/// without a relay.
impl LiveConversation {
    /// The newest messages with text, when a `send` has read them and
    /// nothing but sends and finished replies changed them since.
    pub fn prompt_window(&self) -> Option<Vec<Message>> {
        if self.relay.is_some() {
            return None;
        }
        self.lock().window.as_ref().map(PromptWindow::to_vec)
    }

    /// Keeps `history`, the store's newest `cap` messages with text, as
    /// the window.
    pub fn keep_prompt_window(&self, history: &[Message], cap: usize) {
        if self.relay.is_none() {
            self.lock().window = Some(PromptWindow::new(history, cap));
        }
    }

    /// A user message stored after the window's messages.
    pub fn extend_prompt_window(&self, message: Message) {
        if let Some(window) = &mut self.lock().window {
            window.push(message);
        }
    }

    /// The messages changed otherwise: the next `send` reads the store.
    pub fn forget_prompt_window(&self) {
        self.lock().window = None;
    }
}

/// All live conversations of the server.
#[derive(Debug)]
pub struct ConversationHub {
    live: Mutex<HashMap<ConversationId, Arc<LiveConversation>>>,
    buffer: usize,
    relay: Option<Arc<dyn Relay>>,
    /// The users' notices (changes outside any one conversation).
    notices: Arc<super::notices::UserNotices>,
    /// The streams open under each account session, closed when it is
    /// signed out (here or, through the relay, on another instance).
    sessions: Arc<crate::server::accounts::live::LiveSessions>,
}

impl ConversationHub {
    /// `buffer`: events a subscriber may fall behind before it is resynced.
    pub fn new(buffer: usize) -> Self {
        Self {
            live: Mutex::new(HashMap::new()),
            buffer,
            relay: None,
            notices: Arc::default(),
            sessions: Arc::default(),
        }
    }

    /// The users' notices, delivered to this instance's sockets.
    pub fn notices(&self) -> &Arc<super::notices::UserNotices> {
        &self.notices
    }

    /// This instance's streams of each account session.
    pub fn sessions(&self) -> &Arc<crate::server::accounts::live::LiveSessions> {
        &self.sessions
    }

    /// A hub whose conversations' events go through `relay` (cluster mode).
    pub fn relayed(buffer: usize, relay: Arc<dyn Relay>) -> Self {
        Self {
            relay: Some(relay),
            ..Self::new(buffer)
        }
    }

    /// Whether events go through a relay.
    pub fn is_relayed(&self) -> bool {
        self.relay.is_some()
    }

    /// Every live conversation (for the cluster's periodic work).
    pub fn conversations(&self) -> Vec<Arc<LiveConversation>> {
        self.lock().values().cloned().collect()
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
                    self.relay.clone(),
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
            if conversation.events.receiver_count() == 0 && !conversation.slot_taken() {
                live.remove(id);
                if let Some(relay) = &self.relay {
                    relay.unfollow(id);
                }
            }
        }
    }

    /// Forgets a conversation (it was deleted), stopping its reply.
    pub fn remove(&self, id: &ConversationId) {
        if let Some(conversation) = self.lock().remove(id) {
            conversation.stop();
            if let Some(relay) = &self.relay {
                relay.unfollow(id);
            }
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
    use crate::protocol::{FinishReason, Role};

    fn assistant(id: &str) -> Message {
        Message {
            id: id.into(),
            role: Role::Assistant,
            content: String::new(),
            created_at: "2026-11-24T00:00:00Z".into(),
            finish_reason: None,
            alternatives: None,
            model: None,
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
    fn a_finished_reply_is_in_the_prompt_window_before_its_slot_is_free() {
        let hub = Arc::new(ConversationHub::new(8));
        let (c, u) = ("c".into(), "u".into());
        let reserved = hub.reserve(&c, &u).expect("free");
        let live = reserved.conversation().clone();
        assert_eq!(live.prompt_window(), None, "nothing read yet");
        let mut question = assistant("q");
        question.role = Role::User;
        question.content = "hi".into();
        live.keep_prompt_window(std::slice::from_ref(&question), 40);
        let live = reserved.begin(assistant("m"), CancellationToken::new());
        live.push_delta("hello");
        live.finish(
            None,
            &ServerFrame::Done {
                conversation_id: c.clone(),
                message_id: "m".into(),
                finish_reason: FinishReason::Stop,
                usage: None,
                ttft_ms: None,
                total_ms: 1.0,
                model: None,
            },
        );
        let next = hub.reserve(&c, &u).expect("free after done");
        let window = next.conversation().prompt_window().expect("kept");
        assert_eq!(window.len(), 2);
        assert_eq!(window[1].content, "hello");
        assert_eq!(window[1].finish_reason, Some(FinishReason::Stop));
        next.conversation().forget_prompt_window();
        assert_eq!(next.conversation().prompt_window(), None);
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
