//! `continue`: a reply that ended early streams on into the same message,
//! over a real socket (and `POST /api/frame`) against the fake upstream,
//! whose continuation is the rest of the reply it was giving.

mod common;

use common::{done_of, TestServer, WsClient};
use tether::{
    client::state::ChatView,
    protocol::{ClientFrame, ConversationId, ErrorCode, FinishReason, MessageId, ServerFrame},
    server::chat::CONTINUE_INSTRUCTION,
};
use tether_fake_upstream::{reply_tokens, CONTINUE_PREFIX};

/// A reply the fake cuts after three tokens: `You said: hello`.
const CUT: &str = "[[cut:3]] hello there my friend";

fn continue_frame(conversation_id: &ConversationId, client_msg_id: &str) -> ClientFrame {
    ClientFrame::Continue {
        conversation_id: conversation_id.clone(),
        client_msg_id: client_msg_id.into(),
    }
}

/// Starts a conversation with `text` and reads its reply to the end:
/// the conversation, the reply's id, its text and how it ended.
async fn replied(client: &mut WsClient, text: &str) -> (ConversationId, MessageId, String) {
    let conversation = client.start_conversation(text).await;
    let frames = client.until_done(&conversation).await;
    let ServerFrame::Done { message_id, .. } = done_of(&frames).clone() else {
        unreachable!()
    };
    let text = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Delta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    (conversation, message_id, text)
}

/// The text of `frames`' deltas, checking their indexes run on from `first`
/// without a gap.
fn deltas_from(frames: &[ServerFrame], first: u64) -> String {
    let mut expected = first;
    let mut text = String::new();
    for frame in frames {
        if let ServerFrame::Delta { index, text: t, .. } = frame {
            assert_eq!(*index, expected, "delta indexes run on from {first}");
            expected += 1;
            text.push_str(t);
        }
    }
    text
}

/// The error a refused frame got.
async fn refusal(client: &mut WsClient) -> (ErrorCode, String, ServerFrame) {
    let frame = client
        .until(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Accepted { .. }))
        .await;
    match &frame {
        ServerFrame::Error { code, message, .. } => (*code, message.clone(), frame.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_interrupted_reply_continues_into_the_same_message() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let mut watcher = server.connect(&client.cookie).await;
    let (conversation, reply_id, partial) = replied(&mut client, CUT).await;
    assert_eq!(partial, "You said: hello");
    let mut view = ChatView::default();
    watcher
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
    view.apply(
        &watcher
            .until(|f| matches!(f, ServerFrame::Snapshot { .. }))
            .await,
    );
    assert_eq!(view.last_finish(), Some(FinishReason::Error));

    client.send(&continue_frame(&conversation, "more-1")).await;
    let accepted = client.next().await;
    let ServerFrame::Accepted {
        message_id: answers,
        duplicate: false,
        ..
    } = &accepted
    else {
        panic!("expected accepted, got {accepted:?}")
    };
    let frames = client.until_done(&conversation).await;
    let ServerFrame::Snapshot {
        messages,
        streaming: Some(streaming),
        ..
    } = &frames[0]
    else {
        panic!("views are given a snapshot first, got {:?}", frames[0])
    };
    assert_eq!(messages.len(), 1, "the history before the reply");
    assert_eq!(messages[0].id, *answers, "accepted names the user message");
    assert_eq!(streaming.message.id, reply_id, "the same message");
    assert_eq!(streaming.message.content, partial, "its stored text");
    assert_eq!(streaming.next_index, partial.len() as u64);
    let more = deltas_from(&frames, partial.len() as u64);
    let whole = reply_tokens(CUT).concat();
    assert_eq!(format!("{partial}{more}"), whole);
    let ServerFrame::Done {
        message_id,
        finish_reason,
        ..
    } = done_of(&frames)
    else {
        unreachable!()
    };
    assert_eq!(
        (message_id, *finish_reason),
        (&reply_id, FinishReason::Stop)
    );

    // Stored whole, once.
    let stored = client.snapshot(&conversation).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].id, reply_id);
    assert_eq!(stored[1].content, whole);
    assert_eq!(stored[1].finish_reason, Some(FinishReason::Stop));

    // Another tab of the user follows it with the client's own reducer.
    for frame in watcher.until_done(&conversation).await {
        view.apply(&frame);
    }
    assert!(!view.is_streaming());
    assert_eq!(view.messages.len(), 2);
    assert_eq!(view.messages[1].message.content, whole);
    assert_eq!(view.last_finish(), Some(FinishReason::Stop));

    // The model was asked to go on from the partial text.
    let asked = server
        .stats()
        .last_messages
        .lock()
        .expect("lock")
        .clone()
        .expect("a request");
    let asked = asked.as_array().expect("messages");
    let n = asked.len();
    assert_eq!(asked[n - 2]["role"], "assistant");
    assert_eq!(asked[n - 2]["content"], partial.as_str());
    assert_eq!(asked[n - 1]["role"], "user");
    assert_eq!(asked[n - 1]["content"], CONTINUE_INSTRUCTION);
    assert!(CONTINUE_INSTRUCTION.starts_with(CONTINUE_PREFIX));
    assert_eq!(server.stats().requests(), 2);
}

#[tokio::test]
async fn a_stopped_reply_continues_and_a_resent_continue_is_a_duplicate() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let text = "[[long]] [[delay:20]] a long one";
    let conversation = client.start_conversation(text).await;
    client
        .until(|f| matches!(f, ServerFrame::Delta { index: 3, .. }))
        .await;
    client
        .send(&ClientFrame::Stop {
            conversation_id: conversation.clone(),
        })
        .await;
    client.until_done(&conversation).await;
    let stopped = client.snapshot(&conversation).await;
    assert_eq!(stopped[1].finish_reason, Some(FinishReason::Stopped));
    let partial = stopped[1].content.clone();

    client.send(&continue_frame(&conversation, "more-2")).await;
    let frames = client.until_done(&conversation).await;
    let more = deltas_from(&frames, partial.len() as u64);
    assert_eq!(format!("{partial}{more}"), reply_tokens(text).concat());
    assert!(matches!(
        done_of(&frames),
        ServerFrame::Done {
            finish_reason: FinishReason::Stop,
            ..
        }
    ));

    // The same client_msg_id again: the first answer, and no model call.
    let requests = server.stats().requests();
    client.send(&continue_frame(&conversation, "more-2")).await;
    assert!(matches!(
        client.next().await,
        ServerFrame::Accepted {
            duplicate: true,
            ..
        }
    ));
    assert_eq!(server.stats().requests(), requests);
}

#[tokio::test]
async fn continue_is_refused_with_a_reason_when_there_is_nothing_to_continue() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;

    // A complete reply.
    let (complete, _, _) = replied(&mut client, "all said").await;
    client.send(&continue_frame(&complete, "c-1")).await;
    let (code, message, frame) = refusal(&mut client).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("complete"), "{message}");
    let ServerFrame::Error {
        client_msg_id,
        conversation_id,
        ..
    } = frame
    else {
        unreachable!()
    };
    assert_eq!(client_msg_id, Some("c-1".into()));
    assert_eq!(conversation_id, Some(complete.clone()));

    // A reply that failed before its first word: nothing to continue.
    let (failed, _, text) = replied(&mut client, "[[status:500]] nope").await;
    assert!(text.is_empty());
    client.send(&continue_frame(&failed, "c-2")).await;
    let (code, message, _) = refusal(&mut client).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("regenerate"), "{message}");

    // A reply still streaming: busy.
    let running = client
        .start_conversation("[[long]] [[delay:50]] still going")
        .await;
    client
        .until(|f| matches!(f, ServerFrame::Delta { .. }))
        .await;
    client.send(&continue_frame(&running, "c-3")).await;
    let (code, _, _) = refusal(&mut client).await;
    assert_eq!(code, ErrorCode::Busy);
    client
        .send(&ClientFrame::Stop {
            conversation_id: running.clone(),
        })
        .await;
    client.until_done(&running).await;

    // Another user's conversation, and one that does not exist.
    let (interrupted, _, _) = replied(&mut client, CUT).await;
    let mut stranger = server.user().await;
    stranger.send(&continue_frame(&interrupted, "c-4")).await;
    assert_eq!(refusal(&mut stranger).await.0, ErrorCode::NotFound);
    stranger
        .send(&continue_frame(&"no-such".into(), "c-5"))
        .await;
    assert_eq!(refusal(&mut stranger).await.0, ErrorCode::NotFound);

    // A client_msg_id out of bounds.
    client
        .send(&continue_frame(&interrupted, &"k".repeat(129)))
        .await;
    assert_eq!(refusal(&mut client).await.0, ErrorCode::BadRequest);

    // None of the refusals reached the model or changed the reply.
    assert_eq!(server.stats().requests(), 4);
    let stored = client.snapshot(&interrupted).await;
    assert_eq!(stored[1].content, "You said: hello");
    assert_eq!(stored[1].finish_reason, Some(FinishReason::Error));
}

/// `POST /api/frame` with `frame`.
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

/// The frames of a whole (ended) event-stream body.
fn events(body: &str) -> Vec<ServerFrame> {
    body.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| {
                serde_json::from_str(&data.join("\n"))
                    .unwrap_or_else(|e| panic!("bad event {block:?}: {e}"))
            })
        })
        .collect()
}

#[tokio::test]
async fn continue_over_http_streams_the_rest_then_ends() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let (conversation, reply_id, partial) = replied(&mut client, CUT).await;

    let response = post_frame(
        &server,
        &client.cookie,
        &continue_frame(&conversation, "h-1"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("text/event-stream")
    );
    let frames = events(&response.text().await.expect("body"));
    assert!(
        matches!(&frames[..2], [ServerFrame::Accepted { duplicate: false, .. }, ServerFrame::Snapshot { streaming: Some(s), .. }] if s.message.id == reply_id),
        "{frames:?}"
    );
    let more = deltas_from(&frames, partial.len() as u64);
    assert_eq!(format!("{partial}{more}"), reply_tokens(CUT).concat());
    assert!(
        matches!(frames.last(), Some(ServerFrame::Done { finish_reason: FinishReason::Stop, message_id, .. }) if *message_id == reply_id),
        "the response ends after done: {frames:?}"
    );

    // Now complete: refused with the status and the error frame as body.
    let response = post_frame(
        &server,
        &client.cookie,
        &continue_frame(&conversation, "h-2"),
    )
    .await;
    assert_eq!(response.status(), 400);
    let refused: ServerFrame = response.json().await.expect("an error frame");
    assert!(
        matches!(&refused, ServerFrame::Error { code: ErrorCode::BadRequest, client_msg_id: Some(id), .. } if id.as_str() == "h-2"),
        "{refused:?}"
    );
}
