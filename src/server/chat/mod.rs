//! The chat core: what each client request means, independent of the socket.
//!
//! [`ChatService`] validates, applies limits, stores, reserves the one reply
//! slot of a conversation and starts the reply task. It answers with frames
//! and subscriptions; it never touches a socket (that is `ws/`), and it never
//! talks HTTP to the model (that is `llm/`).

mod branches;
mod checkpoint;
mod continuation;
mod dispatch;
mod error;
pub mod hub;
pub mod limits;
mod live;
pub mod meter;
pub mod notices;
mod prompt_window;
mod reply;
mod window;

pub use self::{
    continuation::CONTINUE_INSTRUCTION,
    dispatch::Answer,
    error::{ChatError, Refused},
};

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{
    hub::{ConversationHub, EventRx, Reservation},
    limits::RateLimiter,
    reply::ReplyJob,
};
use super::{
    access::address::AddrKey,
    cluster::{Cluster, Connecting},
    companions::{CompanionError, Companions, PromptSource},
    config::Config,
    llm::LlmClient,
    metrics::{AddressLimit, Metrics},
    store::{ConversationRecord, NewUserMessage, ReplyRun, SendOutcome, Store, Target},
};
use crate::protocol::{
    ClientMsgId, ConversationId, FinishReason, Limits, Message, MessageId, PersonaInfo, Role,
    ServerFrame, StreamingMessage, UserId, PROTOCOL_VERSION,
};

/// A live subscription handed to a connection.
#[derive(Debug)]
pub struct Subscription {
    pub conversation_id: ConversationId,
    pub events: EventRx,
}

/// How a new reply in an existing conversation begins ([`ChatService::admit_rerun`]).
enum Rerun {
    /// Its `client_msg_id` was seen before: the first answer, again.
    Duplicate(Accepted),
    /// The conversation, and its reply slot held for the new reply's run.
    Admitted(ConversationRecord, Reservation, ReplyRun),
}

/// A reply about to start: the stored empty message it streams into and the
/// history its prompt is built from.
struct NewReply {
    /// Whose conversation it is (what the reply uses is counted to them).
    user: UserId,
    client_msg_id: ClientMsgId,
    /// Who writes the reply (the token fences its writes).
    run: ReplyRun,
    received: Instant,
    assistant: Message,
    history: Vec<Message>,
    /// The model asked (the conversation's).
    model: String,
    /// What the open views are shown before the reply streams (not for
    /// [`ReplyStart::Answer`]); `None`: the newest of `history`.
    shown: Option<window::Window>,
}

/// How a reply begins, for the open views and for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyStart {
    /// Answers a `send`: the views have just seen its user message.
    Answer,
    /// `regenerate`: every view is first given the history without the
    /// replaced reply, and the new one streaming from its start.
    Replace,
    /// `continue`: every view is first given the history before the reply,
    /// and the reply streaming on from its stored text; the model is asked
    /// to go on from that text.
    Continue,
}

/// Where a `send` stores its message, or the answer when it was a resend.
enum SendTarget {
    /// Store into this target; an existing conversation's slot is reserved.
    Ready(Target, Option<Reservation>),
    Duplicate(Accepted),
}

/// The answer to `send` / `regenerate`: the `accepted` frame and the
/// subscription taken before the reply started (so no delta is missed).
#[derive(Debug)]
pub struct Accepted {
    pub frame: ServerFrame,
    pub subscription: Subscription,
}

/// Everything the chat core needs; one per server.
pub struct ChatService {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    llm: LlmClient,
    hub: Arc<ConversationHub>,
    rate: RateLimiter,
    /// Sends per client address, over all its identities.
    address_rate: RateLimiter<AddrKey>,
    upstream_slots: Arc<Semaphore>,
    replies: TaskTracker,
    /// Cancels every running reply (after the shutdown grace period).
    stop_replies: CancellationToken,
    shutting_down: AtomicBool,
    metrics: Arc<Metrics>,
    /// This server process among those sharing the database: a new id per start.
    instance: String,
    /// The live state shared with other instances (cluster mode).
    cluster: Option<Arc<Cluster>>,
    /// Presets and the users' own companions: the prompt of each reply.
    companions: Companions,
    /// Counts messages and tokens per user (quotas), when the server meters.
    meter: Option<Arc<dyn meter::Meter>>,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("llm", &self.llm)
            .field("live_conversations", &self.hub.len())
            .finish_non_exhaustive()
    }
}

impl ChatService {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        llm: LlmClient,
        metrics: Arc<Metrics>,
    ) -> Self {
        let limits = config.limits;
        Self {
            hub: Arc::new(ConversationHub::new(limits.subscriber_buffer)),
            rate: RateLimiter::new(limits.rate_burst, limits.rate_per_sec),
            address_rate: RateLimiter::new(limits.addr_rate_burst, limits.addr_rate_per_sec),
            upstream_slots: Arc::new(Semaphore::new(limits.max_concurrent_upstream)),
            replies: TaskTracker::new(),
            stop_replies: CancellationToken::new(),
            shutting_down: AtomicBool::new(false),
            instance: crate::server::store::new_id(),
            cluster: None,
            meter: None,
            companions: Companions::new(store.clone(), &config.personas, limits),
            config,
            store,
            llm,
            metrics,
        }
    }

    /// A chat service sharing its live state with other instances through
    /// `cluster` (cluster mode).
    pub fn clustered(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        llm: LlmClient,
        metrics: Arc<Metrics>,
        cluster: Connecting,
    ) -> Self {
        let mut service = Self::new(config, store.clone(), llm, metrics.clone());
        let hub = Arc::new(ConversationHub::relayed(
            service.config.limits.subscriber_buffer,
            cluster.relay(),
        ));
        let cluster = cluster.start(hub.clone(), store, metrics);
        service.instance = cluster.instance().to_owned();
        service.hub = hub;
        service.cluster = Some(cluster);
        service
    }

    /// Counts every model call of a user with `meter` (quotas), which may
    /// refuse it.
    pub fn metered(mut self, meter: Arc<dyn meter::Meter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The live state shared with other instances, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// This process's instance id (its replies' owner in the database).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn llm(&self) -> &LlmClient {
        &self.llm
    }

    /// Presets and the users' own companions (the companion endpoints).
    pub fn companions(&self) -> &Companions {
        &self.companions
    }

    /// The greeting of a new connection (WebSocket, or the HTTP fallback's
    /// `GET /api/hello`): protocol version, the user, limits and personas.
    pub fn hello(&self, user: &UserId) -> ServerFrame {
        let config = &self.config;
        ServerFrame::Hello {
            protocol: PROTOCOL_VERSION,
            user_id: user.clone(),
            server: concat!("tether/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: Limits {
                max_frame_bytes: config.limits.max_frame_bytes,
                max_message_chars: config.limits.max_message_chars,
            },
            personas: config
                .personas
                .iter()
                .map(|p| PersonaInfo {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    description: p.description.clone(),
                })
                .collect(),
            model_setup: Some(self.llm.setup().now()).filter(|setup| !setup.is_ready()),
            models: Some(self.llm.models())
                .filter(|models| models.len() > 1)
                .unwrap_or_default(),
            model: Some(self.llm.model().to_owned()),
        }
    }

    /// `model`, if the provider offers it (see [`LlmClient::models`]).
    fn check_model(&self, model: String) -> Result<String, ChatError> {
        if self.llm.offers(&model) {
            Ok(model)
        } else {
            Err(ChatError::BadRequest(format!(
                "unknown model {model:?}; this server offers: {}",
                self.llm.models().join(", ")
            )))
        }
    }

    /// The model a conversation's replies are asked of: its own while the
    /// provider offers it (an imported conversation may name one it does
    /// not), else the default.
    fn model_of(&self, conversation: &ConversationRecord) -> String {
        conversation
            .model
            .clone()
            .filter(|model| self.llm.offers(model))
            .unwrap_or_else(|| self.llm.model().to_owned())
    }

    /// `set_model`: the model a conversation's next replies are asked of;
    /// answers with the fresh list (which carries it).
    pub async fn set_model(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        model: String,
    ) -> Result<ServerFrame, ChatError> {
        let model = self.check_model(model)?;
        self.store
            .set_conversation_model(user, conversation_id, &model)
            .await?;
        self.notify(user, crate::protocol::Changed::Conversations);
        self.conversations(user, None).await
    }

    /// Number of replies running now.
    pub fn running_replies(&self) -> usize {
        self.replies.len()
    }

    /// `send`: store the user message and start a reply.
    ///
    /// The happy path costs one storage round trip: the store checks the
    /// idempotency key, stores the message and the reply's empty message,
    /// and returns the prompt's history in one job.
    pub async fn send(
        &self,
        user: &UserId,
        client_msg_id: ClientMsgId,
        conversation_id: Option<ConversationId>,
        text: String,
        (persona, greeting, model): (Option<String>, Option<u32>, Option<String>),
        received: Instant,
    ) -> Result<Accepted, ChatError> {
        let text = self.validate_text(text)?;
        let model = model.map(|m| self.check_model(m)).transpose()?;
        let new_conversation = conversation_id.is_none();
        continuation::check_client_msg_id(&client_msg_id)?;
        if let Err(refusal) = self.check_accepting_and_rate(user).await {
            // A resend of an accepted message is answered as a duplicate,
            // even where a new message would be refused now.
            return self.duplicate_or(user, &client_msg_id, refusal).await;
        }
        let run = ReplyRun::new(&self.instance);
        let (target, reservation) = match self
            .send_target(
                user,
                &client_msg_id,
                conversation_id,
                (persona, greeting.unwrap_or(0), model),
                &text,
                &run,
            )
            .await?
        {
            SendTarget::Ready(target, reservation) => (target, reservation),
            SendTarget::Duplicate(accepted) => return Ok(accepted),
        };
        let (new_message, window) = self.user_message(
            (user, &client_msg_id),
            (target, text),
            &run,
            reservation.as_ref(),
        );
        let stored = self.store.add_user_message(new_message).await?;
        let (conversation, message, assistant, history, greeting) = match stored {
            SendOutcome::Stored {
                conversation,
                message,
                reply,
                history,
                greeting,
            } => (conversation, message, reply, history, greeting),
            SendOutcome::Duplicate {
                conversation_id,
                message_id,
            } => {
                return self
                    .accepted(user, client_msg_id, conversation_id, message_id, true)
                    .await;
            }
        };
        let reservation = self
            .slot(reservation, (&conversation.id, &assistant.id), user, &run)
            .await?;
        if new_conversation {
            // Other tabs list it.
            self.notify(user, crate::protocol::Changed::Conversations);
        }
        let history = prompt_history(
            reservation.conversation(),
            (window, history),
            &message,
            self.config.limits.history_messages,
        );
        let ids = (conversation.id.clone(), message.id.clone());
        let accepted = self
            .accepted(user, client_msg_id.clone(), ids.0, ids.1, false)
            .await?;
        if let Some(greeting) = greeting {
            reservation.conversation().publish(&ServerFrame::Message {
                conversation_id: conversation.id.clone(),
                message: greeting,
            });
        }
        reservation.conversation().publish(&ServerFrame::Message {
            conversation_id: conversation.id.clone(),
            message,
        });
        let reply = NewReply {
            user: user.clone(),
            client_msg_id,
            run,
            received,
            assistant,
            history,
            model: self.model_of(&conversation),
            shown: None,
        };
        let prompt = self
            .companions
            .prompt_source(user, &conversation.persona)
            .await;
        self.start_reply(reservation, prompt, reply, ReplyStart::Answer);
        self.metrics.message_accepted();
        Ok(accepted)
    }

    /// The store job of a `send`. A live conversation's newest messages
    /// are in memory (its prompt window, returned too): the store reads none.
    fn user_message(
        &self,
        (user, client_msg_id): (&UserId, &ClientMsgId),
        (target, text): (Target, String),
        run: &ReplyRun,
        reservation: Option<&Reservation>,
    ) -> (NewUserMessage, Option<Vec<Message>>) {
        let window = reservation.and_then(|r| r.conversation().prompt_window());
        let message = NewUserMessage {
            user_id: user.clone(),
            client_msg_id: client_msg_id.clone(),
            target,
            text,
            history: match window {
                Some(_) => 0,
                None => self.config.limits.history_messages,
            },
            run: run.clone(),
            replaces: None,
        };
        (message, window)
    }

    /// Follows `user`'s notices (one socket of theirs).
    pub fn notices(&self, user: &UserId) -> notices::NoticeSubscription {
        self.hub.notices().subscribe(user)
    }

    /// Tells every socket of `user`, on every instance, that `what` changed.
    pub fn notify(&self, user: &UserId, what: crate::protocol::Changed) {
        match &self.cluster {
            // Through Redis, back to this instance too.
            Some(cluster) => cluster.notify_user(user, what),
            None => self.hub.notices().notify(user, what),
        }
    }

    /// This instance's streams of each account session.
    pub fn live_sessions(&self) -> &Arc<crate::server::accounts::live::LiveSessions> {
        self.hub.sessions()
    }

    /// Closes the open streams of these signed-out sessions on every
    /// instance (through Redis in cluster mode, this one included).
    pub fn sign_out_streams(&self, public_ids: &[String]) {
        if public_ids.is_empty() {
            return;
        }
        match &self.cluster {
            Some(cluster) => cluster.sign_out_sessions(public_ids),
            None => {
                self.hub
                    .sessions()
                    .revoke(public_ids.iter().map(String::as_str));
            }
        }
    }

    /// The server accepts replies and the user is within rate.
    async fn check_accepting_and_rate(&self, user: &UserId) -> Result<(), ChatError> {
        self.check_accepting()?;
        self.check_rate(user).await
    }

    /// The reply slot a `send` reserved, or, for a conversation made just
    /// now (nobody else can hold its slot yet), the slot taken now.
    /// When it cannot be taken (cluster mode, Redis unreachable), the
    /// stored empty `reply` is ended as `error`: a reply that never started
    /// must not hold the conversation busy.
    async fn slot(
        &self,
        reserved: Option<Reservation>,
        (conversation_id, reply): (&ConversationId, &MessageId),
        user: &UserId,
        run: &ReplyRun,
    ) -> Result<Reservation, ChatError> {
        if let Some(reservation) = reserved {
            return Ok(reservation);
        }
        let err = match self.reserve(conversation_id, user, run).await {
            Ok(reservation) => return Ok(reservation),
            Err(err) => err,
        };
        let ended = self
            .store
            .finish_assistant(reply, &run.token, "", FinishReason::Error, None);
        if let Err(store_err) = ended.await {
            tracing::warn!(error = %store_err, "could not end a reply that never started");
        }
        Err(err)
    }

    /// Where a `send` goes: an existing conversation of the user, whose reply
    /// slot it reserves first, or a new one with the persona asked for.
    async fn send_target(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
        conversation_id: Option<ConversationId>,
        (persona, greeting, model): (Option<String>, u32, Option<String>),
        text: &str,
        run: &ReplyRun,
    ) -> Result<SendTarget, ChatError> {
        let model = model.unwrap_or_else(|| self.llm.model().to_owned());
        if let Some(id) = conversation_id {
            self.owned(user, &id).await?;
            return match self.reserve(&id, user, run).await {
                Ok(reservation) => Ok(SendTarget::Ready(Target::Existing(id), Some(reservation))),
                Err(ChatError::Busy) => self
                    .duplicate_or(user, client_msg_id, ChatError::Busy)
                    .await
                    .map(SendTarget::Duplicate),
                Err(err) => Err(err),
            };
        }
        let title = title_from(text, self.config.limits.auto_title_chars);
        let target = match self.config.persona(persona.as_deref()) {
            Some(preset) => Target::New {
                persona: preset.id.clone(),
                title,
                greeting: None,
                model,
            },
            // One of the user's own companions: its greeting comes first.
            None => {
                let id = persona.unwrap_or_default();
                let greeting = match self.companions.opening(user, &id, greeting).await {
                    Ok(greeting) => greeting,
                    Err(CompanionError::NotFound) => {
                        return Err(ChatError::BadRequest(format!("unknown companion {id:?}")))
                    }
                    Err(CompanionError::Store(err)) => return Err(err.into()),
                    Err(other) => return Err(ChatError::BadRequest(other.to_string())),
                };
                Target::New {
                    persona: id,
                    title,
                    greeting,
                    model,
                }
            }
        };
        Ok(SendTarget::Ready(target, None))
    }

    /// `regenerate`: answer the last user message again; the last reply,
    /// if any, stays as an alternative of the new one (a swipe).
    pub async fn regenerate(
        &self,
        user: &UserId,
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
        received: Instant,
    ) -> Result<Accepted, ChatError> {
        let (record, reservation, run) = match self
            .admit_rerun(user, &conversation_id, &client_msg_id)
            .await?
        {
            Rerun::Duplicate(accepted) => return Ok(accepted),
            Rerun::Admitted(record, reservation, run) => (record, reservation, run),
        };
        let (user_message, replaced, remaining) = self
            .prepare_regenerate(user, &conversation_id, &client_msg_id)
            .await?;
        let assistant = self
            .store
            .start_assistant(&conversation_id, &run, replaced.as_ref())
            .await?;
        let accepted = self
            .accepted(
                user,
                client_msg_id.clone(),
                conversation_id,
                user_message.id,
                false,
            )
            .await?;
        let reply = NewReply {
            user: user.clone(),
            client_msg_id,
            run,
            received,
            assistant,
            history: remaining,
            model: self.model_of(&record),
            shown: None,
        };
        let prompt = self.companions.prompt_source(user, &record.persona).await;
        self.start_reply(reservation, prompt, reply, ReplyStart::Replace);
        Ok(accepted)
    }

    /// The checks before a new reply in an existing conversation
    /// (`regenerate`, `continue`), in order: a `client_msg_id` seen before
    /// answers as it did then; otherwise the server accepts replies, the
    /// conversation is the user's, the user is within rate, and no reply
    /// runs in it (its slot is taken).
    async fn admit_rerun(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Rerun, ChatError> {
        if let Some(duplicate) = self.duplicate(user, client_msg_id).await? {
            return Ok(Rerun::Duplicate(duplicate));
        }
        self.check_accepting()?;
        let record = self.store.conversation(user, conversation_id).await?;
        self.check_rate(user).await?;
        let run = ReplyRun::new(&self.instance);
        let reservation = self.reserve(conversation_id, user, &run).await?;
        // It changes the stored messages otherwise than a `send` does.
        reservation.conversation().forget_prompt_window();
        Ok(Rerun::Admitted(record, reservation, run))
    }

    async fn prepare_regenerate(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        client_msg_id: &ClientMsgId,
    ) -> Result<(Message, Option<MessageId>, Vec<Message>), ChatError> {
        let mut messages = self.store.messages(conversation_id).await?;
        let replaced = match messages.last() {
            Some(last) if last.role == Role::Assistant => messages.pop().map(|m| m.id),
            _ => None,
        };
        let user_message = messages
            .last()
            .filter(|m| m.role == Role::User)
            .cloned()
            .ok_or_else(|| ChatError::BadRequest("there is no message to answer again".into()))?;
        self.store
            .record_client_message(user, client_msg_id, conversation_id, &user_message.id)
            .await?;
        Ok((user_message, replaced, messages))
    }

    /// `subscribe`: a snapshot, and the events after it.
    pub async fn subscribe(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<(ServerFrame, Subscription), ChatError> {
        self.owned(user, conversation_id).await?;
        let (events, streaming) = self.subscribe_live(conversation_id, user).await?;
        let snapshot = self.snapshot(conversation_id, streaming).await;
        match snapshot {
            Ok(frame) => Ok((
                frame,
                Subscription {
                    conversation_id: conversation_id.clone(),
                    events,
                },
            )),
            Err(err) => {
                drop(events);
                self.hub.release_if_idle(conversation_id);
                Err(err)
            }
        }
    }

    /// The conversation as a `snapshot` frame, without following it (the
    /// server-rendered page of `/c/:id`; the page subscribes once hydrated).
    pub async fn history(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<ServerFrame, ChatError> {
        self.owned(user, conversation_id).await?;
        let streaming = self.streaming_now(conversation_id).await?;
        self.snapshot(conversation_id, streaming).await
    }

    /// A subscription ended (unsubscribe, lag, or socket closed); its
    /// receiver must already be dropped.
    pub fn unsubscribed(&self, conversation_id: &ConversationId) {
        self.hub.release_if_idle(conversation_id);
    }

    /// `stop`: cancel the running reply, if any.
    pub async fn stop(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<bool, ChatError> {
        self.owned(user, conversation_id).await?;
        self.stop_anywhere(conversation_id).await
    }

    /// `list_conversations`: the user's conversations, optionally searched.
    pub async fn conversations(
        &self,
        user: &UserId,
        query: Option<String>,
    ) -> Result<ServerFrame, ChatError> {
        if query.as_ref().is_some_and(|q| q.chars().count() > 200) {
            return Err(ChatError::BadRequest(
                "search text is too long (at most 200 characters)".into(),
            ));
        }
        let records = self
            .store
            .list_conversations(user, query.as_deref())
            .await?;
        Ok(ServerFrame::Conversations {
            items: records
                .into_iter()
                .map(ConversationRecord::summary)
                .collect(),
            query,
        })
    }

    /// `rename_conversation`; answers with the fresh list.
    pub async fn rename(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        title: &str,
    ) -> Result<ServerFrame, ChatError> {
        let title = title.trim();
        let max = self.config.limits.max_title_chars;
        if title.is_empty() || title.chars().count() > max || title.contains('\0') {
            return Err(ChatError::BadRequest(format!(
                "a title has 1 to {max} characters"
            )));
        }
        self.store
            .rename_conversation(user, conversation_id, title)
            .await?;
        self.notify(user, crate::protocol::Changed::Conversations);
        self.conversations(user, None).await
    }

    /// `delete_conversation`: stops its reply, deletes it; answers with the fresh list.
    pub async fn delete(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<ServerFrame, ChatError> {
        self.owned(user, conversation_id).await?;
        self.store
            .delete_conversation(user, conversation_id)
            .await?;
        self.hub.remove(conversation_id);
        if let Some(cluster) = &self.cluster {
            cluster.stop_remote(conversation_id).await?;
        }
        self.notify(user, crate::protocol::Changed::Conversations);
        self.conversations(user, None).await
    }

    /// Whether `user` owns the conversation (the live owner is trusted first).
    async fn owned(&self, user: &UserId, id: &ConversationId) -> Result<(), ChatError> {
        if let Some(live) = self.hub.get(id) {
            return if live.owner == *user {
                Ok(())
            } else {
                Err(ChatError::NotFound)
            };
        }
        self.store.conversation(user, id).await?;
        Ok(())
    }

    async fn snapshot(
        &self,
        conversation_id: &ConversationId,
        streaming: Option<StreamingMessage>,
    ) -> Result<ServerFrame, ChatError> {
        let window::Window {
            mut messages,
            has_more,
        } = self.window(conversation_id, streaming.as_ref()).await?;
        let live = streaming.is_some()
            || self
                .hub
                .get(conversation_id)
                .is_some_and(|live| live.is_busy());
        if !live {
            // A reply whose final text could not be stored (the database
            // failed) is shown as what the next start's recovery makes of it.
            for m in &mut messages {
                if m.role == Role::Assistant && m.finish_reason.is_none() {
                    m.finish_reason = Some(FinishReason::Error);
                }
            }
        }
        Ok(ServerFrame::Snapshot {
            conversation_id: conversation_id.clone(),
            messages,
            streaming,
            has_more,
        })
    }

    /// The duplicate answer if `client_msg_id` was accepted before, else `refusal`.
    async fn duplicate_or(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
        refusal: ChatError,
    ) -> Result<Accepted, ChatError> {
        match self.duplicate(user, client_msg_id).await? {
            Some(duplicate) => Ok(duplicate),
            None => Err(refusal),
        }
    }

    /// Answer for a `client_msg_id` that was accepted before.
    async fn duplicate(
        &self,
        user: &UserId,
        client_msg_id: &ClientMsgId,
    ) -> Result<Option<Accepted>, ChatError> {
        let Some((conversation_id, message_id)) =
            self.store.find_client_message(user, client_msg_id).await?
        else {
            return Ok(None);
        };
        self.accepted(
            user,
            client_msg_id.clone(),
            conversation_id,
            message_id,
            true,
        )
        .await
        .map(Some)
    }

    async fn accepted(
        &self,
        user: &UserId,
        client_msg_id: ClientMsgId,
        conversation_id: ConversationId,
        message_id: MessageId,
        duplicate: bool,
    ) -> Result<Accepted, ChatError> {
        let (events, _) = self.subscribe_live(&conversation_id, user).await?;
        Ok(Accepted {
            frame: ServerFrame::Accepted {
                client_msg_id,
                conversation_id: conversation_id.clone(),
                message_id,
                duplicate,
            },
            subscription: Subscription {
                conversation_id,
                events,
            },
        })
    }

    /// Starts the reply task of a reserved conversation; `start` says what
    /// the open views are told first ([`ReplyStart`]).
    fn start_reply(
        &self,
        reservation: Reservation,
        prompt: PromptSource,
        reply: NewReply,
        start: ReplyStart,
    ) {
        let NewReply {
            user,
            client_msg_id,
            run,
            received,
            assistant,
            history,
            model,
            shown,
        } = reply;
        let cancel = self.stop_replies.child_token();
        let system_prompt = prompt.system_prompt(&history);
        let post_history = prompt.post_history();
        let message_id = assistant.id.clone();
        let continues = (start == ReplyStart::Continue).then(|| assistant.clone());
        let live = reservation.begin(assistant.clone(), cancel.clone());
        if start != ReplyStart::Answer {
            let window = shown.unwrap_or_else(|| {
                window::Window::of(history.clone(), self.config.limits.history_window)
            });
            live.publish(&ServerFrame::Snapshot {
                conversation_id: live.id.clone(),
                messages: window.messages,
                streaming: Some(StreamingMessage {
                    next_index: hub::first_delta_index(&assistant.content),
                    message: assistant,
                }),
                has_more: window.has_more,
            });
        }
        let job = ReplyJob {
            live,
            store: self.store.clone(),
            llm: self.llm.clone(),
            upstream_slots: self.upstream_slots.clone(),
            system_prompt,
            model,
            post_history,
            history,
            continues,
            limits: self.config.limits,
            message_id,
            run,
            client_msg_id,
            cancel,
            received,
            metrics: self.metrics.clone(),
            meter: self.meter.clone().map(|meter| (meter, user)),
        };
        self.replies.spawn(job.run(self.hub.clone()));
    }

    fn validate_text(&self, text: String) -> Result<String, ChatError> {
        if text.trim().is_empty() {
            return Err(ChatError::BadRequest("message text is empty".into()));
        }
        if text.contains('\0') {
            // Not text anyone types, and PostgreSQL cannot store it.
            return Err(ChatError::BadRequest(
                "message text contains a NUL character (U+0000)".into(),
            ));
        }
        let max = self.config.limits.max_message_chars;
        let chars = text.chars().count();
        if chars > max {
            return Err(ChatError::TooLarge { chars, max });
        }
        Ok(text)
    }

    fn check_address_rate(&self, from: AddrKey) -> Result<(), ChatError> {
        self.address_rate
            .check(&from, Instant::now())
            .map_err(|wait| {
                self.metrics.address_limited(AddressLimit::Sends);
                ChatError::AddressRateLimited {
                    retry_after_ms: wait.as_millis().max(1) as u64,
                }
            })
    }

    fn check_accepting(&self) -> Result<(), ChatError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            Err(ChatError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Shutdown, step 1: refuse new replies and wait up to `grace` for the running ones.
    /// Step 2: stop the rest (their partial text is stored) and wait for them.
    pub async fn drain(&self, grace: std::time::Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.replies.close();
        if tokio::time::timeout(grace, self.replies.wait())
            .await
            .is_err()
        {
            tracing::info!(
                running = self.replies.len(),
                "shutdown grace over, stopping replies"
            );
            self.stop_replies.cancel();
            self.replies.wait().await;
        }
        if let Some(cluster) = &self.cluster {
            cluster.shutdown().await;
        }
    }
}

/// The history a `send`'s prompt is built from (at most `cap` messages):
/// the live conversation's prompt window with the new `message`, kept up
/// to date; or when it had none, what the store read (`stored`, the new
/// message last), which becomes the window.
fn prompt_history(
    live: &hub::LiveConversation,
    (window, stored): (Option<Vec<Message>>, Vec<Message>),
    message: &Message,
    cap: usize,
) -> Vec<Message> {
    let Some(mut window) = window else {
        live.keep_prompt_window(&stored, cap);
        return stored;
    };
    live.extend_prompt_window(message.clone());
    window.push(message.clone());
    if window.len() > cap {
        window.remove(0);
    }
    window
}

/// A short conversation title from its first message: its first line, at
/// most `max` characters (`AUTO_TITLE_CHARS`).
fn title_from(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("New chat");
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_first_line_and_short() {
        assert_eq!(title_from("\n  Hello there \nmore", 48), "Hello there");
        let long = "a".repeat(100);
        assert_eq!(title_from(&long, 48).chars().count(), 48);
        assert!(title_from(&long, 48).ends_with('…'));
    }
}
