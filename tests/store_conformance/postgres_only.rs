//! What only the PostgreSQL store has: instances migrating one database at
//! once, staleness by the database's clock, and its faults.

use std::time::Duration;

use tether::{
    protocol::FinishReason,
    server::{
        config::{DatabaseUrl, LimitsConfig},
        store::{self, FaultKind, NewUserMessage, ReplyRun, SendOutcome, StoreError, Target},
    },
};

use crate::common::postgres::fresh_database;

/// Runs `sql` on the database at `url` (a test's own hand on it).
async fn sql(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    connection
        .await
        .expect("connection task")
        .expect("closes cleanly");
}

/// The single value `sql` selects.
async fn select_i64(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let connection = tokio::spawn(connection);
    let value = client
        .query_one(sql, &[])
        .await
        .expect(sql)
        .try_get(0)
        .expect("an i64");
    drop(client);
    connection
        .await
        .expect("connection task")
        .expect("closes cleanly");
    value
}

async fn open(url: &str) -> Result<store::OpenedStore, StoreError> {
    let url: DatabaseUrl = url.parse().expect("a postgres:// URL");
    store::open(&url, &LimitsConfig::defaults()).await
}

fn send(key: &str, instance: &str) -> NewUserMessage {
    NewUserMessage {
        user_id: "u".into(),
        client_msg_id: key.into(),
        target: Target::New {
            persona: "p".into(),
            title: "t".into(),
            greeting: None,
            model: "m".into(),
        },
        text: "hello".into(),
        history: 40,
        run: ReplyRun::new(instance),
        replaces: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_starting_at_once_migrate_once() {
    let url = fresh_database().await;
    let (a, b) = tokio::join!(open(&url), open(&url));
    let (a, b) = (a.expect("a opens"), b.expect("b opens"));
    assert_eq!(
        select_i64(&url, "SELECT count(*) FROM tether_schema_migrations").await,
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .expect("the migrations")
            .count() as i64,
        "every migration applied once"
    );
    let SendOutcome::Stored { conversation, .. } = a
        .store
        .add_user_message(send("k", "a"))
        .await
        .expect("stored")
    else {
        panic!("stored")
    };
    assert_eq!(
        b.store
            .conversation(&"u".into(), &conversation.id)
            .await
            .expect("the other instance sees it"),
        conversation
    );
    drop(open(&url).await.expect("a third start migrates nothing"));
}

#[tokio::test]
async fn a_database_newer_than_the_build_is_refused() {
    let url = fresh_database().await;
    drop(open(&url).await.expect("migrated"));
    sql(
        &url,
        "INSERT INTO tether_schema_migrations (version) VALUES (99)",
    )
    .await;
    match open(&url).await {
        Err(StoreError::Migrate(why)) => assert!(why.contains("99"), "{why}"),
        Err(other) => panic!("refused as a migration problem, not {other}"),
        Ok(_) => panic!("refused"),
    }
}

#[tokio::test]
async fn staleness_is_judged_by_the_database_clock() {
    let url = fresh_database().await;
    let opened = open(&url).await.expect("opens");
    let s = opened.store;
    let SendOutcome::Stored { reply, .. } =
        s.add_user_message(send("k1", "old")).await.expect("stored")
    else {
        panic!("stored")
    };
    s.add_user_message(send("k2", "fresh"))
        .await
        .expect("stored");
    s.heartbeat("old").await.expect("heartbeat");
    s.heartbeat("fresh").await.expect("heartbeat");
    let stale = Duration::from_secs(60);
    assert!(s.orphaned_replies(stale).await.expect("orphans").is_empty());
    // Last seen two minutes ago by the database's clock, whatever ours says.
    sql(
        &url,
        "UPDATE instances SET seen_at = now() - interval '2 minutes' WHERE id = 'old'",
    )
    .await;
    let orphans = s.orphaned_replies(stale).await.expect("orphans");
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert_eq!(orphans[0].message_id, reply.id);
    assert!(s
        .orphaned_replies(Duration::from_secs(180))
        .await
        .expect("orphans")
        .is_empty());
}

#[tokio::test]
async fn a_read_only_database_fails_writes_as_read_only_and_ping_sees_it() {
    let url = fresh_database().await;
    let writable = open(&url).await.expect("opens").store;
    let SendOutcome::Stored { conversation, .. } = writable
        .add_user_message(send("k", "a"))
        .await
        .expect("stored")
    else {
        panic!("stored")
    };
    let name = url.rsplit('/').next().expect("a database name");
    sql(
        &url,
        &format!("ALTER DATABASE {name} SET default_transaction_read_only = on"),
    )
    .await;
    let opened = open(&url)
        .await
        .expect("an up-to-date database opens read-only");
    let s = opened.store;
    s.ping().await.expect("reads work");
    assert_eq!(
        s.messages(&conversation.id).await.expect("readable").len(),
        2
    );
    let err = s
        .add_user_message(send("k2", "a"))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, StoreError::Fault(f) if f.kind == FaultKind::ReadOnly),
        "{err:?}"
    );
    assert!(
        matches!(s.ping().await, Err(StoreError::Fault(f)) if f.kind == FaultKind::ReadOnly),
        "while writes fail, ping tries one"
    );
    assert_eq!(opened.fault_counts.get(FaultKind::ReadOnly), 2);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_fault() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // Nothing listens there now.
    let url = format!("postgres://tether:secret@127.0.0.1:{port}/tether");
    match open(&url).await {
        Err(StoreError::Fault(fault)) => {
            assert_eq!(fault.kind, FaultKind::CannotOpen, "{fault}");
            assert!(fault.kind.is_transient());
            assert!(!fault.detail.contains("secret"), "{fault}");
            assert!(fault.detail.contains("refused"), "says why: {fault}");
        }
        Err(other) => panic!("a fault, not {other}"),
        Ok(_) => panic!("nothing listens on {port}"),
    }
}

#[tokio::test]
async fn a_terminated_connection_costs_at_most_one_request() {
    let url = fresh_database().await;
    let s = open(&url).await.expect("opens").store;
    let SendOutcome::Stored {
        conversation,
        reply,
        ..
    } = s.add_user_message(send("k", "a")).await.expect("stored")
    else {
        panic!("stored")
    };
    sql(
        &url,
        // With a timeout, it returns once the backend is gone.
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;
    match s.messages(&conversation.id).await {
        Ok(listed) => assert_eq!(listed.len(), 2),
        Err(StoreError::Fault(fault)) => {
            assert_eq!(fault.kind, FaultKind::CannotOpen, "{fault}");
        }
        Err(other) => panic!("{other}"),
    }
    assert_eq!(
        s.messages(&conversation.id)
            .await
            .expect("a fresh connection")
            .len(),
        2
    );
    assert!(
        matches!(
            s.finish_assistant(&reply.id, "not its run", "done", FinishReason::Stop, None)
                .await,
            Err(StoreError::Fenced)
        ),
        "writes reach the database again"
    );
}
