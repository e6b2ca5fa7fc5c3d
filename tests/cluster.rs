//! Several real `tether` processes on one PostgreSQL and one Redis, with
//! HAProxy in front (`tests/common/cluster.rs`): what a person's tabs on
//! different instances see, one reply at a time, limits over the cluster,
//! stop anywhere, an instance killed mid-reply, Redis restarted mid-stream,
//! one session secret.

mod common;

use std::time::{Duration, Instant};

use common::{
    cluster::{Cluster, Storage, LEASE_SECS},
    postgres::fresh_database,
    uuid, WsClient,
};
use tether::protocol::{ClientFrame, ConversationId, ErrorCode, FinishReason, Role, ServerFrame};
use tether_fake_upstream::FakeConfig;

fn send(conversation: Option<&ConversationId>, client_msg_id: &str, text: &str) -> ClientFrame {
    ClientFrame::Send {
        client_msg_id: client_msg_id.into(),
        conversation_id: conversation.cloned(),
        text: text.into(),
        persona: None,
        greeting: None,
        model: None,
    }
}

/// A fake model answering a token every 5 ms.
fn fast() -> FakeConfig {
    FakeConfig {
        first_token_delay: Duration::from_millis(5),
        token_delay: Duration::from_millis(5),
        ..FakeConfig::default()
    }
}

async fn cluster_with(extra: &[(&str, &str)]) -> Cluster {
    Cluster::start_with(2, Storage::Shared(fresh_database().await), fast(), extra).await
}

/// What a client makes of one conversation's frames: the reply streaming in
/// it, from a snapshot's `streaming` and the deltas after it (each must be
/// the next one), until `done`.
#[derive(Debug, Default)]
struct View {
    text: String,
    next: u64,
    done: Option<FinishReason>,
    resyncs: usize,
    deltas: usize,
}

impl View {
    fn apply(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Snapshot { streaming, .. } => {
                self.resyncs += 1;
                if let Some(s) = streaming {
                    self.text = s.message.content.clone();
                    self.next = s.next_index;
                }
            }
            ServerFrame::Delta { index, text, .. } => {
                assert_eq!(*index, self.next, "deltas arrive in order, none missing");
                self.text.push_str(text);
                self.next += 1;
                self.deltas += 1;
            }
            ServerFrame::Done { finish_reason, .. } => self.done = Some(*finish_reason),
            _ => {}
        }
    }

    /// Reads `ws` until the reply is done.
    async fn follow_to_done(&mut self, ws: &mut WsClient) {
        while self.done.is_none() {
            let frame = ws.next().await;
            self.apply(&frame);
        }
    }

    /// Reads `ws` (following the reply) until a frame matches; returns it.
    async fn follow_until(
        &mut self,
        ws: &mut WsClient,
        pred: impl Fn(&ServerFrame) -> bool,
    ) -> ServerFrame {
        loop {
            let frame = ws.next().await;
            self.apply(&frame);
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Reads `ws` until at least `n` deltas were seen.
    async fn follow_to(&mut self, ws: &mut WsClient, n: usize) {
        while self.deltas < n && self.done.is_none() {
            let frame = ws.next().await;
            self.apply(&frame);
        }
    }
}

/// The last stored message of the conversation, read through `ws`.
async fn last_stored(
    ws: &mut WsClient,
    conversation: &ConversationId,
) -> tether::protocol::Message {
    ws.snapshot(conversation)
        .await
        .pop()
        .expect("a stored message")
}

/// One person's cookie and a socket of theirs on each instance.
async fn two_tabs(cluster: &Cluster) -> (String, WsClient, WsClient) {
    let cookie = cluster.instance(0).cookie().await;
    let a = cluster.connect(0, &cookie).await;
    // The cookie A signed is B's too (one session secret).
    let b = cluster.connect(1, &cookie).await;
    (cookie, a, b)
}

/// Follows the conversation on `ws` (its snapshot comes as the next frames).
async fn subscribe(ws: &mut WsClient, id: &ConversationId) {
    ws.send(&ClientFrame::Subscribe {
        conversation_id: id.clone(),
    })
    .await;
}

/// A conversation with one finished exchange, made through `ws`.
async fn conversation(ws: &mut WsClient) -> ConversationId {
    let id = ws.start_conversation("hello").await;
    ws.until_done(&id).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_on_another_instance_sees_the_reply_live_and_exact() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = conversation(&mut a).await;
    b.snapshot(&id).await;

    a.send(&send(Some(&id), &uuid(), "[[tokens:300]]")).await;
    let (mut seen_a, mut seen_b) = (View::default(), View::default());
    let user_message = b.until(|f| matches!(f, ServerFrame::Message { .. })).await;
    assert!(
        matches!(&user_message, ServerFrame::Message { message, .. } if message.role == Role::User && message.content == "[[tokens:300]]"),
        "B sees the message sent on A: {user_message:?}"
    );
    seen_a.follow_to_done(&mut a).await;
    seen_b.follow_to_done(&mut b).await;
    assert_eq!(
        seen_b.text.split_whitespace().count(),
        300,
        "every token, from the first delta on"
    );
    assert_eq!(seen_b.text, seen_a.text, "the same text on both instances");
    assert_eq!(last_stored(&mut b, &id).await.content, seen_b.text);
}

/// A reply's `begin` record is written in the same millisecond as the
/// user's message before it (one round trip to Redis): every follower, the
/// owner's own sockets included, must still apply it, so a reply streams
/// from its first delta without an unrequested `snapshot`. (Regression: the
/// `begin` deleted the log, the re-created stream gave it the very stream id
/// of the message, followers skipped it as already seen, and the first
/// delta then read as a gap: a resync, with a log read and a snapshot, for
/// nearly every reply.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_streams_from_its_first_delta_without_a_resync() {
    let cluster = cluster_with(&[]).await;
    let mut a = cluster.instance(0).user().await;
    for round in 0..5 {
        a.send(&send(None, &uuid(), "[[tokens:20]]")).await;
        let mut seen = View::default();
        seen.follow_to_done(&mut a).await;
        assert_eq!(seen.resyncs, 0, "round {round}: no snapshot in a new reply");
        // Tokens that arrive together are joined into one delta: count words.
        assert_eq!(
            seen.text.split_whitespace().count(),
            20,
            "round {round}: every token, from the delta with index 0"
        );
        assert_eq!(seen.done, Some(FinishReason::Stop));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_to_the_other_instance_mid_stream_resumes_exactly() {
    let cluster = cluster_with(&[]).await;
    let cookie = cluster.instance(0).cookie().await;
    let mut a = cluster.connect(0, &cookie).await;
    let id = a.start_conversation("[[tokens:400]]").await;
    let mut before = View::default();
    before.follow_to(&mut a, 40).await;
    drop(a);

    let mut b = cluster.connect(1, &cookie).await;
    subscribe(&mut b, &id).await;
    let mut after = View::default();
    after.follow_to_done(&mut b).await;
    assert!(
        after.text.starts_with(&before.text),
        "the resumed text goes on from what A's tab showed"
    );
    assert_eq!(after.done, Some(FinishReason::Stop));
    assert_eq!(last_stored(&mut b, &id).await.content, after.text);
    assert_eq!(after.text.split_whitespace().count(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_sent_to_both_instances_at_once_reaches_the_model_once() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let key = uuid();
    let frame = send(None, &key, "[[tokens:20]]");
    tokio::join!(a.send(&frame), b.send(&frame));
    let accepted = |f: &ServerFrame| matches!(f, ServerFrame::Accepted { .. });
    let (first, second) = tokio::join!(a.until(accepted), b.until(accepted));
    let (
        ServerFrame::Accepted {
            conversation_id: c1,
            message_id: m1,
            duplicate: d1,
            ..
        },
        ServerFrame::Accepted {
            conversation_id: c2,
            message_id: m2,
            duplicate: d2,
            ..
        },
    ) = (first, second)
    else {
        unreachable!()
    };
    assert_eq!((c1.clone(), m1), (c2, m2), "one conversation, one message");
    assert!(d1 != d2, "exactly one of the two is the duplicate");
    a.until_done(&c1).await;
    cluster.stats().wait_completed(1).await;
    assert_eq!(cluster.stats().requests(), 1, "the model was asked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sends_to_one_conversation_on_two_instances_one_is_busy() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = conversation(&mut a).await;
    let (ka, kb) = (uuid(), uuid());
    let (fa, fb) = (
        send(Some(&id), &ka, "[[tokens:50]]"),
        send(Some(&id), &kb, "[[tokens:50]]"),
    );
    tokio::join!(a.send(&fa), b.send(&fb));
    let answer =
        |f: &ServerFrame| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. });
    let (ra, rb) = tokio::join!(a.until(answer), b.until(answer));
    let busy = |f: &ServerFrame| {
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::Busy,
                ..
            }
        )
    };
    let accepted = |f: &ServerFrame| {
        matches!(
            f,
            ServerFrame::Accepted {
                duplicate: false,
                ..
            }
        )
    };
    assert!(
        (accepted(&ra) && busy(&rb)) || (busy(&ra) && accepted(&rb)),
        "one accepted, one busy: {ra:?} / {rb:?}"
    );
    let winner = if accepted(&ra) { &mut a } else { &mut b };
    winner.until_done(&id).await;
    let stored = winner.snapshot(&id).await;
    assert_eq!(
        stored.iter().filter(|m| m.role == Role::User).count(),
        2,
        "the refused message was not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_split_over_both_instances_gets_one_budget() {
    let cluster = cluster_with(&[("RATE_BURST", "4"), ("RATE_PER_SEC", "0.01")]).await;
    let cookie = cluster.instance(0).cookie().await;
    let mut sockets = [
        cluster.connect(0, &cookie).await,
        cluster.connect(1, &cookie).await,
    ];
    let (mut accepted, mut limited) = (0, 0);
    for n in 0..8 {
        let ws = &mut sockets[n % 2];
        ws.send(&send(None, &uuid(), "hi")).await;
        match ws
            .until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
            .await
        {
            ServerFrame::Accepted { .. } => accepted += 1,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted, limited), (4, 4), "one budget of 4 over both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sent_to_another_instance_aborts_the_upstream_request() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = a.start_conversation("[[tokens:5000]]").await;
    let mut seen_a = View::default();
    seen_a.follow_to(&mut a, 10).await;
    b.send(&ClientFrame::Stop {
        conversation_id: id.clone(),
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), cluster.stats().wait_aborted(1))
        .await
        .expect("the fake sees the request dropped");
    seen_a.follow_to_done(&mut a).await;
    assert_eq!(seen_a.done, Some(FinishReason::Stopped));
    let stored = last_stored(&mut b, &id).await;
    assert_eq!(stored.finish_reason, Some(FinishReason::Stopped));
    assert_eq!(stored.content, seen_a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_reply_is_finished_by_another_with_exactly_what_was_seen() {
    // `TETHER_TEST_LEASE_SECS=10` measures the default lease.
    let lease_secs = std::env::var("TETHER_TEST_LEASE_SECS").unwrap_or(LEASE_SECS.to_owned());
    let mut cluster = cluster_with(&[("REPLY_LEASE_SECS", &lease_secs)]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = a.start_conversation("[[tokens:5000]]").await;
    subscribe(&mut b, &id).await;
    let mut seen_b = View::default();
    seen_b.follow_to(&mut b, 60).await;

    cluster.kill_9(0).await;
    let killed = Instant::now();
    seen_b.follow_to_done(&mut b).await;
    let took = killed.elapsed();
    eprintln!(
        "kill -9 to done on the other instance: {} ms (lease {lease_secs} s); {} bytes seen",
        took.as_millis(),
        seen_b.text.len()
    );
    let lease = Duration::from_secs(lease_secs.parse().expect("secs"));
    assert_eq!(seen_b.done, Some(FinishReason::Error));
    assert!(
        took <= lease + Duration::from_secs(1),
        "done {took:?} after the kill (lease {lease:?})"
    );
    let stored = last_stored(&mut b, &id).await;
    assert_eq!(stored.finish_reason, Some(FinishReason::Error));
    assert_eq!(
        stored.content, seen_b.text,
        "the stored text is exactly what the subscriber saw"
    );
    assert_eq!(
        cluster
            .instance(1)
            .metric("tether_replies_recovered_total")
            .await,
        1.0
    );
    b.send(&send(Some(&id), &uuid(), "again")).await;
    let answer = b
        .until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(answer, ServerFrame::Accepted { .. }),
        "not busy: {answer:?}"
    );
    b.until_done(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_crashes_nothing_and_clients_resync() {
    let mut cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = a.start_conversation("[[tokens:600]]").await;
    subscribe(&mut b, &id).await;
    let mut seen_b = View::default();
    seen_b.follow_to(&mut b, 30).await;
    let snapshots = seen_b.resyncs;

    cluster.redis.restart().await;
    // Redis lost the reply's lease: a send on B is still `busy` (the
    // database backs the lease), and A's reply goes on.
    b.send(&send(Some(&id), &uuid(), "me too")).await;
    let answer = seen_b
        .follow_until(&mut b, |f| {
            matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. })
        })
        .await;
    assert!(
        matches!(
            answer,
            ServerFrame::Error {
                code: ErrorCode::Busy,
                ..
            }
        ),
        "{answer:?}"
    );
    seen_b.follow_to_done(&mut b).await;
    assert!(seen_b.resyncs > snapshots, "B started over from a snapshot");
    let stored = last_stored(&mut b, &id).await;
    assert_eq!(stored.finish_reason, Some(FinishReason::Stop));
    assert_eq!(stored.content, seen_b.text, "B ends with the whole reply");
    assert_eq!(stored.content.split_whitespace().count(), 600);
    for i in 0..2 {
        let (status, body) = cluster.instance(i).get("/readyz").await;
        assert_eq!(status, 200, "instance {i} ready again");
        let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(ready["live_state"]["kind"], "redis", "{body}");
        assert_eq!(ready["live_state"]["ok"], true, "{body}");
    }
    // Both still serve replies across instances.
    a.send(&send(Some(&id), &uuid(), "[[tokens:5]]")).await;
    let mut after = View::default();
    after.follow_to_done(&mut b).await;
    assert_eq!(after.text.split_whitespace().count(), 5);
    // The scripts sent by hash were loaded again (by whichever instance
    // first found them gone), not sent as text.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reloaded = (0..2).any(|i| {
            cluster
                .instance_mut(i)
                .read_log()
                .iter()
                .any(|line| line.contains("Redis lost the Lua scripts"))
        });
        if reloaded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no instance logged loading the scripts again"
        );
        // Polls the logs the instances' reader threads collect.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_socket_cap_holds_over_both_instances() {
    let cluster = cluster_with(&[("MAX_SOCKETS_PER_USER", "2")]).await;
    let cookie = cluster.instance(0).cookie().await;
    let _a = cluster.connect(0, &cookie).await;
    let _b = cluster.connect(1, &cookie).await;
    let mut third = cluster.connect_raw(0, &cookie).await;
    let refusal = third.next().await;
    assert!(
        matches!(
            &refusal,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{refusal:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_session_secret_refuses_to_start() {
    let database = fresh_database().await;
    let cluster = Cluster::start_with(1, Storage::Shared(database.clone()), fast(), &[]).await;
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tether"))
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", common::free_port()))
            .env("DATABASE_URL", &database)
            .env("REDIS_URL", cluster.redis.url())
            .env(
                "SESSION_SECRET",
                "another-secret-another-secret-another-secret",
            )
            .env("OPENAI_BASE_URL", cluster.fake.base_url())
            .output(),
    )
    .await
    .expect("exits")
    .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SESSION_SECRET differs"),
        "a clear reason: {stderr}"
    );
}

/// The frames of `GET /api/conversations/{id}/events` on instance `i`,
/// until the server ends the response (after the reply's `done`).
async fn sse_frames(
    cluster: &Cluster,
    i: usize,
    cookie: &str,
    id: &ConversationId,
) -> Vec<ServerFrame> {
    use futures::StreamExt;
    let response = reqwest::Client::new()
        .get(cluster.instance_url(i, &format!("/api/conversations/{id}/events")))
        .header("origin", cluster.instance_url(i, ""))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET events");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("events arrive in time")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("stream ok")));
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("a frame"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_on_another_instance_follows_the_reply_exactly() {
    let cluster = cluster_with(&[]).await;
    let cookie = cluster.instance(0).cookie().await;
    let mut a = cluster.connect(0, &cookie).await;
    let id = a.start_conversation("[[tokens:300]]").await;
    let mut seen_a = View::default();
    seen_a.follow_to(&mut a, 20).await;
    let frames = sse_frames(&cluster, 1, &cookie, &id).await;
    let mut seen_sse = View::default();
    for frame in &frames {
        seen_sse.apply(frame);
    }
    seen_a.follow_to_done(&mut a).await;
    assert_eq!(seen_sse.done, Some(FinishReason::Stop));
    assert_eq!(seen_sse.text, seen_a.text, "the same text over SSE on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_on_another_instance_stops_the_reply_where_it_runs() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = a.start_conversation("[[tokens:5000]]").await;
    let mut seen_a = View::default();
    seen_a.follow_to(&mut a, 10).await;
    let items = b
        .conversations(ClientFrame::DeleteConversation {
            conversation_id: id.clone(),
        })
        .await;
    assert!(items.iter().all(|c| c.id != id), "deleted");
    tokio::time::timeout(Duration::from_secs(10), cluster.stats().wait_aborted(1))
        .await
        .expect("the fake sees the request dropped");
    seen_a.follow_to_done(&mut a).await;
    assert_eq!(seen_a.done, Some(FinishReason::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_on_another_instance_streams_into_every_tab() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = conversation(&mut a).await;
    b.snapshot(&id).await;
    b.send(&ClientFrame::Regenerate {
        conversation_id: id.clone(),
        client_msg_id: uuid().as_str().into(),
    })
    .await;
    // A's tab is told the reply is replaced, then sees it stream.
    let replaced = a
        .until(|f| {
            matches!(
                f,
                ServerFrame::Snapshot {
                    streaming: Some(_),
                    ..
                }
            )
        })
        .await;
    let mut seen_a = View::default();
    seen_a.apply(&replaced);
    seen_a.follow_to_done(&mut a).await;
    let mut seen_b = View::default();
    seen_b.follow_to_done(&mut b).await;
    assert_eq!(seen_a.done, Some(FinishReason::Stop));
    assert_eq!(seen_a.text, "You said: hello");
    assert_eq!(last_stored(&mut a, &id).await.content, seen_a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swipe_chosen_on_one_instance_is_shown_on_the_other() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    let id = conversation(&mut a).await;
    let first = last_stored(&mut a, &id).await;
    a.send(&ClientFrame::Regenerate {
        conversation_id: id.clone(),
        client_msg_id: uuid().as_str().into(),
    })
    .await;
    a.until_done(&id).await;
    b.snapshot(&id).await;
    a.send(&ClientFrame::SelectAlternative {
        conversation_id: id.clone(),
        message_id: first.id.clone(),
        index: 0,
    })
    .await;
    // B's tab, on the other instance, is shown the chosen reply.
    let shown = b
        .until(|f| {
            matches!(f, ServerFrame::Snapshot { messages, streaming: None, .. }
                if messages.last().is_some_and(|m| m.id == first.id))
        })
        .await;
    let ServerFrame::Snapshot { messages, .. } = shown else {
        unreachable!()
    };
    assert_eq!(
        messages[1].alternatives,
        Some(tether::protocol::Alternatives { index: 0, count: 2 })
    );
    // And the slot it took is free again on both: a send goes through.
    b.send_text_to(&id, "next").await;
    b.until_done(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_made_on_one_instance_is_announced_to_tabs_on_the_other() {
    let cluster = cluster_with(&[]).await;
    let (_, mut a, mut b) = two_tabs(&cluster).await;
    conversation(&mut a).await;
    let notice = b.until(|f| matches!(f, ServerFrame::Changed { .. })).await;
    assert_eq!(
        notice,
        ServerFrame::Changed {
            what: tether::protocol::Changed::Conversations
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starting_leaves_the_replies_of_the_others_alone() {
    let mut cluster = cluster_with(&[]).await;
    let cookie = cluster.instance(0).cookie().await;
    let mut a = cluster.connect(0, &cookie).await;
    let id = a.start_conversation("[[tokens:600]]").await;
    let mut seen_a = View::default();
    seen_a.follow_to(&mut a, 20).await;
    // B starts again while A's reply streams: its start-up must not mark
    // A's reply interrupted (on one instance alone, start-up does that).
    cluster.restart(1).await;
    seen_a.follow_to_done(&mut a).await;
    assert_eq!(seen_a.done, Some(FinishReason::Stop));
    let stored = last_stored(&mut a, &id).await;
    assert_eq!(stored.finish_reason, Some(FinishReason::Stop));
    assert_eq!(stored.content.split_whitespace().count(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_right_after_done_is_never_busy_on_either_instance() {
    let cluster = cluster_with(&[]).await;
    let cookie = cluster.instance(0).cookie().await;
    let mut sockets = [
        cluster.connect(0, &cookie).await,
        cluster.connect(1, &cookie).await,
    ];
    let id = conversation(&mut sockets[0]).await;
    for round in 0..20 {
        // The `done` releases the lease in the same step that announces it.
        let ws = &mut sockets[round % 2];
        ws.send(&send(Some(&id), &uuid(), "[[tokens:2]]")).await;
        let answer = ws
            .until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
            .await;
        assert!(
            matches!(answer, ServerFrame::Accepted { .. }),
            "round {round}: {answer:?}"
        );
        // This reply's `done` (the previous one's may still be on its way
        // to this socket): the reply is the message its deltas are about.
        let first = ws
            .until(|f| matches!(f, ServerFrame::Delta { index: 0, .. }))
            .await;
        let ServerFrame::Delta { message_id, .. } = first else {
            unreachable!()
        };
        ws.until(|f| matches!(f, ServerFrame::Done { message_id: m, .. } if *m == message_id))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_redis_gone_and_back() {
    let mut cluster = cluster_with(&[]).await;
    cluster.redis.kill();
    let tether = cluster.instance(0);
    // While Redis goes away a probe may see its connection reset (rarely,
    // under load; cause not found): a load balancer counts that as not
    // ready, and so does this poll. A process that died never answers
    // again, and the poll fails after its 20 s.
    common::poll_until("/readyz says Redis is gone", || async {
        let Ok((status, body)) = tether.try_get("/readyz").await else {
            return Ok(false);
        };
        let ready: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        Ok(status == 503 && ready["live_state"]["ok"] == false)
    })
    .await;
    cluster.redis.restart().await;
    let tether = cluster.instance(0);
    common::poll_until("/readyz says Redis is back", || async {
        Ok(matches!(tether.try_get("/readyz").await, Ok((200, _))))
    })
    .await;
    assert_eq!(tether.get("/healthz").await.0, 200, "the process is up");
}

/// Signs up on instance `i` (accounts mode); the session cookie.
async fn sign_up_at(cluster: &Cluster, i: usize, username: &str) -> String {
    let origin = cluster.instance_url(i, "");
    let response = reqwest::Client::new()
        .post(cluster.instance_url(i, "/api/auth/signup"))
        .header("origin", &origin)
        .json(&serde_json::json!({"username": username, "password": "correct horse battery"}))
        .send()
        .await
        .expect("sign up");
    assert_eq!(response.status(), 200);
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tether_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_on_one_instance_closes_the_sessions_socket_on_the_other() {
    let cluster = cluster_with(&[("AUTH_MODE", "accounts")]).await;
    let cookie = sign_up_at(&cluster, 0, "ann").await;
    let mut elsewhere = cluster.connect(1, &cookie).await;
    let signed_out = reqwest::Client::new()
        .post(cluster.instance_url(0, "/api/auth/signout"))
        .header("origin", cluster.instance_url(0, ""))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sign out");
    assert_eq!(signed_out.status(), 204);
    assert_eq!(elsewhere.closed().await, Some(1008));
    for i in 0..2 {
        let hello = reqwest::Client::new()
            .get(cluster.instance_url(i, "/api/hello"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("hello");
        assert_eq!(hello.status(), 401, "the session is gone on instance {i}");
    }
}

/// The lease scripts on a real Redis: a renewal that arrives after the
/// reply's `done` gave its lease back does not take it again (the next
/// message would be `busy` for a lease time), while a lease Redis lost is
/// still taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_after_done_does_not_take_the_released_lease_again() {
    use tether::server::cluster::scripts::{EMIT, RENEW};
    let redis = common::redis::Redis::start().await;
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let (lease, log, ended) = ("tether:{c}:lease", "tether:{c}:log", "tether:{c}:ended");
    let emit = |kind: &str| {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(EMIT)
            .arg(3)
            .arg(lease)
            .arg(log)
            .arg(ended)
            .arg("i1:run1")
            .arg("tether:c:{c}")
            .arg("record")
            .arg(60_000)
            .arg(kind)
            .arg(10_000);
        cmd
    };
    let renew = |value: &str| {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RENEW)
            .arg(2)
            .arg(lease)
            .arg(ended)
            .arg(value)
            .arg(10_000);
        cmd
    };
    let _: redis::Value = emit("begin").query_async(&mut conn).await.expect("begin");
    let renewed: i64 = renew("i1:run1")
        .query_async(&mut conn)
        .await
        .expect("renew");
    assert_eq!(renewed, 1, "held: renewed");
    let _: redis::Value = emit("done").query_async(&mut conn).await.expect("done");
    let late: i64 = renew("i1:run1")
        .query_async(&mut conn)
        .await
        .expect("late renew");
    assert_eq!(late, 3, "after done: ended, not taken again");
    let held: Option<String> = redis::cmd("GET")
        .arg(lease)
        .query_async(&mut conn)
        .await
        .expect("get");
    assert_eq!(held, None, "the next message finds the conversation free");
    // A lease Redis lost (no `done` for it) is taken again.
    let retaken: i64 = renew("i1:run2")
        .query_async(&mut conn)
        .await
        .expect("renew");
    assert_eq!(retaken, 2);
}
