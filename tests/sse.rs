//! The HTTP streaming (SSE) transport, over real sockets with the fake upstream.
//!
//! The behaviours both transports share are written once, as cases taking a
//! [`Transport`], and run against the WebSocket and SSE alike. The rest is
//! SSE-only: statuses, event ids, resume with `Last-Event-ID`, and the same
//! hub seen from both transports at once.

mod common;

use std::pin::Pin;

use common::{delta_text, done_of, uuid, TestServer, STEP};
use futures::{Stream, StreamExt};
use tether::protocol::{
    ClientFrame, ConversationId, ErrorCode, FinishReason, Role, SendRequest, ServerFrame,
};
use tether_fake_upstream::reply_tokens;

// ---------------------------------------------------------------------------
// A tiny SSE client.

/// One parsed event; its `event` name is checked to be the frame's `type`.
#[derive(Debug)]
struct SseFrame {
    id: Option<String>,
    frame: ServerFrame,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// The events of one `text/event-stream` response.
struct SseStream {
    body: ByteStream,
    buffer: Vec<u8>,
}

impl SseStream {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        Self {
            body: Box::pin(response.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            buffer: Vec::new(),
        }
    }

    /// The next event (comments skipped); `None` when the server ended the
    /// response. Panics after [`STEP`] without one.
    async fn next(&mut self) -> Option<SseFrame> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("events are UTF-8");
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            match tokio::time::timeout(STEP, self.body.next())
                .await
                .expect("an event arrives in time")
            {
                Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                Some(Err(err)) => panic!("stream broke: {err}"),
                None => {
                    assert!(self.buffer.is_empty(), "stream ended mid-event");
                    return None;
                }
            }
        }
    }

    /// Every event until the server ends the response.
    async fn all(&mut self) -> Vec<SseFrame> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// Parses one event block; `None` for a comment-only block (keep-alive).
fn parse_block(block: &str) -> Option<SseFrame> {
    let (mut name, mut id, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value),
            other => panic!("unexpected SSE field {other:?}"),
        }
    }
    if data.is_empty() {
        return None;
    }
    let data = data.join("\n");
    let json: serde_json::Value = serde_json::from_str(&data).expect("data is JSON");
    assert_eq!(
        name.as_deref(),
        json["type"].as_str(),
        "the event is named after the frame type"
    );
    let frame: ServerFrame =
        serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad frame {data}: {e}"));
    check_id(&frame, id.as_deref());
    Some(SseFrame { id, frame })
}

/// Event ids are stable: `<message_id>:<index>` for deltas.
fn check_id(frame: &ServerFrame, id: Option<&str>) {
    let expected = match frame {
        ServerFrame::Delta {
            message_id, index, ..
        } => format!("{message_id}:{index}"),
        ServerFrame::Accepted { message_id, .. } => format!("{message_id}:accepted"),
        ServerFrame::Done { message_id, .. } => format!("{message_id}:done"),
        ServerFrame::Message { message, .. } => format!("{}:message", message.id),
        ServerFrame::Snapshot {
            conversation_id, ..
        } => format!("{conversation_id}:snapshot"),
        _ => return,
    };
    assert_eq!(id, Some(expected.as_str()));
}

fn frames(events: &[SseFrame]) -> Vec<ServerFrame> {
    events.iter().map(|e| e.frame.clone()).collect()
}

fn request(conversation: Option<&ConversationId>, text: &str, id: &str) -> SendRequest {
    SendRequest {
        client_msg_id: id.into(),
        conversation_id: conversation.cloned(),
        text: text.into(),
        persona: None,
        greeting: None,
        model: None,
    }
}

/// `POST /api/chat` with a JSON body.
async fn post_chat(
    server: &TestServer,
    origin: Option<&str>,
    cookie: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut builder = reqwest::Client::new()
        .post(format!("http://{}/api/chat", server.addr))
        .header("content-type", "application/json")
        .body(body);
    if let Some(origin) = origin {
        builder = builder.header("origin", origin);
    }
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder.send().await.expect("POST /api/chat")
}

/// `GET /api/conversations/{id}/events`, optionally resuming.
async fn get_events(
    server: &TestServer,
    cookie: &str,
    conversation: &ConversationId,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut builder = reqwest::Client::new()
        .get(format!(
            "http://{}/api/conversations/{conversation}/events",
            server.addr
        ))
        .header("origin", server.origin())
        .header("cookie", cookie);
    if let Some(id) = last_event_id {
        builder = builder.header("last-event-id", id);
    }
    builder.send().await.expect("GET events")
}

/// A refusal's JSON body: the `error` frame.
async fn error_body(response: reqwest::Response) -> (ErrorCode, Option<u64>) {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/json");
    let body = response.text().await.expect("body");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "every refusal says why: {body}"
    );
    match serde_json::from_value(json).expect("an error frame") {
        ServerFrame::Error {
            code,
            retry_after_ms,
            ..
        } => (code, retry_after_ms),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// One case, both transports.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Ws,
    Sse,
}

const BOTH: [Transport; 2] = [Transport::Ws, Transport::Sse];

#[derive(Debug)]
enum Outcome {
    /// The frames of the exchange, `accepted` first (for SSE: up to the end
    /// of the response; for WS: up to `done`, or just `accepted` for a duplicate).
    Streamed(Vec<ServerFrame>),
    /// Refused: the HTTP status (`None`: a WS `error` frame after the upgrade)
    /// and the protocol error code (`None`: a plain-text refusal).
    Refused {
        status: Option<u16>,
        code: Option<ErrorCode>,
    },
}

impl Outcome {
    fn streamed(self) -> Vec<ServerFrame> {
        match self {
            Outcome::Streamed(frames) => frames,
            other => panic!("expected a stream, got {other:?}"),
        }
    }

    fn refused(self) -> (Option<u16>, Option<ErrorCode>) {
        match self {
            Outcome::Refused { status, code } => (status, code),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

impl Transport {
    /// A `send` as a logged-in browser tab of this origin and cookie would.
    async fn send(
        self,
        server: &TestServer,
        origin: Option<&str>,
        cookie: Option<&str>,
        request: &SendRequest,
    ) -> Outcome {
        match self {
            Transport::Ws => {
                let mut client = match server.try_connect(origin, cookie, "/ws").await {
                    Ok(client) => client,
                    Err(status) => {
                        return Outcome::Refused {
                            status: Some(status),
                            code: None,
                        }
                    }
                };
                assert!(matches!(client.next().await, ServerFrame::Hello { .. }));
                client.send(&ClientFrame::from(request.clone())).await;
                match client.next().await {
                    ServerFrame::Error { code, .. } => Outcome::Refused {
                        status: None,
                        code: Some(code),
                    },
                    accepted @ ServerFrame::Accepted {
                        duplicate: true, ..
                    } => Outcome::Streamed(vec![accepted]),
                    ServerFrame::Accepted {
                        client_msg_id,
                        conversation_id,
                        message_id,
                        duplicate,
                    } => {
                        let mut frames = client.until_done(&conversation_id).await;
                        frames.insert(
                            0,
                            ServerFrame::Accepted {
                                client_msg_id,
                                conversation_id,
                                message_id,
                                duplicate,
                            },
                        );
                        Outcome::Streamed(frames)
                    }
                    other => panic!("expected accepted or error, got {other:?}"),
                }
            }
            Transport::Sse => {
                let body = serde_json::to_string(request).expect("serialises");
                let response = post_chat(server, origin, cookie, body).await;
                let status = response.status().as_u16();
                if status == 200 {
                    return Outcome::Streamed(frames(&SseStream::new(response).all().await));
                }
                let is_json = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes() == b"application/json");
                let code = if is_json {
                    Some(error_body(response).await.0)
                } else {
                    None
                };
                Outcome::Refused {
                    status: Some(status),
                    code,
                }
            }
        }
    }
}

async fn a_reply_streams_exactly(transport: Transport) {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let id = uuid();
    let frames = transport
        .send(
            &server,
            Some(&server.origin()),
            Some(&cookie),
            &request(None, "hello there", &id),
        )
        .await
        .streamed();
    let ServerFrame::Accepted {
        client_msg_id,
        duplicate,
        ..
    } = &frames[0]
    else {
        panic!("{transport:?}: accepted first, got {:?}", frames[0])
    };
    assert_eq!(client_msg_id.as_str(), id);
    assert!(!duplicate);
    assert!(frames.iter().any(|f| matches!(f, ServerFrame::Message { message, .. } if message.role == Role::User && message.content == "hello there")));
    assert_eq!(delta_text(&frames), "You said: hello there");
    assert_eq!(delta_text(&frames), reply_tokens("hello there").concat());
    assert!(
        matches!(
            frames.last(),
            Some(ServerFrame::Done {
                finish_reason: FinishReason::Stop,
                ..
            })
        ),
        "{transport:?}: ends with done stop, got {:?}",
        frames.last()
    );
}

async fn resending_is_idempotent(transport: Transport) {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let origin = server.origin();
    let send = request(None, "only once", &uuid());
    let first = transport
        .send(&server, Some(&origin), Some(&cookie), &send)
        .await
        .streamed();
    let again = transport
        .send(&server, Some(&origin), Some(&cookie), &send)
        .await
        .streamed();
    let (
        ServerFrame::Accepted {
            conversation_id,
            message_id,
            duplicate: false,
            ..
        },
        ServerFrame::Accepted {
            conversation_id: conversation_again,
            message_id: message_again,
            duplicate: true,
            ..
        },
    ) = (&first[0], &again[0])
    else {
        panic!("{transport:?}: accepted, then accepted duplicate: {first:?} / {again:?}")
    };
    assert_eq!(conversation_id, conversation_again);
    assert_eq!(message_id, message_again);
    if transport == Transport::Sse {
        // The reply is over: the duplicate's stream is its snapshot, then ends.
        assert_eq!(again.len(), 2, "{again:?}");
        let ServerFrame::Snapshot {
            messages,
            streaming: None,
            ..
        } = &again[1]
        else {
            panic!("snapshot after the duplicate, got {:?}", again[1])
        };
        assert_eq!(messages.len(), 2);
    }
    assert_eq!(server.stats().requests(), 1, "one model call");
    let mut ws = server.connect(&cookie).await;
    let messages = ws.snapshot(conversation_id).await;
    let users = messages.iter().filter(|m| m.role == Role::User).count();
    assert_eq!(users, 1, "{transport:?}: one stored user message");
}

async fn too_long_is_refused(transport: Transport) {
    let server = TestServer::start(|c| {
        c.limits.max_message_chars = 50;
        c.limits.max_frame_bytes = 1024;
    })
    .await;
    let cookie = server.cookie().await;
    // Over the character limit (the chat core), then over the frame limit (the edge).
    for text in ["x".repeat(100), "y".repeat(2000)] {
        let (status, code) = transport
            .send(
                &server,
                Some(&server.origin()),
                Some(&cookie),
                &request(None, &text, &uuid()),
            )
            .await
            .refused();
        assert_eq!(code, Some(ErrorCode::TooLarge), "{transport:?}");
        let expected = match transport {
            Transport::Ws => None,
            Transport::Sse => Some(413),
        };
        assert_eq!(status, expected, "{transport:?}");
    }
    assert_eq!(server.stats().requests(), 0, "never reaches the model");
}

async fn no_cookie_is_refused(transport: Transport) {
    let server = TestServer::start(|_| {}).await;
    let (status, _) = transport
        .send(
            &server,
            Some(&server.origin()),
            None,
            &request(None, "hi", &uuid()),
        )
        .await
        .refused();
    assert_eq!(status, Some(401), "{transport:?}");
    let (status, _) = transport
        .send(
            &server,
            Some(&server.origin()),
            Some("tether_id=forged.00ff"),
            &request(None, "hi", &uuid()),
        )
        .await
        .refused();
    assert_eq!(status, Some(401), "{transport:?}: a forged cookie");
    assert_eq!(server.stats().requests(), 0);
}

async fn foreign_origin_is_refused(transport: Transport) {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    for origin in [Some("http://evil.example"), None] {
        let (status, _) = transport
            .send(
                &server,
                origin,
                Some(&cookie),
                &request(None, "hi", &uuid()),
            )
            .await
            .refused();
        assert_eq!(status, Some(403), "{transport:?} with Origin {origin:?}");
    }
    assert_eq!(server.stats().requests(), 0);
}

#[tokio::test]
async fn a_reply_streams_exactly_over_both_transports() {
    for transport in BOTH {
        a_reply_streams_exactly(transport).await;
    }
}

#[tokio::test]
async fn resending_a_client_msg_id_is_idempotent_over_both_transports() {
    for transport in BOTH {
        resending_is_idempotent(transport).await;
    }
}

#[tokio::test]
async fn a_too_long_message_is_too_large_over_both_transports() {
    for transport in BOTH {
        too_long_is_refused(transport).await;
    }
}

#[tokio::test]
async fn no_identity_cookie_is_401_over_both_transports() {
    for transport in BOTH {
        no_cookie_is_refused(transport).await;
    }
}

#[tokio::test]
async fn a_foreign_or_missing_origin_is_403_over_both_transports() {
    for transport in BOTH {
        foreign_origin_is_refused(transport).await;
    }
}

// ---------------------------------------------------------------------------
// SSE only.

#[tokio::test]
async fn resume_with_last_event_id_gets_a_snapshot_then_only_later_deltas() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let text = "[[long]] [[delay:20]] tell me a story";
    let response = post_chat(
        &server,
        Some(&server.origin()),
        Some(&cookie),
        serde_json::to_string(&request(None, text, &uuid())).expect("json"),
    )
    .await;
    let mut stream = SseStream::new(response);
    let mut conversation = None;
    let mut last_delta = None;
    let mut seen = 0;
    while seen < 5 {
        let event = stream.next().await.expect("streaming");
        match &event.frame {
            ServerFrame::Accepted {
                conversation_id, ..
            } => conversation = Some(conversation_id.clone()),
            ServerFrame::Delta { .. } => {
                seen += 1;
                last_delta = event.id.clone();
            }
            _ => {}
        }
    }
    let conversation = conversation.expect("accepted came first");
    let last_delta = last_delta.expect("delta ids");
    let last_index: u64 = last_delta
        .rsplit_once(':')
        .and_then(|(_, i)| i.parse().ok())
        .expect("<message_id>:<index>");
    assert_eq!(last_index, 4);
    drop(stream);

    let response = get_events(&server, &cookie, &conversation, Some(&last_delta)).await;
    let events = SseStream::new(response).all().await;
    let ServerFrame::Snapshot {
        streaming: Some(streaming),
        messages,
        ..
    } = &events[0].frame
    else {
        panic!(
            "a snapshot with the reply in progress first, got {:?}",
            events[0]
        )
    };
    assert_eq!(messages.len(), 1, "the user message");
    assert!(streaming.next_index > last_index);
    let mut text_so_far = streaming.message.content.clone();
    let mut expected_index = streaming.next_index;
    for event in &events[1..] {
        if let ServerFrame::Delta { index, text, .. } = &event.frame {
            assert!(*index > last_index, "nothing at or before Last-Event-ID");
            assert_eq!(*index, expected_index, "no gap, no repeat");
            expected_index += 1;
            text_so_far.push_str(text);
        }
    }
    assert_eq!(text_so_far, reply_tokens(text).concat());
    assert!(
        matches!(
            events.last().map(|e| &e.frame),
            Some(ServerFrame::Done {
                finish_reason: FinishReason::Stop,
                ..
            })
        ),
        "the response ends with the reply's done"
    );
}

#[tokio::test]
async fn events_of_an_idle_conversation_are_its_snapshot_and_other_users_get_404() {
    let server = TestServer::start(|_| {}).await;
    let mut owner = server.user().await;
    let conversation = owner.start_conversation("hello there").await;
    owner.until_done(&conversation).await;

    let events = SseStream::new(get_events(&server, &owner.cookie, &conversation, None).await)
        .all()
        .await;
    assert_eq!(events.len(), 1, "only the snapshot: {events:?}");
    let ServerFrame::Snapshot {
        messages,
        streaming: None,
        ..
    } = &events[0].frame
    else {
        panic!("snapshot, got {:?}", events[0])
    };
    assert_eq!(messages[1].content, reply_tokens("hello there").concat());

    let stranger = server.cookie().await;
    for id in [
        conversation.clone(),
        ConversationId::from("no-such-conversation"),
    ] {
        let response = get_events(&server, &stranger, &id, None).await;
        assert_eq!(response.status(), 404);
        assert_eq!(error_body(response).await.0, ErrorCode::NotFound);
    }
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/api/conversations/{conversation}/events",
            server.addr
        ))
        .header("origin", "http://evil.example")
        .header("cookie", &owner.cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn an_sse_reply_reaches_a_websocket_subscriber_of_the_same_conversation() {
    let server = TestServer::start(|_| {}).await;
    let mut ws = server.user().await;
    // The socket made the conversation and stays subscribed to it.
    let conversation = ws.start_conversation("first").await;
    ws.until_done(&conversation).await;

    let text = "second, over HTTP";
    let response = post_chat(
        &server,
        Some(&server.origin()),
        Some(&ws.cookie),
        serde_json::to_string(&request(Some(&conversation), text, &uuid())).expect("json"),
    )
    .await;
    let over_sse = frames(&SseStream::new(response).all().await);
    let over_ws = ws.until_done(&conversation).await;
    let expected = reply_tokens(text).concat();
    assert_eq!(delta_text(&over_sse), expected);
    assert_eq!(delta_text(&over_ws), expected);
    assert!(over_ws
        .iter()
        .any(|f| matches!(f, ServerFrame::Message { message, .. } if message.content == text)));
    assert_eq!(
        done_of(&over_ws),
        done_of(&over_sse),
        "the same done, byte for byte"
    );
}

#[tokio::test]
async fn refusals_before_streaming_are_statuses_with_the_error_frame() {
    let server = TestServer::start(|c| {
        c.limits.rate_burst = 4;
        c.limits.rate_per_sec = 0.001;
    })
    .await;
    let cookie = server.cookie().await;
    let origin = server.origin();
    let post = |body: String| post_chat(&server, Some(&origin), Some(&cookie), body);

    // Not JSON, or not the send fields: 400.
    for body in ["not json", "{\"text\":\"no id\"}", "[1]"] {
        let response = post(body.to_owned()).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(error_body(response).await.0, ErrorCode::BadRequest);
    }
    // An unknown persona, or a conversation that is not there: 400, 404.
    let mut unknown = request(None, "hi", &uuid());
    unknown.persona = Some("pirate".into());
    let response = post(serde_json::to_string(&unknown).expect("json")).await;
    assert_eq!(response.status(), 400);
    let response =
        post(serde_json::to_string(&request(Some(&"nope".into()), "hi", &uuid())).expect("json"))
            .await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_body(response).await.0, ErrorCode::NotFound);
    // Not declared as JSON: 415.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/chat", server.addr))
        .header("origin", &origin)
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .body(serde_json::to_string(&request(None, "hi", &uuid())).expect("json"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 415);

    // A reply is streaming in the conversation: 409 busy.
    let long = request(None, "[[long]] [[delay:20]] go", &uuid());
    let mut running = SseStream::new(post(serde_json::to_string(&long).expect("json")).await);
    let conversation = match running.next().await.map(|e| e.frame) {
        Some(ServerFrame::Accepted {
            conversation_id, ..
        }) => conversation_id,
        other => panic!("accepted, got {other:?}"),
    };
    let response = post(
        serde_json::to_string(&request(Some(&conversation), "me too", &uuid())).expect("json"),
    )
    .await;
    assert_eq!(response.status(), 409);
    assert_eq!(error_body(response).await.0, ErrorCode::Busy);

    // The burst of 4 is spent (the persona, the missing conversation, the
    // long reply, the busy attempt: each was counted): 429.
    let response =
        post(serde_json::to_string(&request(None, "more", &uuid())).expect("json")).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    let (code, retry_after_ms) = error_body(response).await;
    assert_eq!(code, ErrorCode::RateLimited);
    let retry_after_ms = retry_after_ms.expect("retry_after_ms");
    assert_eq!(retry_after, retry_after_ms.div_ceil(1000));

    // The running reply was not disturbed.
    let rest = frames(&running.all().await);
    assert_eq!(delta_text(&rest), reply_tokens(&long.text).concat());
    assert!(matches!(rest.last(), Some(ServerFrame::Done { .. })));
}

#[tokio::test]
async fn an_upstream_failure_mid_stream_is_an_error_event_then_done() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let text = "[[cut:2]] talk to me";
    let response = post_chat(
        &server,
        Some(&server.origin()),
        Some(&cookie),
        serde_json::to_string(&request(None, text, &uuid())).expect("json"),
    )
    .await;
    let events = SseStream::new(response).all().await;
    let frames = frames(&events);
    assert_eq!(delta_text(&frames), reply_tokens(text)[..2].concat());
    let n = frames.len();
    assert!(
        matches!(
            &frames[n - 2],
            ServerFrame::Error {
                code: ErrorCode::UpstreamError,
                ..
            }
        ),
        "{frames:?}"
    );
    assert!(matches!(
        &frames[n - 1],
        ServerFrame::Done {
            finish_reason: FinishReason::Error,
            ..
        }
    ));
    let conversation = frames[0].conversation_id().expect("accepted").clone();
    assert_eq!(
        events[n - 2].id.as_deref(),
        Some(format!("{conversation}:error").as_str())
    );
}

#[tokio::test]
async fn shutdown_past_the_grace_period_ends_open_streams_after_their_done() {
    let mut server =
        TestServer::start(|c| c.shutdown_grace = std::time::Duration::from_millis(200)).await;
    let cookie = server.cookie().await;
    let text = "[[long]] [[delay:100]] long story";
    let response = post_chat(
        &server,
        Some(&server.origin()),
        Some(&cookie),
        serde_json::to_string(&request(None, text, &uuid())).expect("json"),
    )
    .await;
    let mut stream = SseStream::new(response);
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e: &SseFrame| matches!(e.frame, ServerFrame::Delta { .. }))
    {
        events.push(stream.next().await.expect("streaming"));
    }
    let task = server.begin_shutdown();
    events.extend(stream.all().await);
    let frames = frames(&events);
    assert!(
        matches!(
            frames.last(),
            Some(ServerFrame::Done {
                finish_reason: FinishReason::Stopped,
                ..
            })
        ),
        "stopped at the end of the grace period: {:?}",
        frames.last()
    );
    tokio::time::timeout(STEP, task)
        .await
        .expect("the server stops in time")
        .expect("join")
        .expect("clean exit");
}

// ---------------------------------------------------------------------------
// The browser's HTTP fallback: `GET /api/hello` and `POST /api/frame`.

/// `POST /api/frame` with a client frame.
async fn post_frame(server: &TestServer, cookie: &str, frame: &ClientFrame) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/api/frame", server.addr))
        .header("content-type", "application/json")
        .header("origin", server.origin())
        .header("cookie", cookie)
        .body(frame.to_json())
        .send()
        .await
        .expect("POST /api/frame")
}

/// A one-frame JSON answer.
async fn json_answer(response: reqwest::Response) -> ServerFrame {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    response.json().await.expect("a frame")
}

#[tokio::test]
async fn the_whole_protocol_works_over_plain_requests() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;

    let hello = reqwest::Client::new()
        .get(format!("http://{}/api/hello", server.addr))
        .header("origin", server.origin())
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET /api/hello");
    let ServerFrame::Hello {
        protocol, personas, ..
    } = json_answer(hello).await
    else {
        panic!("hello")
    };
    assert_eq!(protocol, 1);
    assert!(!personas.is_empty());

    // send: the same stream as POST /api/chat.
    let send = ClientFrame::Send {
        client_msg_id: uuid().as_str().into(),
        conversation_id: None,
        text: "over plain HTTP".into(),
        persona: None,
        greeting: None,
        model: None,
    };
    let streamed = frames(
        &SseStream::new(post_frame(&server, &cookie, &send).await)
            .all()
            .await,
    );
    assert!(matches!(streamed[0], ServerFrame::Accepted { .. }));
    assert_eq!(
        delta_text(&streamed),
        reply_tokens("over plain HTTP").concat()
    );
    let ServerFrame::Done {
        conversation_id, ..
    } = done_of(&streamed).clone()
    else {
        panic!("done")
    };

    // subscribe: the snapshot, ending at once (nothing is streaming).
    let subscribe = ClientFrame::Subscribe {
        conversation_id: conversation_id.clone(),
    };
    let snapshot = frames(
        &SseStream::new(post_frame(&server, &cookie, &subscribe).await)
            .all()
            .await,
    );
    assert!(
        matches!(&snapshot[..], [ServerFrame::Snapshot { messages, streaming: None, .. }] if messages.len() == 2),
        "{snapshot:?}"
    );

    // regenerate: a new reply to the same message.
    let regenerate = ClientFrame::Regenerate {
        conversation_id: conversation_id.clone(),
        client_msg_id: uuid().as_str().into(),
    };
    let again = frames(
        &SseStream::new(post_frame(&server, &cookie, &regenerate).await)
            .all()
            .await,
    );
    assert_eq!(delta_text(&again), reply_tokens("over plain HTTP").concat());

    // The one-frame answers.
    let rename = ClientFrame::RenameConversation {
        conversation_id: conversation_id.clone(),
        title: "Renamed".into(),
    };
    let ServerFrame::Conversations { items, .. } =
        json_answer(post_frame(&server, &cookie, &rename).await).await
    else {
        panic!("conversations")
    };
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].title, "Renamed");
    let ping = ClientFrame::Ping {
        nonce: serde_json::json!(7),
    };
    assert!(matches!(
        json_answer(post_frame(&server, &cookie, &ping).await).await,
        ServerFrame::Pong { nonce } if nonce == serde_json::json!(7)
    ));
    let stop = ClientFrame::Stop {
        conversation_id: conversation_id.clone(),
    };
    assert_eq!(post_frame(&server, &cookie, &stop).await.status(), 204);
    let delete = ClientFrame::DeleteConversation { conversation_id };
    let ServerFrame::Conversations { items, .. } =
        json_answer(post_frame(&server, &cookie, &delete).await).await
    else {
        panic!("conversations")
    };
    assert!(items.is_empty());
}

#[tokio::test]
async fn fallback_requests_are_checked_like_the_socket() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let client = reqwest::Client::new();
    let hello = |headers: &[(&str, &str)]| {
        let mut builder = client.get(format!("http://{}/api/hello", server.addr));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.send()
    };
    let origin = server.origin();
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("GET").status().as_u16();
    assert_eq!(status(hello(&[("origin", &origin)]).await), 401);
    assert_eq!(
        status(hello(&[("origin", "http://evil.example"), ("cookie", &cookie)]).await),
        403
    );
    // A browser sends no Origin on a same-origin GET; another site's is refused.
    assert_eq!(
        status(hello(&[("sec-fetch-site", "same-origin"), ("cookie", &cookie)]).await),
        200
    );
    assert_eq!(
        status(hello(&[("sec-fetch-site", "cross-site"), ("cookie", &cookie)]).await),
        403
    );
    let malformed = client
        .post(format!("http://{}/api/frame", server.addr))
        .header("content-type", "application/json")
        .header("origin", server.origin())
        .header("cookie", &cookie)
        .body(r#"{"type":"launch_rockets"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_body(malformed).await.0, ErrorCode::BadRequest);
    let not_mine = ClientFrame::Subscribe {
        conversation_id: "someone-elses".into(),
    };
    let refused = post_frame(&server, &cookie, &not_mine).await;
    assert_eq!(refused.status(), 404);
    assert_eq!(error_body(refused).await.0, ErrorCode::NotFound);
}

#[tokio::test]
async fn an_open_stream_counts_against_the_users_connection_limit() {
    let server = TestServer::start(|c| c.limits.max_sockets_per_user = 1).await;
    // The user's one socket holds the one slot.
    let socket = server.user().await;
    let refused = post_chat(
        &server,
        Some(&server.origin()),
        Some(&socket.cookie),
        serde_json::to_string(&request(None, "one more", &uuid())).expect("json"),
    )
    .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(error_body(refused).await.0, ErrorCode::RateLimited);
    // Another user is not affected.
    let other = server.cookie().await;
    let response = post_chat(
        &server,
        Some(&server.origin()),
        Some(&other),
        serde_json::to_string(&request(None, "hello", &uuid())).expect("json"),
    )
    .await;
    assert_eq!(
        delta_text(&frames(&SseStream::new(response).all().await)),
        reply_tokens("hello").concat()
    );
}
