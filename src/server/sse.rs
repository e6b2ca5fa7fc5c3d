//! The HTTP streaming transport: Server-Sent Events beside the WebSocket.
//!
//! * `POST /api/chat` takes the fields of a `send` frame as a JSON body,
//!   calls the same [`ChatService::send`] a WebSocket `send` does and streams
//!   the reply's frames until its `done`.
//! * `GET /api/conversations/{id}/events` is the WebSocket `subscribe`: a
//!   `snapshot`, then the live events until the running reply's `done`.
//! * `GET /api/hello` and `POST /api/frame` (any client frame) are the
//!   browser's fallback when its WebSocket cannot be opened: the whole
//!   protocol over plain requests, the streaming frames as above.
//!
//! Nothing here knows chat rules. The checks before the chat core are the
//! WebSocket upgrade's ([`super::access`]); the frames come from the same
//! per-conversation hub, byte for byte what a subscribed socket receives, and
//! every guarantee of `docs/protocol.md` (contiguous deltas, snapshot then
//! exactly the deltas from `next_index`, resync with a fresh `snapshot` after
//! lagging) holds unchanged. Each SSE event is named after the frame's `type`,
//! carries the frame's JSON as `data`, and has a stable `id`
//! (`<message_id>:<index>` for a `delta`). A refusal before anything was
//! streamed is an HTTP status with the `error` frame as a JSON body; a failure
//! during the stream is an `error` event, as on the socket.

use std::{convert::Infallible, sync::Arc, time::Instant};

use axum::{
    body::{to_bytes, Body},
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use futures::{stream, StreamExt};
use tokio::sync::{broadcast::error::RecvError, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::{
    access::{check_origin_and_identity, check_read_access},
    chat::{hub::EventRx, limits::SocketSlot, Accepted, ChatError, ChatService, Subscription},
    state::AppState,
};
use crate::protocol::{
    ClientFrame, ClientMsgId, ConversationId, ErrorCode, MessageId, SendRequest, ServerFrame,
    UserId,
};

/// `POST /api/chat`: store a user message and stream the reply.
pub async fn chat(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let received = Instant::now();
    let user = match check_origin_and_identity(&state, &headers) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    match read_json::<SendRequest>(&state, &headers, body).await {
        Ok(request) => stream_send(&state, user, request, received).await,
        Err(response) => response,
    }
}

/// `GET /api/conversations/{id}/events`: a snapshot, then the running reply.
pub async fn events(
    State(state): State<AppState>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = match check_read_access(&state, &headers) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    let seen = last_event_id(&headers);
    stream_subscribe(&state, user, ConversationId::from(conversation_id), seen).await
}

/// `GET /api/hello`: the `hello` a WebSocket would send first. The browser's
/// HTTP fallback starts here.
pub async fn hello(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match check_read_access(&state, &headers) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    json_frame(&state.chat.hello(&user))
}

/// `POST /api/frame`: any client frame over HTTP, for a browser whose
/// WebSocket cannot be opened. `send`, `regenerate` and `subscribe` answer
/// with an event stream exactly as `/api/chat` and `/events` do; the others
/// with their one answer frame as JSON, or `204` when the socket would send
/// nothing.
pub async fn frame(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let received = Instant::now();
    let user = match check_origin_and_identity(&state, &headers) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    let frame = match read_json::<ClientFrame>(&state, &headers, body).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let chat = &state.chat;
    match frame {
        ClientFrame::Send {
            client_msg_id,
            conversation_id,
            text,
            persona,
        } => {
            let request = SendRequest {
                client_msg_id,
                conversation_id,
                text,
                persona,
            };
            stream_send(&state, user, request, received).await
        }
        ClientFrame::Regenerate {
            conversation_id,
            client_msg_id,
        } => {
            let permit = match stream_permit(&state, &user) {
                Ok(permit) => permit,
                Err(refusal) => return *refusal,
            };
            let regenerated = chat
                .regenerate(
                    &user,
                    conversation_id.clone(),
                    client_msg_id.clone(),
                    received,
                )
                .await;
            match regenerated {
                Ok(accepted) => stream_accepted(&state, user, accepted, permit).await,
                Err(err) => refuse(&state, &err, Some(client_msg_id), Some(conversation_id)),
            }
        }
        ClientFrame::Subscribe { conversation_id } => {
            stream_subscribe(&state, user, conversation_id, None).await
        }
        // A stream ends with its reply; there is nothing to leave.
        ClientFrame::Unsubscribe { .. } => StatusCode::NO_CONTENT.into_response(),
        ClientFrame::Stop { conversation_id } => match chat.stop(&user, &conversation_id).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(err) => refuse(&state, &err, None, Some(conversation_id)),
        },
        ClientFrame::Ping { nonce } => json_frame(&ServerFrame::Pong { nonce }),
        ClientFrame::ListConversations { query } => {
            answer(&state, chat.conversations(&user, query).await, None)
        }
        ClientFrame::RenameConversation {
            conversation_id,
            title,
        } => {
            let renamed = chat.rename(&user, &conversation_id, &title).await;
            answer(&state, renamed, Some(conversation_id))
        }
        ClientFrame::DeleteConversation { conversation_id } => {
            let deleted = chat.delete(&user, &conversation_id).await;
            answer(&state, deleted, Some(conversation_id))
        }
    }
}

/// Stores the message and streams `accepted`, then the reply.
async fn stream_send(
    state: &AppState,
    user: UserId,
    request: SendRequest,
    received: Instant,
) -> Response {
    let permit = match stream_permit(state, &user) {
        Ok(permit) => permit,
        Err(refusal) => return *refusal,
    };
    let SendRequest {
        client_msg_id,
        conversation_id,
        text,
        persona,
    } = request;
    let sent = state
        .chat
        .send(
            &user,
            client_msg_id.clone(),
            conversation_id.clone(),
            text,
            persona,
            received,
        )
        .await;
    match sent {
        Ok(accepted) => stream_accepted(state, user, accepted, permit).await,
        Err(err) => refuse(state, &err, Some(client_msg_id), conversation_id),
    }
}

/// `accepted`, then the reply it started; for a duplicate, `accepted` and a
/// snapshot (the original reply may be long over), then the reply if it runs.
async fn stream_accepted(
    state: &AppState,
    user: UserId,
    accepted: Accepted,
    permit: StreamPermit,
) -> Response {
    let duplicate = matches!(
        accepted.frame,
        ServerFrame::Accepted {
            duplicate: true,
            ..
        }
    );
    let first = sse_event(&accepted.frame, &accepted.frame.to_json());
    if !duplicate {
        let follow = Follow::new(state, user, accepted.subscription, None, permit);
        return respond(vec![first], follow);
    }
    let client_msg_id = match &accepted.frame {
        ServerFrame::Accepted { client_msg_id, .. } => Some(client_msg_id.clone()),
        _ => None,
    };
    let conversation_id = accepted.subscription.conversation_id.clone();
    let resumed = Follow::subscribe(state, user, conversation_id.clone(), None, permit).await;
    drop(accepted.subscription);
    state.chat.unsubscribed(&conversation_id);
    match resumed {
        Ok((snapshot, follow)) => respond(vec![first, snapshot], follow),
        Err(err) => refuse(state, &err, client_msg_id, Some(conversation_id)),
    }
}

/// A snapshot, then the running reply (from after `seen`, if given).
async fn stream_subscribe(
    state: &AppState,
    user: UserId,
    conversation_id: ConversationId,
    seen: Option<(MessageId, u64)>,
) -> Response {
    let permit = match stream_permit(state, &user) {
        Ok(permit) => permit,
        Err(refusal) => return *refusal,
    };
    match Follow::subscribe(state, user, conversation_id.clone(), seen, permit).await {
        Ok((snapshot, follow)) => respond(vec![snapshot], follow),
        Err(err) => refuse(state, &err, None, Some(conversation_id)),
    }
}

/// One answer frame as JSON, or the refusal.
fn answer(
    state: &AppState,
    answered: Result<ServerFrame, ChatError>,
    conversation_id: Option<ConversationId>,
) -> Response {
    match answered {
        Ok(frame) => json_frame(&frame),
        Err(err) => refuse(state, &err, None, conversation_id),
    }
}

fn json_frame(frame: &ServerFrame) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        frame.to_json(),
    )
        .into_response()
}

/// Checks the content type and the size, then parses the body.
async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(error_response(
            state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServerFrame::error(
                ErrorCode::BadRequest,
                "the body must be JSON (Content-Type: application/json)",
            ),
        ));
    }
    let max = state.config.limits.max_frame_bytes;
    // Over the limit (or a body that broke off): refused without reading on.
    let Ok(bytes) = to_bytes(body, max).await else {
        return Err(error_response(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerFrame::error(
                ErrorCode::TooLarge,
                format!("the body is over the limit of {max} bytes"),
            ),
        ));
    };
    serde_json::from_slice(&bytes).map_err(|err| {
        let mut reason = err.to_string();
        reason.truncate(200);
        error_response(
            state,
            StatusCode::BAD_REQUEST,
            ServerFrame::error(ErrorCode::BadRequest, format!("invalid body: {reason}")),
        )
    })
}

/// What an open stream holds, like a socket: one of the `MAX_CONNECTIONS`
/// permits and one of the user's `MAX_SOCKETS_PER_USER` slots.
struct StreamPermit {
    _connection: OwnedSemaphorePermit,
    _user_slot: SocketSlot,
}

fn stream_permit(state: &AppState, user: &UserId) -> Result<StreamPermit, Box<Response>> {
    let Ok(connection) = state.connection_permits.clone().try_acquire_owned() else {
        return Err(Box::new(error_response(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            ServerFrame::error(
                ErrorCode::Busy,
                "the server holds its maximum number of connections",
            ),
        )));
    };
    let Some(user_slot) = state.sockets.open(user) else {
        let max = state.sockets.max_per_user();
        return Err(Box::new(error_response(
            state,
            StatusCode::TOO_MANY_REQUESTS,
            ServerFrame::error(
                ErrorCode::RateLimited,
                format!("too many open connections for this user (at most {max}); close a tab"),
            ),
        )));
    };
    Ok(StreamPermit {
        _connection: connection,
        _user_slot: user_slot,
    })
}

/// The HTTP status of a refusal of the chat core.
fn status_of(err: &ChatError) -> StatusCode {
    match err {
        ChatError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ChatError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ChatError::NotFound => StatusCode::NOT_FOUND,
        ChatError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ChatError::Busy => StatusCode::CONFLICT,
        ChatError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ChatError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal of the chat core, before anything was streamed.
fn refuse(
    state: &AppState,
    err: &ChatError,
    client_msg_id: Option<ClientMsgId>,
    conversation_id: Option<ConversationId>,
) -> Response {
    if let ChatError::Internal(source) = err {
        tracing::error!(error = %source, "request failed");
    }
    error_response(
        state,
        status_of(err),
        err.to_frame(client_msg_id, conversation_id),
    )
}

/// `status` with the `error` frame as a JSON body, and `Retry-After` (whole
/// seconds, rounded up) when the frame has `retry_after_ms`.
fn error_response(state: &AppState, status: StatusCode, frame: ServerFrame) -> Response {
    let mut retry_after = None;
    if let ServerFrame::Error {
        code,
        retry_after_ms,
        ..
    } = &frame
    {
        state.metrics.refused(*code);
        retry_after = *retry_after_ms;
    }
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        frame.to_json(),
    )
        .into_response();
    if let Some(ms) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
    }
    response
}

/// `Last-Event-ID: <message_id>:<index>` (a `delta`'s id); any other id is ignored.
fn last_event_id(headers: &HeaderMap) -> Option<(MessageId, u64)> {
    let value = headers.get("last-event-id")?.to_str().ok()?;
    let (message_id, index) = value.trim().rsplit_once(':')?;
    Some((MessageId::from(message_id), index.parse().ok()?))
}

/// The SSE response: the first events, then the followed conversation's.
fn respond(first: Vec<SseEvent>, follow: Follow) -> Response {
    let live = stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((event, follow))
    });
    let events = stream::iter(first).chain(live).map(Ok::<_, Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Reverse proxies (nginx) must pass events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One frame as an SSE event: named after its `type`, with its JSON as data.
fn sse_event(frame: &ServerFrame, json: &str) -> SseEvent {
    let (name, id) = event_name_and_id(frame);
    let event = SseEvent::default().event(name).data(json);
    // Ids are built from server-made ids; the check only keeps `id` from panicking.
    match id {
        Some(id) if !id.contains(['\n', '\r', '\0']) => event.id(id),
        _ => event,
    }
}

/// The event name (the frame's `type`) and a stable event id.
fn event_name_and_id(frame: &ServerFrame) -> (&'static str, Option<String>) {
    match frame {
        ServerFrame::Hello { .. } => ("hello", None),
        ServerFrame::Accepted { message_id, .. } => {
            ("accepted", Some(format!("{message_id}:accepted")))
        }
        ServerFrame::Snapshot {
            conversation_id, ..
        } => ("snapshot", Some(format!("{conversation_id}:snapshot"))),
        ServerFrame::Message { message, .. } => {
            ("message", Some(format!("{}:message", message.id)))
        }
        ServerFrame::Delta {
            message_id, index, ..
        } => ("delta", Some(format!("{message_id}:{index}"))),
        ServerFrame::Done { message_id, .. } => ("done", Some(format!("{message_id}:done"))),
        ServerFrame::Error {
            conversation_id, ..
        } => (
            "error",
            conversation_id.as_ref().map(|id| format!("{id}:error")),
        ),
        ServerFrame::Pong { .. } => ("pong", None),
        ServerFrame::Conversations { .. } => ("conversations", None),
    }
}

/// Follows one conversation's events until a reply's `done`.
///
/// Dropping it ends the subscription (the reply itself runs on).
struct Follow {
    chat: Arc<ChatService>,
    user: UserId,
    conversation_id: ConversationId,
    events: Option<EventRx>,
    shutdown: CancellationToken,
    /// Deltas of this message up to this index are skipped (`Last-Event-ID`).
    seen: Option<(MessageId, u64)>,
    /// Shutting down: only the events already queued are still sent.
    draining: bool,
    ended: bool,
    _permit: StreamPermit,
}

impl Follow {
    fn new(
        state: &AppState,
        user: UserId,
        subscription: Subscription,
        seen: Option<(MessageId, u64)>,
        permit: StreamPermit,
    ) -> Self {
        Self {
            chat: state.chat.clone(),
            user,
            conversation_id: subscription.conversation_id,
            events: Some(subscription.events),
            shutdown: state.close_sockets.clone(),
            seen,
            draining: false,
            ended: false,
            _permit: permit,
        }
    }

    /// The WebSocket `subscribe`: the snapshot event, and the follower; it
    /// ends right away when no reply is streaming.
    async fn subscribe(
        state: &AppState,
        user: UserId,
        conversation_id: ConversationId,
        seen: Option<(MessageId, u64)>,
        permit: StreamPermit,
    ) -> Result<(SseEvent, Follow), ChatError> {
        let (snapshot, subscription) = state.chat.subscribe(&user, &conversation_id).await?;
        let mut follow = Follow::new(state, user, subscription, seen, permit);
        follow.ended = !is_streaming(&snapshot);
        Ok((sse_event(&snapshot, &snapshot.to_json()), follow))
    }

    /// The next event to send; `None` ends the response.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if self.ended {
                return None;
            }
            let events = self.events.as_mut()?;
            let received = if self.draining {
                Ok(events.try_recv().ok()?)
            } else {
                tokio::select! {
                    received = events.recv() => received,
                    () = self.shutdown.cancelled() => {
                        // Replies were finished before streams are closed:
                        // deliver what is queued (their `done`s), then end.
                        self.draining = true;
                        continue;
                    }
                }
            };
            let received = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => return Some(self.resync().await),
                Err(RecvError::Closed) => return None,
            };
            let Ok(frame) = serde_json::from_str::<ServerFrame>(received.as_str()) else {
                continue;
            };
            if self.already_seen(&frame) {
                continue;
            }
            if matches!(frame, ServerFrame::Done { .. }) {
                self.ended = true;
            }
            return Some(sse_event(&frame, received.as_str()));
        }
    }

    fn already_seen(&self, frame: &ServerFrame) -> bool {
        already_seen(self.seen.as_ref(), frame)
    }

    /// Fell too far behind: start over from a fresh snapshot, as a socket does.
    async fn resync(&mut self) -> SseEvent {
        tracing::info!(conversation_id = %self.conversation_id, "SSE subscriber lagged, resyncing");
        self.events = None;
        self.chat.unsubscribed(&self.conversation_id);
        match self.chat.subscribe(&self.user, &self.conversation_id).await {
            Ok((snapshot, subscription)) => {
                self.events = Some(subscription.events);
                self.ended = !is_streaming(&snapshot);
                sse_event(&snapshot, &snapshot.to_json())
            }
            Err(err) => {
                self.ended = true;
                let frame = err.to_frame(None, Some(self.conversation_id.clone()));
                sse_event(&frame, &frame.to_json())
            }
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if self.events.take().is_some() {
            self.chat.unsubscribed(&self.conversation_id);
        }
    }
}

/// A `delta` of the `Last-Event-ID` message at or before its index.
fn already_seen(seen: Option<&(MessageId, u64)>, frame: &ServerFrame) -> bool {
    match (frame, seen) {
        (
            ServerFrame::Delta {
                message_id, index, ..
            },
            Some((seen_id, seen_index)),
        ) => message_id == seen_id && index <= seen_index,
        _ => false,
    }
}

fn is_streaming(snapshot: &ServerFrame) -> bool {
    matches!(
        snapshot,
        ServerFrame::Snapshot {
            streaming: Some(_),
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(last_event_id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "last-event-id",
            HeaderValue::from_str(last_event_id).expect("header"),
        );
        headers
    }

    fn delta(message_id: &str, index: u64) -> ServerFrame {
        ServerFrame::Delta {
            conversation_id: "c".into(),
            message_id: message_id.into(),
            index,
            text: "x".into(),
        }
    }

    #[test]
    fn last_event_id_is_a_delta_id_or_nothing() {
        assert_eq!(
            last_event_id(&headers("m-1:7")),
            Some((MessageId::from("m-1"), 7))
        );
        assert_eq!(
            last_event_id(&headers("a:b:3")),
            Some((MessageId::from("a:b"), 3))
        );
        for other in [
            "m-1:done",
            "m-1:accepted",
            "m-1",
            "",
            ":",
            "m:-1",
            "m:99999999999999999999999",
        ] {
            assert_eq!(last_event_id(&headers(other)), None, "{other:?}");
        }
        assert_eq!(last_event_id(&HeaderMap::new()), None);
    }

    #[test]
    fn only_deltas_of_that_message_up_to_that_index_are_skipped() {
        let seen = (MessageId::from("m"), 4);
        assert!(already_seen(Some(&seen), &delta("m", 0)));
        assert!(already_seen(Some(&seen), &delta("m", 4)));
        assert!(!already_seen(Some(&seen), &delta("m", 5)));
        assert!(!already_seen(Some(&seen), &delta("other", 0)));
        assert!(!already_seen(None, &delta("m", 0)));
        let done = ServerFrame::Done {
            conversation_id: "c".into(),
            message_id: "m".into(),
            finish_reason: crate::protocol::FinishReason::Stop,
            usage: None,
            ttft_ms: None,
            total_ms: 1.0,
        };
        assert!(!already_seen(Some(&seen), &done));
    }

    #[test]
    fn events_are_named_by_type_with_stable_ids() {
        assert_eq!(
            event_name_and_id(&delta("m", 3)),
            ("delta", Some("m:3".to_owned()))
        );
        let refusal = ServerFrame::error(ErrorCode::Busy, "busy");
        assert_eq!(event_name_and_id(&refusal), ("error", None));
    }
}
