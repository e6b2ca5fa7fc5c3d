//! Tether end to end on PostgreSQL: the same server, chosen by
//! `DATABASE_URL=postgres://…`, streams, stores and serves again after a
//! restart; the real binary never shows the database password. (Every
//! store behaviour is in `store_conformance.rs`; the server's own tests
//! run on SQLite.)

mod common;

use std::{sync::Arc, time::Duration};

use common::{delta_text, done_of, postgres::fresh_database, process::Tether, TestServer};
use tether::protocol::{FinishReason, Role, ServerFrame};
use tether_fake_upstream::{FakeConfig, FakeUpstream};

/// `url` with a password in its user info (the test server trusts local
/// connections, so any password is accepted).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => format!("{scheme}://{user}:{password}@{host}"),
        _ => url.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_streams_is_stored_and_is_served_after_a_restart() {
    let url = fresh_database().await;
    let on_postgres = |c: &mut tether::server::config::Config| {
        c.database = url.parse().expect("a postgres:// URL");
    };
    let server = TestServer::start(on_postgres).await;
    let mut tab = server.user().await;
    let conversation = tab.start_conversation("hello from postgres").await;
    let frames = tab.until_done(&conversation).await;
    let streamed = delta_text(&frames);
    assert!(!streamed.is_empty());
    assert!(matches!(
        done_of(&frames),
        ServerFrame::Done {
            finish_reason: FinishReason::Stop,
            ..
        }
    ));
    let cookie = tab.cookie.clone();
    let (fake, dir) = (server.fake.clone(), server.dir.clone());
    server.shutdown().await;

    // Another process would see the same: nothing was kept in memory.
    let again = TestServer::start_with(fake, dir, on_postgres).await;
    let mut tab = again.connect(&cookie).await;
    let messages = tab.snapshot(&conversation).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].role, Role::User);
    assert_eq!(messages[0].content, "hello from postgres");
    assert_eq!(messages[1].role, Role::Assistant);
    assert_eq!(messages[1].content, streamed, "stored exactly as streamed");
    assert_eq!(messages[1].finish_reason, Some(FinishReason::Stop));
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_on_postgres_never_logs_the_database_password() {
    const PASSWORD: &str = "pg-password-never-logged";
    let url = with_password(&fresh_database().await, PASSWORD);
    let fake = Arc::new(
        FakeUpstream::start(FakeConfig {
            token_delay: Duration::from_millis(1),
            ..FakeConfig::default()
        })
        .await
        .expect("fake upstream"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tether = Tether::spawn_in(
        dir.path(),
        &fake.base_url(),
        &[("DATABASE_URL", url.as_str())],
    );
    let mut tab = tether.user().await;
    let conversation = tab.start_conversation("hi").await;
    tab.until_done(&conversation).await;
    let (status, ready) = tether.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    tether.terminate();
    assert_eq!(tether.exit().await.code(), Some(0));
    let log = tether.read_log().join("\n");
    assert!(
        log.contains("PostgreSQL postgres://") && log.contains(":<redacted>@"),
        "the store is named, its password hidden:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

/// `tether --print-config` with `DATABASE_URL` set: its output and success.
fn print_config(database_url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", database_url)
        .arg("--print-config")
        .output()
        .expect("run tether");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn print_config_names_the_postgres_store_without_its_password() {
    let (ok, out) = print_config("postgres://tether:hunter2@db.internal:5432/tether");
    assert!(ok, "{out}");
    assert!(
        out.contains("store: PostgreSQL postgres://tether:<redacted>@db.internal:5432/tether"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");

    let (ok, out) = print_config("postgresql://tether:hunter2@db.internal:notaport/tether");
    assert!(!ok, "a bad port stops start-up: {out}");
    assert!(out.contains("DATABASE_URL"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}
