//! Upstream failures become `error` frames plus `done` with `finish_reason:
//! "error"`; the partial reply is kept and the socket stays open.

mod common;

use std::time::Duration;

use common::{done_of, TestServer};
use tether::protocol::{ClientFrame, ErrorCode, FinishReason, ServerFrame};

/// Starts a conversation with `text`; returns (error frame, done frame, stored reply text).
async fn fail_with(server: &TestServer, text: &str) -> (ServerFrame, ServerFrame, String) {
    let mut client = server.user().await;
    let conversation = client.start_conversation(text).await;
    let frames = client.until_done(&conversation).await;
    let error = frames
        .iter()
        .find(|f| matches!(f, ServerFrame::Error { .. }))
        .cloned()
        .expect("an error frame before done");
    let done = done_of(&frames).clone();
    client
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation,
        })
        .await;
    let ServerFrame::Snapshot { messages, .. } = client.next().await else {
        panic!("socket still usable: snapshot expected")
    };
    assert_eq!(messages[1].finish_reason, Some(FinishReason::Error));
    (error, done, messages[1].content.clone())
}

#[tokio::test]
async fn upstream_429_is_rate_limited_with_retry_after_from_the_header() {
    let server = TestServer::start(|_| {}).await;
    let (error, done, _) = fail_with(&server, "[[status:429]]").await;
    let ServerFrame::Error {
        code,
        retry_after_ms,
        client_msg_id,
        ..
    } = error
    else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::RateLimited);
    assert_eq!(retry_after_ms, Some(2_000));
    assert!(client_msg_id.is_some());
    assert!(matches!(
        done,
        ServerFrame::Done {
            finish_reason: FinishReason::Error,
            ..
        }
    ));
    assert_eq!(server.stats().requests(), 1, "no hidden retries");
}

#[tokio::test]
async fn upstream_500_is_upstream_error() {
    let server = TestServer::start(|_| {}).await;
    let (error, _, _) = fail_with(&server, "[[status:500]]").await;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::UpstreamError,
            ..
        }
    ));
}

#[tokio::test]
async fn wrong_api_key_is_upstream_error_and_the_key_is_not_echoed() {
    let fake = tether_fake_upstream::FakeUpstream::start(tether_fake_upstream::FakeConfig {
        required_key: Some("right-key".into()),
        ..Default::default()
    })
    .await
    .expect("fake");
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tmp"));
    let server = TestServer::start_with(std::sync::Arc::new(fake), dir, |c| {
        c.upstream.api_key = tether::server::config::ApiKey::new("sk-wrong-secret");
    })
    .await;
    let (error, _, _) = fail_with(&server, "hello").await;
    let ServerFrame::Error { code, message, .. } = error else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::UpstreamError);
    assert!(!message.contains("sk-wrong-secret"), "{message}");
}

#[tokio::test]
async fn a_stalled_stream_times_out_and_keeps_the_partial_text() {
    let server = TestServer::start(|c| c.upstream.timeout = Duration::from_millis(300)).await;
    let (error, _, stored) = fail_with(&server, "[[stall:3]] talk").await;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::UpstreamTimeout,
            ..
        }
    ));
    let expected: String = tether_fake_upstream::reply_tokens("[[stall:3]] talk")[..3].concat();
    assert_eq!(stored, expected);
    tokio::time::timeout(Duration::from_secs(5), server.stats().wait_aborted(1))
        .await
        .expect("the stalled request is dropped");
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_upstream_error_with_partial_text() {
    let server = TestServer::start(|_| {}).await;
    let (error, _, stored) = fail_with(&server, "[[cut:2]] talk to me").await;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::UpstreamError,
            ..
        }
    ));
    let expected: String = tether_fake_upstream::reply_tokens("[[cut:2]] talk to me")[..2].concat();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn unreachable_upstream_is_upstream_error() {
    let server = TestServer::start(|c| {
        // Nothing listens on port 9 of loopback.
        c.upstream.base_url = "http://127.0.0.1:9/v1".into();
    })
    .await;
    let (error, _, stored) = fail_with(&server, "anyone there?").await;
    assert!(matches!(
        error,
        ServerFrame::Error {
            code: ErrorCode::UpstreamError,
            ..
        }
    ));
    assert_eq!(stored, "");
}

#[tokio::test]
async fn a_reply_that_ends_without_a_word_is_upstream_error_not_an_empty_bubble() {
    // `[[tokens:0]]`: a well-formed stream with a finish reason and `[DONE]`
    // but no text, as llama-cpp-python sends when another request cuts in.
    let server = TestServer::start(|_| {}).await;
    let (error, done, stored) = fail_with(&server, "[[tokens:0]] hello?").await;
    let ServerFrame::Error { code, message, .. } = error else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::UpstreamError);
    assert!(message.contains("without saying anything"), "{message}");
    assert!(matches!(
        done,
        ServerFrame::Done {
            finish_reason: FinishReason::Error,
            ..
        }
    ));
    assert_eq!(stored, "");
}
