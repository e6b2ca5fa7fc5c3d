//! One WebSocket connection: frames in, frames out, nothing else.
//!
//! A single task owns the socket. It reads client frames and hands them to the
//! chat core, writes the answers, forwards the events of every subscribed
//! conversation, pings the peer and closes with 1001 at shutdown. Because one
//! task does all writing, frames can never interleave (the Go prototype
//! crashed on concurrent writes). Every refusal is an `error` frame and the
//! socket stays usable.

use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures::{FutureExt, SinkExt, StreamExt};
use tracing::Instrument;

use crate::{
    protocol::{Changed, ClientFrame, ConversationId, ErrorCode, ServerFrame, UserId},
    server::{
        access::{
            address::AddrKey,
            admission::{Crowded, StreamPermit},
        },
        accounts::live::{self, Watch},
        chat::{hub::Event, notices::NoticeSubscription, Answer, Subscription},
        metrics::OpenSocket,
        state::AppState,
        ws::{
            decode::decode_client_frame,
            flood::{FloodGuard, Verdict},
            following::Following,
        },
    },
};

/// What one read of the socket gives.
type Incoming = Option<Result<WsMessage, axum::Error>>;

/// Most queued conversation events written before one flush.
const FORWARD_BATCH: usize = 64;

/// Why the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// The peer closed or vanished.
    PeerGone,
    /// A write failed or did not finish within `WRITE_TIMEOUT_SECS`: the
    /// peer is gone or not reading.
    WriteFailed,
    /// A frame exceeded the hard size cap.
    TooLarge,
    /// The user holds the most sockets allowed; this one was told and closed.
    Crowded,
    /// The peer kept sending frames over its budget after being told.
    Flood,
    /// The server is shutting down.
    Shutdown,
    /// The socket's session was signed out (on another device, by an
    /// admin, by a password change).
    SignedOut,
}

/// The connection's state.
pub struct Connection {
    socket: WebSocket,
    state: AppState,
    user: UserId,
    /// The client's address, for the per-address send rate.
    from: AddrKey,
    subscriptions: Following,
    /// The user's notices (changes outside any conversation).
    notices: NoticeSubscription,
    last_seen: Instant,
    flood: FloodGuard,
    /// Cancelled when the socket's session is signed out (`None`: a guest
    /// or a proxy's user, never signed out).
    session: Option<Watch>,
    /// Held while the connection lives: its place under `MAX_CONNECTIONS`
    /// and `MAX_SOCKETS_PER_USER` (or why it has none, which it says and
    /// closes), and its count in `/metrics`.
    admitted: Result<StreamPermit, Crowded>,
    _open: OpenSocket,
}

impl Connection {
    pub fn new(
        socket: WebSocket,
        state: AppState,
        (user, from): (UserId, AddrKey),
        admitted: Result<StreamPermit, Crowded>,
        session: Option<Watch>,
    ) -> Self {
        let open = state.metrics.socket_opened();
        let now = Instant::now();
        Self {
            flood: FloodGuard::new(&state.config.limits, now),
            subscriptions: Following::new(state.config.limits.max_subscriptions_per_socket),
            notices: state.chat.notices(&user),
            socket,
            state,
            user,
            from,
            last_seen: now,
            admitted,
            session,
            _open: open,
        }
    }

    /// Serves the connection until it closes.
    ///
    /// A plain function returning an `async move` block, not an `async fn`:
    /// an `async fn` moves its argument into a local of its own and keeps
    /// both, so the connection would be stored twice in the future, and
    /// every byte of this future is memory each idle socket pays for.
    pub fn run(mut self) -> impl std::future::Future<Output = ()> + Send {
        let span = tracing::info_span!("connection", user_id = %self.user);
        async move {
            tracing::debug!("connected");
            let exit = self.serve().await;
            let (code, reason) = match exit {
                Exit::PeerGone | Exit::WriteFailed | Exit::Crowded => (None, ""),
                Exit::TooLarge => (Some(close_code::SIZE), "frame too large"),
                Exit::Flood => (Some(close_code::POLICY), "too many frames"),
                Exit::Shutdown => (Some(close_code::AWAY), "server shutting down"),
                Exit::SignedOut => (Some(close_code::POLICY), "signed out"),
            };
            if let Some(code) = code {
                let close = WsMessage::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }));
                let timeout = self.state.config.limits.write_timeout;
                let _ = Box::pin(tokio::time::timeout(timeout, self.socket.send(close))).await;
            }
            self.release_all();
            tracing::debug!(?exit, "disconnected");
        }
        .instrument(span)
    }

    /// Writes the user's notices (`changed`).
    async fn tell(&mut self, changed: Vec<Changed>) -> Result<(), Exit> {
        for what in changed {
            self.send(&ServerFrame::Changed { what }).await?;
        }
        Ok(())
    }

    /// Sends `hello` (or refuses an extra socket). Nothing is stored for a
    /// socket: the user's row is written with their first message, so an
    /// open tab costs no database write and no page cache.
    async fn greet(&mut self) -> Result<(), Exit> {
        if let Err(crowded) = &self.admitted {
            let refusal = crowded.to_frame();
            self.send(&refusal).await?;
            let close = WsMessage::Close(Some(CloseFrame {
                code: close_code::POLICY,
                reason: "too many connections".into(),
            }));
            let _ = self.socket.send(close).await;
            return Err(Exit::Crowded);
        }
        let hello = self.state.chat.hello(&self.user);
        self.send(&hello).await
    }

    async fn serve(&mut self) -> Exit {
        // Boxed for the same reason as the frame handlers: run once, large.
        if let Err(exit) = Box::pin(self.greet()).await {
            return exit;
        }
        let ping_every = self.state.config.ws_ping_interval;
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let shutdown = self.state.close_sockets.clone();
        loop {
            let turn = tokio::select! {
                incoming = self.socket.recv() => {
                    let received = Instant::now();
                    self.last_seen = received;
                    match self.budget(incoming, received) {
                        Ok(incoming) => Box::pin(self.on_message(incoming, received)).await,
                        Err(over) => Box::pin(self.over_budget(over)).await,
                    }
                }
                Some((conversation_id, event)) = self.subscriptions.next(), if !self.subscriptions.is_empty() => {
                    match event {
                        // Boxed like every write below: a write's future is
                        // larger than the wait itself, and the wait is the
                        // state an idle socket stays in.
                        Ok(event) if !event.is_resync() => Box::pin(self.forward(event)).await,
                        // Lagged, or told events were missed (cluster mode).
                        _ => Box::pin(self.resync(conversation_id)).await,
                    }
                }
                changed = self.notices.recv() => Box::pin(self.tell(changed)).await,
                _ = ping.tick() => {
                    if self.last_seen.elapsed() > ping_every * 2 {
                        tracing::info!("peer stopped answering pings");
                        Err(Exit::PeerGone)
                    } else {
                        Box::pin(self.write(WsMessage::Ping(Default::default()))).await
                    }
                }
                _ = shutdown.cancelled() => Box::pin(self.drain()).await,
                () = live::signed_out(self.session.as_ref()) => {
                    tracing::info!("closing a socket whose session was signed out");
                    Err(Exit::SignedOut)
                }
            };
            if let Err(exit) = turn {
                return exit;
            }
        }
    }

    /// A message that counts against the frame budget (any but `Close`)
    /// passes it first; a closed or broken socket is never over budget.
    fn budget(&mut self, incoming: Incoming, now: Instant) -> Result<Incoming, Verdict> {
        if let Some(Ok(message)) = &incoming {
            if !matches!(message, WsMessage::Close(_)) {
                match self.flood.frame(now) {
                    Verdict::Pass => {}
                    over => return Err(over),
                }
            }
        }
        Ok(incoming)
    }

    /// A frame over budget is dropped unread: the first of a run is
    /// answered with `rate_limited`, a long run closes the socket.
    async fn over_budget(&mut self, verdict: Verdict) -> Result<(), Exit> {
        match verdict {
            Verdict::Pass | Verdict::Drop => Ok(()),
            Verdict::Refuse => {
                let refusal = ServerFrame::error(ErrorCode::RateLimited, self.flood.reason());
                self.send(&refusal).await
            }
            Verdict::Close => {
                tracing::info!(client = %self.from, "closing a socket that floods frames");
                self.state.metrics.flood_disconnect();
                Err(Exit::Flood)
            }
        }
    }

    /// What the socket read, within budget.
    async fn on_message(&mut self, incoming: Incoming, received: Instant) -> Result<(), Exit> {
        match incoming {
            None | Some(Ok(WsMessage::Close(_))) => Err(Exit::PeerGone),
            Some(Err(err)) => {
                tracing::debug!(error = %err, "socket error");
                Err(if is_capacity_error(&err) {
                    Exit::TooLarge
                } else {
                    Exit::PeerGone
                })
            }
            Some(Ok(WsMessage::Text(text))) => self.on_text(text.as_str(), received).await,
            Some(Ok(WsMessage::Binary(_))) => {
                self.send(&ServerFrame::error(
                    ErrorCode::BadRequest,
                    "binary frames are not supported; send JSON text frames",
                ))
                .await
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Ok(()),
        }
    }

    /// Shutting down. Replies were finished before sockets are closed:
    /// deliver every event already queued (their `done`s) first.
    async fn drain(&mut self) -> Result<(), Exit> {
        while let Some(Some((_, Ok(event)))) = self.subscriptions.next().now_or_never() {
            self.write(WsMessage::Text(event.json().clone())).await?;
        }
        Err(Exit::Shutdown)
    }

    /// One text frame: parsed here, its meaning is the chat core's.
    async fn on_text(&mut self, text: &str, received: Instant) -> Result<(), Exit> {
        let max = self.state.config.limits.max_frame_bytes;
        let frame = match decode_client_frame(text, max) {
            Ok(frame) => frame,
            Err(refusal) => return self.send(&refusal).await,
        };
        let chat = self.state.chat.clone();
        match chat.handle(&self.user, self.from, frame, received).await {
            Ok(answer) => self.apply(answer).await,
            Err(refused) => self.send(&refused.to_frame()).await,
        }
    }

    /// Writes the chat core's answer and follows what it says to follow.
    async fn apply(&mut self, answer: Answer) -> Result<(), Exit> {
        match answer {
            Answer::Nothing => Ok(()),
            Answer::Frame(frame) => self.send(&frame).await,
            Answer::Accepted(accepted) => {
                self.follow_keeping(accepted.subscription);
                // `accepted`, and behind it what is already queued (the
                // user's `message`), leave in one write.
                self.feed(WsMessage::Text(Utf8Bytes::from(accepted.frame.to_json())))
                    .await?;
                self.forward_queued().await
            }
            Answer::Subscribed {
                snapshot,
                subscription,
            } => {
                self.send(&snapshot).await?;
                self.follow(subscription);
                Ok(())
            }
            Answer::Unfollow {
                conversation_id,
                then,
            } => {
                if self.subscriptions.remove(&conversation_id) {
                    self.state.chat.unsubscribed(&conversation_id);
                }
                match then {
                    Some(frame) => self.send(&frame).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Follows a conversation after a snapshot (see [`Following::follow`]).
    fn follow(&mut self, subscription: Subscription) {
        let evicted = self.subscriptions.follow(subscription);
        self.unfollowed(evicted);
    }

    /// Follows a conversation a reply just started in (`send`,
    /// `regenerate`, `continue`; see [`Following::follow_keeping`]).
    fn follow_keeping(&mut self, subscription: Subscription) {
        let evicted = self.subscriptions.follow_keeping(subscription);
        self.unfollowed(evicted);
    }

    /// A conversation dropped to stay within `MAX_SUBSCRIPTIONS_PER_SOCKET`.
    fn unfollowed(&self, evicted: Option<ConversationId>) {
        if let Some(id) = evicted {
            tracing::debug!(conversation_id = %id, "stopped following the least recently used conversation");
            self.state.chat.unsubscribed(&id);
        }
    }

    /// A subscriber fell too far behind: start over from a fresh snapshot.
    async fn resync(&mut self, conversation_id: ConversationId) -> Result<(), Exit> {
        tracing::info!(conversation_id = %conversation_id, "subscriber lagged, resyncing");
        self.subscriptions.remove(&conversation_id);
        let chat = self.state.chat.clone();
        chat.unsubscribed(&conversation_id);
        let subscribe = ClientFrame::Subscribe { conversation_id };
        match chat
            .handle(&self.user, self.from, subscribe, Instant::now())
            .await
        {
            Ok(answer) => self.apply(answer).await,
            Err(refused) => self.send(&refused.to_frame()).await,
        }
    }

    fn release_all(&mut self) {
        let chat = self.state.chat.clone();
        for id in self.subscriptions.clear() {
            chat.unsubscribed(&id);
        }
    }

    /// Writes a frame of this connection's own (every refusal goes through
    /// here); conversation events arrive serialised and are forwarded as they are.
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Exit> {
        if let ServerFrame::Error { code, .. } = frame {
            self.state.metrics.refused(*code);
        }
        self.write(WsMessage::Text(Utf8Bytes::from(frame.to_json())))
            .await
    }

    /// Writes `first` and every event already queued behind it (at most
    /// [`FORWARD_BATCH`]), then flushes once. Under load one write to the
    /// kernel carries many frames; when idle this is one frame, one flush.
    async fn forward(&mut self, first: Event) -> Result<(), Exit> {
        self.feed(WsMessage::Text(first.json().clone())).await?;
        self.forward_queued().await
    }

    /// Writes the events already queued (at most [`FORWARD_BATCH`]), then
    /// flushes once.
    async fn forward_queued(&mut self) -> Result<(), Exit> {
        for _ in 1..FORWARD_BATCH {
            match self.subscriptions.next().now_or_never() {
                Some(Some((_, Ok(event)))) if !event.is_resync() => {
                    self.feed(WsMessage::Text(event.json().clone())).await?
                }
                Some(Some((conversation_id, _lagged_or_resync))) => {
                    self.flush().await?;
                    return Box::pin(self.resync(conversation_id)).await;
                }
                Some(None) | None => break,
            }
        }
        self.flush().await
    }

    async fn write(&mut self, message: WsMessage) -> Result<(), Exit> {
        let timeout = self.state.config.limits.write_timeout;
        bounded(timeout, self.socket.send(message)).await
    }

    /// Queues a frame without flushing (see [`Self::forward`]).
    async fn feed(&mut self, message: WsMessage) -> Result<(), Exit> {
        let timeout = self.state.config.limits.write_timeout;
        bounded(timeout, self.socket.feed(message)).await
    }

    async fn flush(&mut self) -> Result<(), Exit> {
        let timeout = self.state.config.limits.write_timeout;
        bounded(timeout, self.socket.flush()).await
    }
}

/// A write that fails or takes longer than `timeout` (`WRITE_TIMEOUT_SECS`)
/// ends the connection: the peer is gone or not reading.
async fn bounded(
    timeout: Duration,
    io: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), Exit> {
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(Exit::WriteFailed),
    }
}

/// tungstenite reports an oversized frame or message as a capacity error
/// (axum wraps it; it is the error's source).
fn is_capacity_error(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}
