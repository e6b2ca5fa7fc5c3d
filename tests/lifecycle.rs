//! Restarts, graceful shutdown, SIGTERM on the real binary, dead peers.

mod common;

use std::time::Duration;

use common::{
    delta_text,
    process::{Tether, API_KEY},
    TestServer,
};
use tether::protocol::{ClientFrame, FinishReason, ServerFrame};
use tether_fake_upstream::{reply_tokens, FakeConfig, FakeUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn restart_keeps_history_and_identity() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("do you remember?").await;
    client.until_done(&conversation).await;
    let cookie = client.cookie.clone();
    drop(client);
    let (fake, dir) = (server.fake.clone(), server.dir.clone());
    server.shutdown().await;

    let server = TestServer::start_with(fake, dir, |_| {}).await;
    let mut client = server.connect(&cookie).await; // the persisted secret still verifies the cookie
    client
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
    let ServerFrame::Snapshot { messages, .. } = client.next().await else {
        panic!("snapshot after restart")
    };
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].content, "do you remember?");
    assert_eq!(
        messages[1].content,
        reply_tokens("do you remember?").concat()
    );
}

#[tokio::test]
async fn shutdown_lets_a_short_reply_finish_and_closes_with_1001() {
    let mut server = TestServer::start(|c| c.shutdown_grace = Duration::from_secs(10)).await;
    let mut client = server.user().await;
    let text = "[[delay:40]] almost done";
    let conversation = client.start_conversation(text).await;
    assert!(matches!(
        client
            .until(|f| matches!(f, ServerFrame::Delta { .. }))
            .await,
        ServerFrame::Delta { index: 0, .. }
    ));
    let task = server.begin_shutdown();
    let mut frames = vec![ServerFrame::Delta {
        conversation_id: conversation.clone(),
        message_id: "x".into(),
        index: 0,
        text: reply_tokens(text)[0].clone(),
    }];
    frames.extend(client.until_done(&conversation).await);
    assert_eq!(
        delta_text(&frames),
        reply_tokens(text).concat(),
        "finished within grace"
    );
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Done {
            finish_reason: FinishReason::Stop,
            ..
        })
    ));
    assert_eq!(client.closed().await, Some(1001));
    task.await.expect("join").expect("clean exit");
}

#[tokio::test]
async fn shutdown_past_the_grace_period_stops_and_stores_the_reply() {
    let mut server = TestServer::start(|c| c.shutdown_grace = Duration::from_millis(200)).await;
    let mut client = server.user().await;
    let conversation = client
        .start_conversation("[[long]] [[delay:100]] long story")
        .await;
    client
        .until(|f| matches!(f, ServerFrame::Delta { .. }))
        .await;
    let task = server.begin_shutdown();
    let frames = client.until_done(&conversation).await;
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Done {
            finish_reason: FinishReason::Stopped,
            ..
        })
    ));
    assert_eq!(client.closed().await, Some(1001));
    task.await.expect("join").expect("clean exit");

    // The stopped reply is in the database.
    let db = format!("sqlite://{}", server.db_path().display());
    let store = tether::server::store::SqliteStore::connect(&db)
        .await
        .expect("db");
    use tether::server::store::Store;
    let messages = store.messages(&conversation).await.expect("messages");
    assert_eq!(messages[1].finish_reason, Some(FinishReason::Stopped));
    assert!(!messages[1].content.is_empty());
}

#[tokio::test]
async fn sigterm_mid_stream_stores_the_message_and_exits_zero() {
    let fake = FakeUpstream::start(FakeConfig {
        first_token_delay: Duration::from_millis(5),
        token_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .expect("fake");
    let dir = tempfile::tempdir().expect("tmp");
    let env = [("SHUTDOWN_GRACE_SECS", "0.3")];
    let mut server = Tether::spawn_in(dir.path(), &fake.base_url(), &env);
    let mut client = server.user().await;
    let conversation = client.start_conversation("[[long]] keep going").await;
    client
        .until(|f| matches!(f, ServerFrame::Delta { .. }))
        .await;

    server.terminate();
    let frames = client.until_done(&conversation).await;
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Done {
            finish_reason: FinishReason::Stopped,
            ..
        })
    ));
    let status = server.exit().await;
    assert_eq!(status.code(), Some(0), "exit code 0 after SIGTERM");
    assert!(
        server.read_log().iter().all(|l| !l.contains(API_KEY)),
        "the API key never reaches the log"
    );

    let db = format!("sqlite://{}/tether.db", dir.path().display());
    let store = tether::server::store::SqliteStore::connect(&db)
        .await
        .expect("db");
    use tether::server::store::Store;
    let messages = store.messages(&conversation).await.expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].finish_reason, Some(FinishReason::Stopped));
    assert!(!messages[1].content.is_empty(), "partial text stored");
}

/// `kill -9` at random moments of a streaming reply, then a restart: the
/// stored reply keeps its text up to the last checkpoint (at the defaults,
/// every 64 tokens or 1 s), with `finish_reason: "error"`. `KILLS` sets the
/// number of kills (3 by default; the README's figure is from `KILLS=20`),
/// `KILL_SEED` replays a run. Prints the bytes the client had seen that the
/// stored reply lacks, per kill and the worst.
#[tokio::test]
async fn kill_9_mid_stream_keeps_the_checkpointed_text() {
    let kills: usize = std::env::var("KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(1, |d| d.as_nanos() as u64) | 1
        });
    eprintln!("KILL_SEED={seed}");
    let mut rng = seed;
    let mut next_random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let fake = FakeUpstream::start(FakeConfig {
        first_token_delay: Duration::from_millis(5),
        token_delay: Duration::from_millis(10),
        ..Default::default()
    })
    .await
    .expect("fake");
    let mut worst = 0;
    for kill in 0..kills {
        // A moment between the first token and ~4 s of streaming (100 tokens/s).
        let after_tokens = 1 + (next_random() % 400) as usize;
        let lost = kill_at(&fake, after_tokens).await;
        eprintln!("kill {kill}: after {after_tokens} tokens seen, {lost} bytes lost");
        worst = worst.max(lost);
    }
    eprintln!("worst over {kills} kills: {worst} bytes lost");
}

/// One kill after the client saw `after_tokens` tokens; the bytes it saw
/// that the stored reply lacks.
async fn kill_at(fake: &FakeUpstream, after_tokens: usize) -> usize {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = Tether::spawn_in(dir.path(), &fake.base_url(), &[]);
    let mut client = server.user().await;
    let cookie = client.cookie.clone();
    let prompt = "[[tokens:2000]] go on";
    let full = reply_tokens(prompt).concat();
    let conversation = client.start_conversation(prompt).await;
    let mut frames = Vec::new();
    while delta_text(&frames).split_whitespace().count() < after_tokens {
        frames.push(client.next().await);
    }
    server.kill_9().await;
    let seen = delta_text(&frames);

    // Restart on the same data: the reply is recovered with its checkpoint.
    let server = Tether::spawn_in(dir.path(), &fake.base_url(), &[]);
    let mut client = server.connect(&cookie).await;
    let messages = client.snapshot(&conversation).await;
    let reply = &messages[1];
    assert_eq!(reply.finish_reason, Some(FinishReason::Error));
    assert!(
        full.starts_with(&reply.content) && full.starts_with(&seen),
        "stored and seen text are both the reply's beginning: {:?} / {:?}",
        reply.content,
        seen
    );
    let (stored, shown) = (
        reply.content.split_whitespace().count(),
        seen.split_whitespace().count(),
    );
    // At most the tokens after the last checkpoint (64), and those of one
    // write still in flight, are missing.
    assert!(
        stored + 2 * 64 >= shown,
        "stored {stored} of the {shown} tokens the client saw"
    );
    drop(server);
    seen.len().saturating_sub(reply.content.len())
}

/// Reads frames into `frames` until their deltas hold `words` more words.
async fn read_words(client: &mut common::WsClient, frames: &mut Vec<ServerFrame>, words: usize) {
    let count = |frames: &[ServerFrame]| delta_words(frames).split_whitespace().count();
    let target = count(frames) + words;
    while count(frames) < target {
        frames.push(client.next().await);
    }
}

/// The deltas' text, whatever index the first one has.
fn delta_words(frames: &[ServerFrame]) -> String {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Delta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Subscribes and returns the stored reply (the conversation's second message).
async fn stored_reply(
    client: &mut common::WsClient,
    conversation: &tether::protocol::ConversationId,
) -> tether::protocol::Message {
    client
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
    match client
        .until(|f| matches!(f, ServerFrame::Snapshot { .. }))
        .await
    {
        ServerFrame::Snapshot {
            mut messages,
            streaming: None,
            ..
        } if messages.len() == 2 => messages.remove(1),
        other => panic!("expected a snapshot of two stored messages, got {other:?}"),
    }
}

#[tokio::test]
async fn continue_after_kill_9_completes_the_reply_from_its_checkpoints() {
    const EVERY: usize = 4;
    const TEXT: &str = "[[tokens:300]] go on";
    let fake = FakeUpstream::start(FakeConfig {
        first_token_delay: Duration::from_millis(5),
        token_delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await
    .expect("fake");
    let dir = tempfile::tempdir().expect("tmp");
    let every = EVERY.to_string();
    let env = [("CHECKPOINT_TOKENS", every.as_str())];
    // Killed mid-reply.
    let mut server = Tether::spawn_in(dir.path(), &fake.base_url(), &env);
    let mut client = server.user().await;
    let cookie = client.cookie.clone();
    let conversation = client.start_conversation(TEXT).await;
    read_words(&mut client, &mut Vec::new(), 4 * EVERY).await;
    server.kill_9().await;

    // Restarted, continued from the checkpoint, killed again mid-continuation.
    let mut server = Tether::spawn_in(dir.path(), &fake.base_url(), &env);
    let mut client = server.connect(&cookie).await;
    let first = stored_reply(&mut client, &conversation).await;
    assert_eq!(first.finish_reason, Some(FinishReason::Error));
    assert!(!first.content.is_empty(), "a checkpoint was stored");
    client
        .send(&ClientFrame::Continue {
            conversation_id: conversation.clone(),
            client_msg_id: "more-1".into(),
        })
        .await;
    read_words(&mut client, &mut Vec::new(), 4 * EVERY).await;
    server.kill_9().await;

    // The continuation's checkpoints hold the whole text, not only what it added.
    let mut server = Tether::spawn_in(dir.path(), &fake.base_url(), &env);
    let mut client = server.connect(&cookie).await;
    let second = stored_reply(&mut client, &conversation).await;
    assert_eq!(second.id, first.id);
    assert_eq!(second.finish_reason, Some(FinishReason::Error));
    assert!(
        second.content.starts_with(&first.content) && second.content.len() > first.content.len(),
        "{:?} then {:?}",
        first.content,
        second.content
    );

    // Continued once more, to the end: the whole reply, stored.
    client
        .send(&ClientFrame::Continue {
            conversation_id: conversation.clone(),
            client_msg_id: "more-2".into(),
        })
        .await;
    let frames = client.until_done(&conversation).await;
    let whole = reply_tokens(TEXT).concat();
    assert_eq!(format!("{}{}", second.content, delta_words(&frames)), whole);
    let done = stored_reply(&mut client, &conversation).await;
    assert_eq!(done.content, whole);
    assert_eq!(done.finish_reason, Some(FinishReason::Stop));
    server.kill_9().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let server = TestServer::start(|c| c.ws_ping_interval = Duration::from_millis(400)).await;
    let cookie = server.cookie().await;
    // A raw client: completes the handshake, then never reads or answers again.
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        addr = server.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("handshake");
    // Drain until the server closes the TCP connection (read returns 0).
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the dead peer was disconnected");
    // Live peers (tungstenite answers pings) stay connected across several intervals.
    let mut live = server.connect(&cookie).await;
    let conversation = live.start_conversation("[[delay:60]] still here?").await;
    live.until_done(&conversation).await;
    live.send(&ClientFrame::Ping { nonce: 2.into() }).await;
    assert!(matches!(live.next().await, ServerFrame::Pong { .. }));
}

/// A port another process holds: the server exits before it listens
/// (saying why on stderr) instead of running without a socket, and the
/// harness reports that as a failed start with the log, not a hang.
#[tokio::test]
async fn a_taken_port_ends_the_server_before_it_listens() {
    let fake = FakeUpstream::start(FakeConfig::default())
        .await
        .expect("fake upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = holder.local_addr().expect("addr").port();
    let data = dir.path().display().to_string();
    let upstream = fake.base_url();
    let failure = tokio::task::spawn_blocking(move || {
        Tether::try_spawn_on(port, &upstream, &[("TETHER_DATA_DIR", data.as_str())]).err()
    })
    .await
    .expect("join")
    .expect("the server exits: its port is taken");
    assert!(
        failure.contains(&format!("port {port} exited")),
        "{failure}"
    );
    drop(holder);
}
