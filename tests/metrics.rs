//! `GET /metrics`: the Prometheus text format, and its counters moving under
//! scripted load, refusals and upstream failures.

mod common;

use common::{uuid, TestServer, WsClient};
use tether::protocol::{ClientFrame, ConversationId, ErrorCode, ServerFrame};

/// One scrape of `/metrics`.
struct Scrape(String);

impl Scrape {
    /// The value of one series, named exactly (labels included).
    fn get(&self, series: &str) -> f64 {
        common::series_value(&self.0, series)
    }
}

async fn scrape(server: &TestServer) -> Scrape {
    let response = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no identity is handed out with metrics"
    );
    Scrape(response.text().await.expect("body"))
}

/// Scrapes until `series` has `want` (a gauge that settles after a socket
/// closes); asserts the last value seen.
async fn settles(server: &TestServer, series: &str, want: f64) -> Scrape {
    let mut last = scrape(server).await;
    for _ in 0..200 {
        if last.get(series) == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        last = scrape(server).await;
    }
    assert_eq!(last.get(series), want, "{series} never reached {want}");
    last
}

/// Scrapes until `holds` is true of the scrape (a gauge that follows tasks
/// ending); asserts it of the last scrape.
async fn until_scrape(server: &TestServer, what: &str, holds: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = scrape(server).await;
    for _ in 0..200 {
        if holds(&last) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        last = scrape(server).await;
    }
    assert!(holds(&last), "{what} never held:\n{}", last.0);
    last
}

const MESSAGES: &str = "tether_messages_total";
const STOPPED_OK: &str = "tether_replies_total{finish_reason=\"stop\"}";
const REPLY_ERRORS: &str = "tether_replies_total{finish_reason=\"error\"}";
const TTFT_COUNT: &str = "tether_upstream_ttft_seconds_count";
const TTFT_INF: &str = "tether_upstream_ttft_seconds_bucket{le=\"+Inf\"}";
const UPSTREAM_COUNT: &str = "tether_upstream_duration_seconds_count";
const OPEN_SOCKETS: &str = "tether_open_sockets";
const RATE_LIMITED: &str = "tether_rate_limited_total";
const ALIVE_TASKS: &str = "tether_runtime_alive_tasks";

fn errors(code: ErrorCode) -> String {
    format!("tether_errors_total{{code=\"{}\"}}", code.as_str())
}

fn refused(reason: &str) -> String {
    format!("tether_ws_upgrades_refused_total{{reason=\"{reason}\"}}")
}

/// Two messages in one conversation, each awaited to `done`.
async fn chat_twice(mut client: WsClient, n: usize) -> WsClient {
    let conversation: ConversationId = client
        .start_conversation(&format!("private words {n}"))
        .await;
    client.until_done(&conversation).await;
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: Some(conversation.clone()),
            text: format!("more private words {n}"),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    client.until_done(&conversation).await;
    client
}

#[tokio::test]
async fn scripted_load_moves_counters_histograms_and_the_socket_gauge() {
    let server = TestServer::start(|_| {}).await;
    let before = scrape(&server).await;
    assert!(before
        .0
        .contains("# TYPE tether_upstream_ttft_seconds histogram"));
    assert_eq!(before.get(OPEN_SOCKETS), 0.0);

    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(server.user().await);
    }
    let cookies: Vec<String> = users.iter().map(|u| u.cookie.clone()).collect();
    let mut users = futures::future::join_all(
        users
            .into_iter()
            .enumerate()
            .map(|(n, user)| chat_twice(user, n)),
    )
    .await;

    let after = scrape(&server).await;
    let grew = |series: &str| after.get(series) - before.get(series);
    assert_eq!(grew(MESSAGES), 6.0, "3 users × 2 messages");
    assert_eq!(grew(STOPPED_OK), 6.0);
    assert_eq!(grew(REPLY_ERRORS), 0.0);
    assert_eq!(grew(TTFT_COUNT), 6.0);
    assert_eq!(grew(UPSTREAM_COUNT), 6.0);
    assert_eq!(after.get(TTFT_INF), after.get(TTFT_COUNT));
    assert!(after.get("tether_upstream_ttft_seconds_sum") > 0.0);
    assert!(
        after.get("tether_upstream_duration_seconds_sum")
            >= after.get("tether_upstream_ttft_seconds_sum")
    );
    assert_eq!(after.get(OPEN_SOCKETS), 3.0);
    for code in [ErrorCode::BadRequest, ErrorCode::RateLimited] {
        assert_eq!(after.get(&errors(code)), 0.0);
    }
    // Counts only: no message text, no user id.
    assert!(!after.0.contains("private words"));
    for cookie in &cookies {
        let value = cookie.split_once('=').expect("name=value").1;
        let user = value.split('.').next().expect("user.signature");
        assert!(!after.0.contains(user), "user id {user} leaked");
    }

    // A retried `send` is answered as a duplicate and is not a new message.
    let retry = uuid();
    let first = &mut users[0];
    for attempt in 0..2 {
        first
            .send(&ClientFrame::Send {
                client_msg_id: retry.as_str().into(),
                conversation_id: None,
                text: "said once".into(),
                persona: None,
                greeting: None,
                model: None,
            })
            .await;
        let accepted = first
            .until(|f| matches!(f, ServerFrame::Accepted { client_msg_id, .. } if client_msg_id.as_str() == retry))
            .await;
        let ServerFrame::Accepted {
            conversation_id,
            duplicate,
            ..
        } = accepted
        else {
            unreachable!()
        };
        assert_eq!(duplicate, attempt == 1);
        if !duplicate {
            first.until_done(&conversation_id).await;
        }
    }
    let retried = scrape(&server).await;
    assert_eq!(retried.get(MESSAGES) - after.get(MESSAGES), 1.0);
    assert_eq!(retried.get(STOPPED_OK) - after.get(STOPPED_OK), 1.0);

    drop(users);
    let closed = settles(&server, OPEN_SOCKETS, 0.0).await;
    assert_eq!(closed.get(MESSAGES), retried.get(MESSAGES));
    settles(&server, "tether_live_streams", 0.0).await;
}

#[tokio::test]
async fn malformed_frame_counts_one_bad_request() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let before = scrape(&server).await;
    client.send_text("not json").await;
    assert!(matches!(
        client.next().await,
        ServerFrame::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
    let after = scrape(&server).await;
    assert_eq!(
        after.get(&errors(ErrorCode::BadRequest)) - before.get(&errors(ErrorCode::BadRequest)),
        1.0
    );
    assert_eq!(after.get(RATE_LIMITED), 0.0);
    assert_eq!(after.get(MESSAGES), 0.0);
}

#[tokio::test]
async fn refused_upgrades_are_counted_by_reason() {
    let server = TestServer::start(|c| c.limits.max_connections = 1).await;
    let cookie = server.cookie().await;
    let before = scrape(&server).await;
    for reason in ["origin", "identity", "capacity"] {
        assert_eq!(before.get(&refused(reason)), 0.0);
    }

    let foreign = server
        .try_connect(Some("http://evil.example"), Some(&cookie), "/ws")
        .await
        .err();
    assert_eq!(foreign, Some(403));
    let after = scrape(&server).await;
    assert_eq!(after.get(&refused("origin")), 1.0);
    assert_eq!(after.get(&refused("identity")), 0.0);
    assert_eq!(after.get(OPEN_SOCKETS), 0.0);

    let origin = server.origin();
    assert_eq!(
        server.try_connect(Some(&origin), None, "/ws").await.err(),
        Some(401)
    );
    let _only = server.connect(&cookie).await;
    assert_eq!(
        server
            .try_connect(Some(&origin), Some(&cookie), "/ws")
            .await
            .err(),
        Some(503)
    );
    let after = scrape(&server).await;
    assert_eq!(after.get(&refused("origin")), 1.0);
    assert_eq!(after.get(&refused("identity")), 1.0);
    assert_eq!(after.get(&refused("capacity")), 1.0);
    assert_eq!(after.get(OPEN_SOCKETS), 1.0);
}

#[tokio::test]
async fn own_rate_limit_refusals_are_counted() {
    let server = TestServer::start(|c| {
        c.limits.rate_burst = 1;
        c.limits.rate_per_sec = 0.01;
    })
    .await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("hi").await;
    client.until_done(&conversation).await;
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: None,
            text: "too soon".into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    assert!(matches!(
        client.next().await,
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            ..
        }
    ));
    let after = scrape(&server).await;
    assert_eq!(after.get(RATE_LIMITED), 1.0);
    assert_eq!(after.get(&errors(ErrorCode::RateLimited)), 1.0);
    assert_eq!(
        after.get(MESSAGES),
        1.0,
        "the refused message is not counted"
    );
}

#[tokio::test]
async fn upstream_failure_counts_an_error_reply_without_a_first_token() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("[[status:429]]").await;
    let frames = client.until_done(&conversation).await;
    assert!(frames.iter().any(|f| matches!(
        f,
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            ..
        }
    )));
    let after = scrape(&server).await;
    assert_eq!(after.get(REPLY_ERRORS), 1.0);
    assert_eq!(after.get(STOPPED_OK), 0.0);
    assert_eq!(after.get(&errors(ErrorCode::RateLimited)), 1.0);
    assert_eq!(
        after.get(RATE_LIMITED),
        0.0,
        "an upstream 429 is not our refusal"
    );
    assert_eq!(after.get(TTFT_COUNT), 0.0);
    assert_eq!(after.get(UPSTREAM_COUNT), 1.0);
}

#[tokio::test]
async fn http_refusals_are_counted_like_socket_ones() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let post = |body: &'static str, content_type: &'static str| {
        reqwest::Client::new()
            .post(format!("http://{}/api/frame", server.addr))
            .header("origin", server.origin())
            .header("cookie", cookie.clone())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let before = scrape(&server).await;
    assert_eq!(before.get(&errors(ErrorCode::BadRequest)), 0.0);
    assert_eq!(before.get(&errors(ErrorCode::NotFound)), 0.0);

    let invalid = post("{\"type\":\"nonsense\"}", "application/json")
        .await
        .expect("POST");
    assert_eq!(invalid.status(), 400);
    let not_json = post("{}", "text/plain").await.expect("POST");
    assert_eq!(not_json.status(), 415);
    let unknown = post(
        "{\"type\":\"stop\",\"conversation_id\":\"no-such-conversation\"}",
        "application/json",
    )
    .await
    .expect("POST");
    assert_eq!(unknown.status(), 404);

    let after = scrape(&server).await;
    assert_eq!(after.get(&errors(ErrorCode::BadRequest)), 2.0);
    assert_eq!(after.get(&errors(ErrorCode::NotFound)), 1.0);
}

/// The server runs on the test's runtime, so the gauge counts its tasks: each
/// open socket is at least one, and they end with their sockets.
#[tokio::test]
async fn alive_tasks_gauge_follows_open_sockets() {
    let server = TestServer::start(|_| {}).await;
    let before = scrape(&server).await;
    assert!(before.0.contains("# TYPE tether_runtime_alive_tasks gauge"));
    let idle = before.get(ALIVE_TASKS);
    assert!(idle >= 1.0, "the server's accept loop is a task: {idle}");

    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(server.user().await);
    }
    let open = settles(&server, OPEN_SOCKETS, 5.0).await;
    let busy = open.get(ALIVE_TASKS);
    assert!(busy >= idle + 5.0, "5 sockets: {idle} -> {busy}");

    drop(sockets);
    settles(&server, OPEN_SOCKETS, 0.0).await;
    until_scrape(&server, "the socket tasks ended", |s| {
        s.get(ALIVE_TASKS) <= busy - 5.0
    })
    .await;
}
