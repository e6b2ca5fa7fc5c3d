//! Storage faults on the real binary: a disk filled on purpose (a small
//! tmpfs), a database locked by another process, a read-only file system,
//! and a database that cannot be opened at start. In each: a clear
//! `unavailable` refusal, a server that keeps answering, nothing
//! half-written, and recovery without a restart once the fault is gone.
//!
//! The tmpfs tests mount file systems, so they need root (as on this
//! machine and in CI); when mounting fails they fail and say why.

mod common;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{delta_text, process::Tether, uuid, WsClient, STEP};
use tether::protocol::{ClientFrame, ConversationId, ErrorCode, FinishReason, ServerFrame};
use tether_fake_upstream::{reply_tokens, FakeConfig, FakeUpstream};

/// A tmpfs of its own, lazily unmounted when dropped (also when a test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "these tests mount a tmpfs and need root: `mount -t tmpfs -o {options}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `remount,ro` or `remount,rw`.
    fn remount(&self, mode: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut written = 0_u64;
        for size in [chunk.len(), 4096, 1] {
            while let Ok(n @ 1..) = file.write(&chunk[..size]) {
                written += n as u64;
            }
        }
        assert!(written > 0, "the filler wrote something");
        assert!(
            file.write(&chunk[..1]).is_err(),
            "the file system is full now"
        );
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

async fn fake() -> FakeUpstream {
    FakeUpstream::start(FakeConfig {
        first_token_delay: Duration::from_millis(5),
        token_delay: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await
    .expect("fake upstream")
}

/// Sends `text` (into `conversation`, or a new one) and returns the refusal.
async fn refused_send(
    client: &mut WsClient,
    conversation: Option<&ConversationId>,
    text: &str,
) -> (ErrorCode, String, Option<u64>) {
    let key = uuid();
    client
        .send(&ClientFrame::Send {
            client_msg_id: key.as_str().into(),
            conversation_id: conversation.cloned(),
            text: text.into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    match client
        .until(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Accepted { .. }))
        .await
    {
        ServerFrame::Error {
            code,
            message,
            client_msg_id,
            retry_after_ms,
            ..
        } => {
            assert_eq!(client_msg_id, Some(key.as_str().into()), "names the send");
            (code, message, retry_after_ms)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Sends `text` into `conversation` and reads its reply to the end.
async fn chat(
    client: &mut WsClient,
    conversation: &ConversationId,
    text: &str,
) -> Vec<ServerFrame> {
    client.send_text_to(conversation, text).await;
    let accepted = client
        .until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(accepted, ServerFrame::Accepted { .. }),
        "{accepted:?}"
    );
    client.until_done(conversation).await
}

async fn list(client: &mut WsClient) -> ServerFrame {
    client
        .send(&ClientFrame::ListConversations { query: None })
        .await;
    client
        .until(|f| {
            matches!(
                f,
                ServerFrame::Conversations { .. } | ServerFrame::Error { .. }
            )
        })
        .await
}

fn count_conversations(frame: &ServerFrame) -> usize {
    match frame {
        ServerFrame::Conversations { items, .. } => items.len(),
        other => panic!("expected the list, got {other:?}"),
    }
}

async fn ping(client: &mut WsClient) {
    client.send(&ClientFrame::Ping { nonce: 7.into() }).await;
    assert!(matches!(
        client
            .until(|f| matches!(f, ServerFrame::Pong { .. }))
            .await,
        ServerFrame::Pong { .. }
    ));
}

fn is_fault_line(line: &str, kind: &str) -> bool {
    line.contains("storage fault") && line.contains(&format!("\"kind\":\"{kind}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_disk_full_refuses_sends_cleanly_and_recovers_when_space_is_freed() {
    let fake = fake().await;
    let fs = Tmpfs::mount("size=8m");
    let data = fs.path().join("data");
    let mut tether = Tether::spawn(
        &fake.base_url(),
        &[("TETHER_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    let mut client = tether.user().await;
    let conversation = client.start_conversation("before the disk fills").await;
    client.until_done(&conversation).await;

    let filler = fs.fill();
    let model_calls = fake
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let (code, message, retry) = refused_send(&mut client, Some(&conversation), "no room").await;
    assert_eq!(code, ErrorCode::Unavailable);
    assert!(message.contains("disk is full"), "{message}");
    assert!(retry.is_some(), "a hint when to try again");
    let (code, _, _) = refused_send(&mut client, None, "a new conversation").await;
    assert_eq!(
        code,
        ErrorCode::Unavailable,
        "no conversation without its message"
    );

    // The HTTP transport refuses the same way, with 503.
    let response = reqwest::Client::new()
        .post(tether.url("/api/chat"))
        .header("origin", tether.url(""))
        .header("cookie", &client.cookie)
        .header("content-type", "application/json")
        .body(r#"{"client_msg_id":"http-1","text":"over HTTP"}"#)
        .send()
        .await
        .expect("POST /api/chat");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.expect("error frame");
    assert_eq!(body["code"], "unavailable");

    // Everything else still answers; nothing was half-written.
    ping(&mut client).await;
    assert_eq!(tether.get("/healthz").await.0, 200);
    let (status, ready) = tether.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("full"), "{ready}");
    assert_eq!(count_conversations(&list(&mut client).await), 1);
    let stored = client.snapshot(&conversation).await;
    assert_eq!(stored.len(), 2, "the first exchange only: {stored:?}");
    assert_eq!(
        fake.stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        model_calls,
        "no model call for a message that was not stored"
    );
    assert!(
        tether
            .metric("tether_store_faults_total{kind=\"full\"}")
            .await
            >= 3.0
    );
    assert!(
        tether
            .metric("tether_errors_total{code=\"unavailable\"}")
            .await
            >= 3.0
    );

    // Space again: the next send works, without a restart.
    std::fs::remove_file(filler).expect("remove the filler");
    let frames = chat(&mut client, &conversation, "room again").await;
    assert_eq!(delta_text(&frames), reply_tokens("room again").concat());
    assert_eq!(client.snapshot(&conversation).await.len(), 4);
    assert_eq!(tether.get("/readyz").await.0, 200);
    tether.wait_log(|l| l.contains("storage recovered"));
    let full_lines = tether
        .log
        .iter()
        .filter(|l| is_fault_line(l, "full"))
        .count();
    assert_eq!(
        full_lines, 1,
        "one log line for the fault, not one per failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_whose_final_write_fails_ends_with_error_and_done() {
    let fake = fake().await;
    let fs = Tmpfs::mount("size=8m");
    let data = fs.path().join("data");
    let tether = Tether::spawn(
        &fake.base_url(),
        &[("TETHER_DATA_DIR", data.to_str().expect("utf-8"))],
    );
    let mut client = tether.user().await;
    let text = "[[tokens:40]] [[delay:30]] tell me a story";
    let conversation = client.start_conversation(text).await;
    let mut frames = vec![
        client
            .until(|f| matches!(f, ServerFrame::Delta { .. }))
            .await,
    ];
    let filler = fs.fill();
    frames.extend(client.until_done(&conversation).await);
    let error = frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::Error { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        })
        .expect("an error frame before done");
    assert_eq!(error.0, ErrorCode::Unavailable);
    assert!(error.1.contains("not saved"), "{}", error.1);
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Done {
            finish_reason: FinishReason::Error,
            ..
        })
    ));
    let streamed = delta_text(&frames);
    assert_eq!(
        streamed,
        reply_tokens(text).concat(),
        "the client saw it all"
    );

    // What is shown after is what is stored: the reply as failed, with the
    // text of its last checkpoint (if one got in before the disk filled).
    let stored = client.snapshot(&conversation).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].finish_reason, Some(FinishReason::Error));
    assert!(streamed.starts_with(&stored[1].content));

    std::fs::remove_file(filler).expect("remove the filler");
    chat(&mut client, &conversation, "and now?").await;
    let stored = client.snapshot(&conversation).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3].finish_reason, Some(FinishReason::Stop));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_another_process_is_refused_in_time_and_recovered() {
    let fake = fake().await;
    let dir = tempfile::tempdir().expect("tmp");
    let tether = Tether::spawn(
        &fake.base_url(),
        &[
            ("TETHER_DATA_DIR", dir.path().to_str().expect("utf-8")),
            ("STORE_BUSY_TIMEOUT_SECS", "0.3"),
        ],
    );
    let mut client = tether.user().await;
    let conversation = client.start_conversation("hello").await;
    client.until_done(&conversation).await;

    let other = rusqlite::Connection::open(dir.path().join("tether.db")).expect("open");
    other.busy_timeout(STEP).expect("busy timeout");
    other
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("take the lock");
    let asked = Instant::now();
    let (code, message, _) = refused_send(&mut client, Some(&conversation), "locked?").await;
    assert_eq!(code, ErrorCode::Unavailable);
    assert!(message.contains("locked"), "{message}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "refused, not hung"
    );
    assert_eq!(client.snapshot(&conversation).await.len(), 2, "reads go on");
    let (status, ready) = tether.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("locked"), "{ready}");
    assert!(
        tether
            .metric("tether_store_faults_total{kind=\"locked\"}")
            .await
            >= 1.0
    );

    other.execute_batch("COMMIT").expect("release the lock");
    chat(&mut client, &conversation, "free again").await;
    assert_eq!(client.snapshot(&conversation).await.len(), 4);
    assert_eq!(tether.get("/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_refuses_writes_and_recovers_when_writable() {
    let fake = fake().await;
    let fs = Tmpfs::mount("size=8m");
    let data = fs.path().join("data");
    let env = [("TETHER_DATA_DIR", data.to_str().expect("utf-8"))];
    let tether = Tether::spawn(&fake.base_url(), &env);
    let mut client = tether.user().await;
    let cookie = client.cookie.clone();
    let conversation = client.start_conversation("written while writable").await;
    client.until_done(&conversation).await;
    drop(client);
    tether.stop().await;

    // The file system comes back read-only (as after a disk error).
    fs.remount("ro");
    let mut tether = Tether::spawn(&fake.base_url(), &env);
    tether.wait_log(|l| l.contains("database unavailable at start"));
    let mut client = tether.connect(&cookie).await;
    let (code, message, _) = refused_send(&mut client, Some(&conversation), "read-only?").await;
    assert_eq!(code, ErrorCode::Unavailable);
    assert!(message.contains("read-only"), "{message}");
    ping(&mut client).await;
    assert_eq!(tether.get("/healthz").await.0, 200);
    assert_eq!(tether.get("/readyz").await.0, 503);

    fs.remount("rw");
    chat(&mut client, &conversation, "writable again").await;
    let stored = client.snapshot(&conversation).await;
    assert_eq!(stored.len(), 4, "history kept, the new exchange stored");
    assert_eq!(stored[0].content, "written while writable");
    assert_eq!(tether.get("/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_unavailable_at_start_is_served_degraded_then_opened() {
    let fake = fake().await;
    // The database's file system is there but read-only and empty: the
    // file can be neither opened nor created.
    let fs = Tmpfs::mount("size=8m,ro");
    let secret_dir = tempfile::tempdir().expect("tmp");
    let db = fs.path().join("db").join("tether.db");
    let mut tether = Tether::spawn(
        &fake.base_url(),
        &[
            (
                "TETHER_DATA_DIR",
                secret_dir.path().to_str().expect("utf-8"),
            ),
            ("DATABASE_URL", db.to_str().expect("utf-8")),
        ],
    );
    tether.wait_log(|l| l.contains("database unavailable at start"));
    assert_eq!(tether.get("/healthz").await.0, 200);
    let (status, ready) = tether.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    assert_eq!(ready["database"]["ok"], false, "{ready}");

    let mut client = tether.user().await;
    let (code, _, _) = refused_send(&mut client, None, "anyone there?").await;
    assert_eq!(code, ErrorCode::Unavailable);
    match list(&mut client).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Unavailable),
        other => panic!("expected unavailable, got {other:?}"),
    }

    fs.remount("rw");
    let conversation = client.start_conversation("there you are").await;
    client.until_done(&conversation).await;
    assert_eq!(count_conversations(&list(&mut client).await), 1);
    assert_eq!(tether.get("/readyz").await.0, 200);
    assert!(db.exists(), "created where it was asked for");
}
