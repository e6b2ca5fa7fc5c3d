//! Limits that hold against one client minting identities, flooding frames
//! or trickling requests: per client address (with and without a trusted
//! proxy), the WebSocket frame budget, the header timeout. Real sockets; one
//! test runs the real binary with the settings as environment variables.

mod common;

use std::time::Duration;

use futures::SinkExt;

use common::{metric_at, process::Tether, uuid, TestServer, STEP};
use tether::protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `GET /` without a cookie, maybe through a proxy that says who the client is.
async fn visit(addr: impl std::fmt::Display, forwarded_for: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .timeout(STEP)
        .build()
        .expect("client");
    let mut request = client.get(format!("http://{addr}/"));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.expect("GET /")
}

fn send(text: &str) -> ClientFrame {
    ClientFrame::Send {
        client_msg_id: uuid().as_str().into(),
        conversation_id: None,
        text: text.into(),
        persona: None,
        greeting: None,
        model: None,
    }
}

#[tokio::test]
async fn new_identities_per_address_are_limited_and_a_cookie_still_works() {
    let server = TestServer::start(|c| {
        c.limits.identity_burst = 2;
        c.limits.identity_per_sec = 0.001;
    })
    .await;
    let cookie = server.cookie().await;
    assert!(visit(server.addr, None).await.status().is_success());
    let refused = visit(server.addr, None).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("set-cookie").is_none());
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    let reason = refused.text().await.expect("body");
    assert!(reason.contains("too many new visitors"), "{reason}");
    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    assert_eq!(visit(server.addr, Some("203.0.113.7")).await.status(), 429);
    // Someone who has an identity keeps using it.
    let mut client = server.connect(&cookie).await;
    let conversation = client.start_conversation("still here").await;
    client.until_done(&conversation).await;
    let series = "tether_address_limited_total{limit=\"identities\"}";
    assert_eq!(metric_at(server.addr, series).await, 2.0);
    server.shutdown().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let fake = tether_fake_upstream::FakeUpstream::start(Default::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("tmp");
    let env = [
        ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ("IDENTITY_BURST", "1"),
        ("IDENTITY_PER_SEC", "0.001"),
    ];
    let tether = Tether::spawn_in(dir.path(), &fake.base_url(), &env);
    let addr = format!("127.0.0.1:{}", tether.port);
    // The proxy appends the peer it saw; a client's own entry on the left is ignored.
    let alice = "198.51.100.1, 203.0.113.10";
    assert!(visit(&addr, Some(alice)).await.status().is_success());
    assert_eq!(visit(&addr, Some(alice)).await.status(), 429);
    let alice_forging = "198.51.100.99, 203.0.113.10";
    assert_eq!(visit(&addr, Some(alice_forging)).await.status(), 429);
    let bob = "203.0.113.11";
    assert!(visit(&addr, Some(bob)).await.status().is_success());
    // Through a chain of trusted proxies, still the first untrusted hop.
    let bob_via_two = "203.0.113.11, 10.1.2.3";
    assert_eq!(visit(&addr, Some(bob_via_two)).await.status(), 429);
    // IPv6 clients share the budget of their /64.
    assert!(visit(&addr, Some("2001:db8:1:2::1"))
        .await
        .status()
        .is_success());
    assert_eq!(visit(&addr, Some("2001:db8:1:2::abcd")).await.status(), 429);
    let series = "tether_address_limited_total{limit=\"identities\"}";
    assert_eq!(tether.metric(series).await, 4.0);
    tether.stop().await;
}

#[tokio::test]
async fn open_streams_per_address_hold_over_fresh_identities() {
    let server = TestServer::start(|c| {
        c.limits.max_streams_per_addr = 2;
        c.trusted_proxies = "127.0.0.1".parse().expect("valid");
    })
    .await;
    let _a = server.user().await;
    let _b = server.user().await;
    // A third identity from the same address: told why, then closed.
    let cookie = server.cookie().await;
    let mut third = server
        .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
        .await
        .expect("upgraded, then refused on the socket");
    match third.next().await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::RateLimited);
            assert!(message.contains("network address"), "{message}");
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(third.closed().await, Some(1008));
    // The HTTP transport counts against the same places.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/chat", server.addr))
        .header("origin", server.origin())
        .header("cookie", &cookie)
        .json(&serde_json::json!({"client_msg_id": uuid(), "text": "hi"}))
        .send()
        .await
        .expect("POST /api/chat");
    assert_eq!(response.status(), 429);
    let series = "tether_address_limited_total{limit=\"streams\"}";
    assert_eq!(metric_at(server.addr, series).await, 2.0);
    server.shutdown().await;
}

#[tokio::test]
async fn sends_per_address_are_limited_over_all_its_identities() {
    let server = TestServer::start(|c| {
        c.limits.addr_rate_burst = 2;
        c.limits.addr_rate_per_sec = 0.001;
    })
    .await;
    for text in ["one", "two"] {
        let mut client = server.user().await;
        let conversation = client.start_conversation(text).await;
        client.until_done(&conversation).await;
    }
    let mut third = server.user().await;
    let frame = send("three");
    let ClientFrame::Send { client_msg_id, .. } = &frame else {
        unreachable!()
    };
    let client_msg_id = client_msg_id.clone();
    third.send(&frame).await;
    match third.next().await {
        ServerFrame::Error {
            code,
            message,
            client_msg_id: refused,
            retry_after_ms,
            ..
        } => {
            assert_eq!(code, ErrorCode::RateLimited);
            assert!(message.contains("network address"), "{message}");
            assert_eq!(refused, Some(client_msg_id));
            assert!(retry_after_ms.is_some_and(|ms| ms > 0));
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    // Frames that start no reply are not counted.
    third
        .send(&ClientFrame::ListConversations { query: None })
        .await;
    assert!(matches!(
        third.next().await,
        ServerFrame::Conversations { .. }
    ));
    assert_eq!(
        server.stats().requests(),
        2,
        "the refused send reached no model"
    );
    let series = "tether_address_limited_total{limit=\"sends\"}";
    assert_eq!(metric_at(server.addr, series).await, 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_socket_that_floods_frames_is_told_once_then_closed() {
    let server = TestServer::start(|c| {
        c.limits.frame_burst = 5;
        c.limits.frames_per_sec = 0.001;
        c.limits.flood_close_after = 20;
    })
    .await;
    let mut client = server.user().await;
    let ping = |n: u64| ClientFrame::Ping {
        nonce: serde_json::json!(n),
    };
    for n in 0..5 {
        client.send(&ping(n)).await;
        assert!(matches!(client.next().await, ServerFrame::Pong { .. }));
    }
    // Over budget: dropped unread, one refusal, then closed with 1008.
    for n in 5..100 {
        if client
            .ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                ping(n).to_json(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    match client.next().await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::RateLimited);
            assert!(message.contains("too many frames"), "{message}");
        }
        other => panic!("expected one refusal, got {other:?}"),
    }
    assert_eq!(
        client.closed().await,
        Some(1008),
        "no pong for a dropped frame"
    );
    assert_eq!(
        metric_at(server.addr, "tether_flood_disconnects_total").await,
        1.0
    );
    // Others are unaffected.
    let mut other = server.user().await;
    other.send(&ping(1)).await;
    assert!(matches!(other.next().await, ServerFrame::Pong { .. }));
    server.shutdown().await;
}

/// Reads until the server closes the connection; what it sent, if anything.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(STEP, tcp.read_to_end(&mut seen)).await;
    assert!(
        read.is_ok(),
        "the server did not close the connection in time"
    );
    seen
}

#[tokio::test]
async fn slow_or_silent_clients_are_closed_after_the_header_timeout() {
    let server = TestServer::start(|c| c.limits.header_timeout = Duration::from_millis(300)).await;
    // Trickling a request that never ends (slowloris).
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .expect("write");
    // Connecting and saying nothing.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let answered = read_to_close(&mut slow).await;
    assert!(
        answered.is_empty() || answered.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    read_to_close(&mut silent).await;
    assert_eq!(
        metric_at(server.addr, "tether_slow_requests_closed_total").await,
        2.0
    );
    // A client that sends its request at once is served as always.
    let mut client = server.user().await;
    let conversation = client.start_conversation("hello").await;
    client.until_done(&conversation).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_forwarding_peer_that_is_not_trusted_is_pointed_out_once() {
    let fake = tether_fake_upstream::FakeUpstream::start(Default::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("tmp");
    let mut tether = Tether::spawn_in(dir.path(), &fake.base_url(), &[]);
    let addr = format!("127.0.0.1:{}", tether.port);
    for client in ["203.0.113.9", "203.0.113.10"] {
        assert!(visit(&addr, Some(client)).await.status().is_success());
    }
    let hint = "TRUSTED_PROXIES does not name";
    let line = tether.wait_log(|l| l.contains(hint));
    assert!(line.contains("TRUSTED_PROXIES=127.0.0.1"), "{line}");
    tether.terminate();
    tether.wait_log(|l| l.contains("\"message\":\"stopped\""));
    let told = tether
        .read_log()
        .iter()
        .filter(|l| l.contains(hint))
        .count();
    assert_eq!(told, 1, "said once");
    assert_eq!(tether.exit().await.code(), Some(0));
}
