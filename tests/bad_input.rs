//! Bad input gets an `error` frame, never a crash, and the socket stays usable.
//! Every limit is configured small here and tested at its edge.

mod common;

use common::{uuid, TestServer};
use tether::protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(client: &mut common::WsClient, code: ErrorCode) -> String {
    match client.next().await {
        ServerFrame::Error {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(!message.is_empty(), "every refusal says why");
            message
        }
        other => panic!("expected {code:?} error, got {other:?}"),
    }
}

async fn still_works(client: &mut common::WsClient) {
    client.send(&ClientFrame::Ping { nonce: 1.into() }).await;
    assert_eq!(client.next().await, ServerFrame::Pong { nonce: 1.into() });
}

#[tokio::test]
async fn malformed_unknown_and_binary_frames_get_bad_request() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    for text in [
        "not json",
        "{\"type\":\"launch_missiles\"}",
        "{\"no_type\":1}",
        "[1,2,3]",
        "{\"type\":\"send\",\"text\":\"missing ids\"}",
        "{\"type\":\"subscribe\",\"conversation_id\":42}",
    ] {
        client.send_text(text).await;
        let message = expect_error(&mut client, ErrorCode::BadRequest).await;
        assert!(message.starts_with("invalid frame"), "{message}");
        still_works(&mut client).await;
    }
    client.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    expect_error(&mut client, ErrorCode::BadRequest).await;
    still_works(&mut client).await;
}

#[tokio::test]
async fn empty_text_is_bad_request() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: None,
            text: "   \n ".into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    expect_error(&mut client, ErrorCode::BadRequest).await;
    still_works(&mut client).await;
}

#[tokio::test]
async fn text_with_a_nul_character_is_bad_request() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: None,
            text: "hi\u{0}there".into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    let message = expect_error(&mut client, ErrorCode::BadRequest).await;
    assert!(message.contains("NUL"), "{message}");
    assert_eq!(server.stats().requests(), 0, "the model was not asked");
    still_works(&mut client).await;
}

#[tokio::test]
async fn frame_over_the_limit_is_too_large_and_never_reaches_the_model() {
    let server = TestServer::start(|c| c.limits.max_frame_bytes = 1024).await;
    let mut client = server.user().await;
    let frame = ClientFrame::Send {
        client_msg_id: uuid().as_str().into(),
        conversation_id: None,
        text: "x".repeat(2000),
        persona: None,
        greeting: None,
        model: None,
    };
    client.send(&frame).await;
    expect_error(&mut client, ErrorCode::TooLarge).await;
    still_works(&mut client).await;
    assert_eq!(server.stats().requests(), 0);
}

#[tokio::test]
async fn frame_over_the_hard_cap_closes_with_1009() {
    let server = TestServer::start(|c| c.limits.max_frame_bytes = 1024).await;
    let mut client = server.user().await;
    // The hard cap is max(2 × limit, 64 KiB).
    client.send_text(&"y".repeat(70 * 1024)).await;
    assert_eq!(client.closed().await, Some(1009));
    assert_eq!(server.stats().requests(), 0);
}

#[tokio::test]
async fn message_over_the_char_limit_is_too_large() {
    let server = TestServer::start(|c| c.limits.max_message_chars = 10).await;
    let mut client = server.user().await;
    let id = uuid();
    client
        .send(&ClientFrame::Send {
            client_msg_id: id.as_str().into(),
            conversation_id: None,
            text: "ééééééééééé".into(), // 11 characters, 22 bytes
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    match client.next().await {
        ServerFrame::Error {
            code,
            client_msg_id,
            message,
            ..
        } => {
            assert_eq!(code, ErrorCode::TooLarge);
            assert_eq!(client_msg_id.map(|c| c.0), Some(id));
            assert!(message.contains("limit is 10"), "{message}");
        }
        other => panic!("expected too_large, got {other:?}"),
    }
    // Exactly at the limit is fine.
    let conversation = client.start_conversation("éééééééééé").await;
    client.until_done(&conversation).await;
}

#[tokio::test]
async fn sends_over_the_rate_are_rate_limited_with_retry_after() {
    let server = TestServer::start(|c| {
        c.limits.rate_burst = 2;
        c.limits.rate_per_sec = 0.5;
    })
    .await;
    let mut client = server.user().await;
    for _ in 0..2 {
        let conversation = client.start_conversation("hi").await;
        client.until_done(&conversation).await;
    }
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: None,
            text: "one more".into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    match client.next().await {
        ServerFrame::Error {
            code,
            retry_after_ms,
            ..
        } => {
            assert_eq!(code, ErrorCode::RateLimited);
            let wait = retry_after_ms.expect("retry_after_ms");
            assert!(wait > 0 && wait <= 2_000, "{wait}");
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    still_works(&mut client).await;
    // Other users have their own budget.
    let mut other = server.user().await;
    let conversation = other.start_conversation("hi").await;
    other.until_done(&conversation).await;
}

#[tokio::test]
async fn unknown_conversation_is_not_found() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    client
        .send(&ClientFrame::Subscribe {
            conversation_id: "does-not-exist".into(),
        })
        .await;
    expect_error(&mut client, ErrorCode::NotFound).await;
    still_works(&mut client).await;
}

/// serde quotes the client's text in its error; a reason cut inside a
/// multi-byte character once killed the connection's task. Both transports.
#[tokio::test]
async fn an_unknown_type_in_multibyte_text_is_bad_request_on_both_transports() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    for pad in 0..4 {
        let text = format!("{{\"type\":\"{}{}\"}}", "x".repeat(pad), "é".repeat(150));
        client.send_text(&text).await;
        let message = expect_error(&mut client, ErrorCode::BadRequest).await;
        assert!(message.starts_with("invalid frame"), "{message}");
        still_works(&mut client).await;

        let response = reqwest::Client::new()
            .post(format!("http://{}/api/frame", server.addr))
            .header("origin", server.origin())
            .header("cookie", client.cookie.clone())
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 400);
        let frame: ServerFrame = response.json().await.expect("an error frame");
        assert!(
            matches!(frame, ServerFrame::Error { code: ErrorCode::BadRequest, ref message, .. } if message.starts_with("invalid body")),
            "{frame:?}"
        );
    }
}
