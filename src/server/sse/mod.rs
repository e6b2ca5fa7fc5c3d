//! The HTTP streaming transport: Server-Sent Events beside the WebSocket.
//!
//! * `POST /api/chat` takes the fields of a `send` frame as a JSON body,
//!   calls the same [`ChatService::send`] a WebSocket `send` does and streams
//!   the reply's frames until its `done`.
//! * `GET /api/conversations/{id}/events` is the WebSocket `subscribe`: a
//!   `snapshot`, then the live events until the running reply's `done`.
//! * `GET /api/conversations/{id}/messages` is the `history` frame: a page
//!   of older messages as JSON (`history`).
//! * `GET /api/hello` and `POST /api/frame` (any client frame) are the
//!   browser's fallback when its WebSocket cannot be opened: the whole
//!   protocol over plain requests, the streaming frames as above.
//!
//! Nothing here knows chat rules: a frame's meaning is
//! [`ChatService::handle`]'s, as for a socket. The checks before the chat
//! core are the WebSocket upgrade's ([`super::access`], as extractors), and
//! refusals are [`ApiError`]s. The frames come from the same
//! per-conversation hub, byte for byte what a subscribed socket receives, and
//! every guarantee of `docs/protocol.md` (contiguous deltas, snapshot then
//! exactly the deltas from `next_index`, resync with a fresh `snapshot` after
//! lagging) holds unchanged. Each SSE event is named after the frame's `type`,
//! carries the frame's JSON as `data`, and has a stable `id`
//! (`<message_id>:<index>` for a `delta`). A refusal before anything was
//! streamed is an HTTP status with the `error` frame as a JSON body; a failure
//! during the stream is an `error` event, as on the socket.

use std::time::Instant;

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

mod follow;
mod history;

pub use self::history::messages;

use self::follow::{behind_snapshot, is_streaming, respond, Follow, FollowFrom};
use super::{
    access::{
        address::{AddrKey, ClientAddr},
        admission::StreamPermit,
        CallerIdentity, Reader, ReaderIdentity,
    },
    accounts::live::Watch,
    chat::{Accepted, Answer},
    error::{ApiError, JsonBody},
    state::AppState,
};
use crate::protocol::{ClientFrame, ConversationId, MessageId, SendRequest, ServerFrame, UserId};

/// When the request arrived (reply timings are measured from it); taken
/// first, before any other extractor reads the request.
pub struct Received(Instant);

impl<S: Send + Sync> FromRequestParts<S> for Received {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Received(Instant::now()))
    }
}

/// `POST /api/chat`: store a user message and stream the reply.
pub async fn chat(
    Received(received): Received,
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    CallerIdentity(identity): CallerIdentity,
    JsonBody(request): JsonBody<SendRequest>,
) -> Result<Response, ApiError> {
    let session = state.accounts.watch(&identity);
    let from = (identity.user, addr);
    handle(
        &state,
        from,
        ClientFrame::from(request),
        None,
        received,
        session,
    )
    .await
}

/// `GET /api/conversations/{id}/events`: a snapshot, then the running reply.
pub async fn events(
    Received(received): Received,
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ReaderIdentity(identity): ReaderIdentity,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = state.accounts.watch(&identity);
    let user = identity.user;
    let frame = ClientFrame::Subscribe {
        conversation_id: ConversationId::from(conversation_id),
    };
    handle(
        &state,
        (user, addr),
        frame,
        last_event_id(&headers),
        received,
        session,
    )
    .await
}

/// `GET /api/hello`: the `hello` a WebSocket would send first. The browser's
/// HTTP fallback starts here.
pub async fn hello(State(state): State<AppState>, Reader(user): Reader) -> Response {
    json_frame(&state.chat.hello(&user))
}

/// `POST /api/frame`: any client frame over HTTP, for a browser whose
/// WebSocket cannot be opened. `send`, `regenerate`, `continue` and `subscribe` answer
/// with an event stream exactly as `/api/chat` and `/events` do; the others
/// with their one answer frame as JSON, or `204` when the socket would send
/// nothing.
pub async fn frame(
    Received(received): Received,
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    CallerIdentity(identity): CallerIdentity,
    JsonBody(frame): JsonBody<ClientFrame>,
) -> Result<Response, ApiError> {
    let session = state.accounts.watch(&identity);
    handle(
        &state,
        (identity.user, addr),
        frame,
        None,
        received,
        session,
    )
    .await
}

/// The chat core's answer to `frame` as an HTTP response. A frame that
/// streams takes its permit first, so a refused stream stores nothing.
async fn handle(
    state: &AppState,
    (user, addr): (UserId, AddrKey),
    frame: ClientFrame,
    seen: Option<(MessageId, u64)>,
    received: Instant,
    session: Option<Watch>,
) -> Result<Response, ApiError> {
    // The frames that start a reply (they carry an idempotency key), and `subscribe`.
    let streams = frame.client_msg_id().is_some() || matches!(frame, ClientFrame::Subscribe { .. });
    let permit = if streams {
        Some(
            state
                .admission
                .admit_everywhere(&user, addr, state.chat.cluster())
                .await?,
        )
    } else {
        None
    };
    let answer = state.chat.handle(&user, addr, frame, received).await?;
    // Only `send`, `regenerate`, `continue` and `subscribe` answer with a stream, and
    // they hold their permit already; `admit` here is never reached.
    let stream_permit = |permit: Option<StreamPermit>, user: &UserId| match permit {
        Some(permit) => Ok(permit),
        None => state.admission.admit(user, addr),
    };
    Ok(match answer {
        Answer::Accepted(accepted) => {
            let permit = stream_permit(permit, &user)?;
            stream_accepted(state, user, accepted, permit, session).await?
        }
        Answer::Subscribed {
            snapshot,
            subscription,
        } => {
            let permit = stream_permit(permit, &user)?;
            let from = FollowFrom {
                user,
                subscription,
                reply_running: is_streaming(&snapshot),
                seen: seen.filter(|seen| behind_snapshot(&snapshot, seen)),
                session,
            };
            respond(&[&snapshot], follow(state, from, permit))
        }
        Answer::Frame(frame)
        | Answer::Unfollow {
            then: Some(frame), ..
        } => json_frame(&frame),
        // A stream ends with its reply; there is nothing to leave.
        Answer::Nothing | Answer::Unfollow { then: None, .. } => {
            StatusCode::NO_CONTENT.into_response()
        }
    })
}

/// `accepted`, then the reply it started; for a duplicate, `accepted` and a
/// snapshot (the original reply may be long over), then the reply if it runs.
async fn stream_accepted(
    state: &AppState,
    user: UserId,
    accepted: Accepted,
    permit: StreamPermit,
    session: Option<Watch>,
) -> Result<Response, ApiError> {
    let Accepted {
        frame,
        subscription,
    } = accepted;
    let ServerFrame::Accepted {
        duplicate: true,
        client_msg_id,
        ..
    } = &frame
    else {
        let from = FollowFrom {
            user,
            subscription,
            reply_running: true,
            seen: None,
            session,
        };
        return Ok(respond(&[&frame], follow(state, from, permit)));
    };
    let conversation_id = subscription.conversation_id.clone();
    let resumed = state.chat.subscribe(&user, &conversation_id).await;
    drop(subscription);
    state.chat.unsubscribed(&conversation_id);
    let (snapshot, subscription) =
        resumed.map_err(|err| err.refusing(Some(client_msg_id.clone()), Some(conversation_id)))?;
    let from = FollowFrom {
        user,
        subscription,
        reply_running: is_streaming(&snapshot),
        seen: None,
        session,
    };
    Ok(respond(&[&frame, &snapshot], follow(state, from, permit)))
}

fn follow(state: &AppState, from: FollowFrom, permit: StreamPermit) -> Follow {
    Follow::new(
        state.chat.clone(),
        state.close_sockets.clone(),
        from,
        permit,
    )
}

fn json_frame(frame: &ServerFrame) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        frame.to_json(),
    )
        .into_response()
}

/// `Last-Event-ID: <message_id>:<index>` (a `delta`'s id); any other id is ignored.
fn last_event_id(headers: &HeaderMap) -> Option<(MessageId, u64)> {
    let value = headers.get("last-event-id")?.to_str().ok()?;
    let (message_id, index) = value.trim().rsplit_once(':')?;
    Some((MessageId::from(message_id), index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::{follow::already_seen, *};
    use crate::{protocol::ErrorCode, server::chat::hub::EventFacts};
    use axum::http::HeaderValue;

    fn event_name_and_id(frame: &ServerFrame) -> (&'static str, Option<String>) {
        let facts = EventFacts::of(frame);
        (facts.frame_type, facts.stable_id())
    }

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
        assert!(already_seen(Some(&seen), &EventFacts::of(&delta("m", 0))));
        assert!(already_seen(Some(&seen), &EventFacts::of(&delta("m", 4))));
        assert!(!already_seen(Some(&seen), &EventFacts::of(&delta("m", 5))));
        assert!(!already_seen(
            Some(&seen),
            &EventFacts::of(&delta("other", 0))
        ));
        assert!(!already_seen(None, &EventFacts::of(&delta("m", 0))));
        let done = ServerFrame::Done {
            conversation_id: "c".into(),
            message_id: "m".into(),
            finish_reason: crate::protocol::FinishReason::Stop,
            usage: None,
            ttft_ms: None,
            total_ms: 1.0,
            model: None,
        };
        assert!(!already_seen(Some(&seen), &EventFacts::of(&done)));
    }

    #[test]
    fn a_last_event_id_past_the_snapshot_is_ignored() {
        let snapshot = |next_index| ServerFrame::Snapshot {
            conversation_id: "c".into(),
            messages: vec![],
            streaming: Some(crate::protocol::StreamingMessage {
                message: crate::protocol::Message {
                    id: "m".into(),
                    role: crate::protocol::Role::Assistant,
                    content: "Hello".into(),
                    created_at: String::new(),
                    finish_reason: None,
                    alternatives: None,
                    model: None,
                },
                next_index,
            }),
            has_more: false,
        };
        let seen = (MessageId::from("m"), 4);
        assert!(behind_snapshot(&snapshot(5), &seen));
        assert!(
            !behind_snapshot(&snapshot(4), &seen),
            "index 4 is still to come"
        );
        assert!(behind_snapshot(
            &snapshot(2),
            &(MessageId::from("other"), 9)
        ));
        let idle = ServerFrame::Snapshot {
            conversation_id: "c".into(),
            messages: vec![],
            streaming: None,
            has_more: false,
        };
        assert!(behind_snapshot(&idle, &seen));
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
