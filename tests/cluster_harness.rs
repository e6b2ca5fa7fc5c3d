//! The multi-process harness itself (`tests/common/{redis,haproxy,cluster}.rs`):
//! Redis starts, restarts empty and is gone after drop; HAProxy with
//! `deploy/haproxy.cfg` balances round robin, adds X-Forwarded-For, passes
//! WebSockets through and takes a killed instance out; a cluster's instances can be killed and
//! restarted behind it. Runs on SQLite instances, so it needs no shared store.

mod common;

use std::{net::SocketAddr, path::Path, time::Duration};

use common::{
    cluster::{Cluster, Storage},
    haproxy::Haproxy,
    process::Tether,
    redis::Redis,
};
use tether::protocol::ServerFrame;
use tether_fake_upstream::{FakeConfig, FakeUpstream};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// One inline command to the Redis at `port`; the first line of its answer.
async fn redis_command(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to redis");
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .expect("send");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("answer");
    if line.starts_with('$') && !line.starts_with("$-1") {
        line.clear();
        reader.read_line(&mut line).await.expect("bulk answer");
    }
    line.trim_end().to_owned()
}

fn running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn redis_restarts_empty_on_its_port_and_is_gone_after_drop() {
    let mut redis = Redis::start().await;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port));
    assert_eq!(redis_command(redis.port, "SET greeting hello").await, "+OK");
    assert_eq!(redis_command(redis.port, "GET greeting").await, "hello");
    let first = redis.pid().expect("running");

    redis.restart().await;
    let second = redis.pid().expect("running again");
    assert_ne!(first, second, "a new process");
    assert!(!running(first), "the old process is gone");
    assert_eq!(
        redis_command(redis.port, "GET greeting").await,
        "$-1",
        "nothing survives a restart (no persistence)"
    );

    let port = redis.port;
    drop(redis);
    assert!(!running(second), "stopped by its PID on drop");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

/// How many request lines HAProxy logged for `path`, per server name.
fn served_by(proxy: &Haproxy, path: &str) -> Vec<String> {
    proxy
        .log()
        .lines()
        .filter(|line| line.contains(&format!(" {path} HTTP/")))
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with("tether/")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_round_robins_passes_websockets_and_drops_a_dead_instance() {
    let fake = FakeUpstream::start(FakeConfig::default())
        .await
        .expect("fake");
    let secret = [("SESSION_SECRET", "harness-test-secret-0123456789abcdef0123")];
    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let mut instances: Vec<Tether> = dirs
        .iter()
        .map(|dir| Tether::spawn_in(dir.path(), &fake.base_url(), &secret))
        .collect();
    let addrs: Vec<SocketAddr> = instances
        .iter()
        .map(|t| SocketAddr::from(([127, 0, 0, 1], t.port)))
        .collect();
    let proxy = Haproxy::start(&addrs).await;
    proxy.wait_server(0, "UP").await;
    proxy.wait_server(1, "UP").await;

    let client = reqwest::Client::new();
    for _ in 0..4 {
        let response = client
            .get(proxy.url("/healthz"))
            .send()
            .await
            .expect("GET /healthz through the proxy");
        assert_eq!(response.status(), 200);
    }
    common::poll_until("haproxy logged four requests", || async {
        Ok(served_by(&proxy, "/healthz").len() == 4)
    })
    .await;
    let servers = served_by(&proxy, "/healthz");
    assert_ne!(servers[0], servers[1], "round robin: {servers:?}");
    assert_eq!(servers[0], servers[2], "round robin: {servers:?}");
    assert_eq!(servers[1], servers[3], "round robin: {servers:?}");
    // `option forwardfor`: each instance got X-Forwarded-For from the proxy,
    // which these instances (no TRUSTED_PROXIES) point out once.
    for instance in &mut instances {
        instance.wait_log(|l| l.contains("carries X-Forwarded-For, but TRUSTED_PROXIES"));
    }

    // A WebSocket upgrades through the proxy and streams a whole reply.
    let mut user = proxy.user().await;
    let conversation = user.start_conversation("through the proxy").await;
    let frames = user.until_done(&conversation).await;
    assert_eq!(common::delta_text(&frames), "You said: through the proxy");
    assert!(matches!(common::done_of(&frames), ServerFrame::Done { .. }));

    // kill -9 of one: the health check takes it out, every request goes to
    // the other, and its sockets through the proxy are closed.
    instances[0].kill_9().await;
    proxy.wait_server(0, "DOWN").await;
    for _ in 0..4 {
        let response = client
            .get(proxy.url("/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("GET /readyz through the proxy");
        assert_eq!(response.status(), 200, "served by the live instance");
    }
    common::poll_until("haproxy logged four /readyz", || async {
        Ok(served_by(&proxy, "/readyz").len() == 4)
    })
    .await;
    assert!(
        served_by(&proxy, "/readyz")
            .iter()
            .all(|s| s == "tether/tether-1"),
        "{:?}",
        served_by(&proxy, "/readyz")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_instances_restart_on_their_port_behind_the_proxy() {
    let mut cluster =
        Cluster::start_with(2, Storage::SqlitePerInstance, FakeConfig::default(), &[]).await;
    assert_eq!(cluster.len(), 2);
    let (status, _) = cluster.instance(1).get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(redis_command(cluster.redis.port, "PING").await, "+PONG");
    let port = cluster.instance(0).port;
    let pid = cluster.proxy.pid().expect("proxy running");

    cluster.kill_9(0).await;
    cluster.proxy.wait_server(0, "DOWN").await;
    let response = reqwest::get(cluster.proxy_url("/healthz"))
        .await
        .expect("through the proxy");
    assert_eq!(response.status(), 200, "the other instance answers");

    cluster.restart(0).await;
    assert_eq!(cluster.instance(0).port, port, "same port");
    assert_eq!(cluster.proxy.server_status(0).await, "UP");
    // The shared session secret: a cookie from one instance is valid on the other.
    let cookie = cluster.instance(0).cookie().await;
    let mut socket = cluster.connect(1, &cookie).await;
    let conversation = socket.start_conversation("hello").await;
    socket.until_done(&conversation).await;
    let identity = reqwest::Client::new()
        .get(cluster.instance_url(1, "/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET /api/session");
    assert_eq!(
        identity.text().await.expect("body"),
        r#"{"identified":true}"#
    );

    drop(cluster);
    assert!(!running(pid), "the proxy is stopped on drop");
}
