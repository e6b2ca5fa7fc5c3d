//! Test harness: the real server on an ephemeral port, the fake upstream on
//! another, a SQLite file in a temp dir, and WebSocket clients that log in the
//! way a browser does (GET a page for the cookie, then upgrade with Origin).

#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod haproxy;
pub mod postgres;
pub mod process;
pub mod redis;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use tether::{
    protocol::{ClientFrame, ConversationId, ServerFrame},
    server::{
        self,
        config::{Config, DatabaseUrl},
    },
};
use tether_fake_upstream::{FakeConfig, FakeStats, FakeUpstream};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    tungstenite::{self, client::IntoClientRequest, http::HeaderValue, Message},
    MaybeTlsStream, WebSocketStream,
};

/// How long any single expected event may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// A running Tether server and its fake model.
pub struct TestServer {
    pub addr: SocketAddr,
    pub fake: Arc<FakeUpstream>,
    pub config: Config,
    pub dir: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), server::ServerError>>>,
}

impl TestServer {
    /// Starts with defaults, after `tweak` adjusts the config.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let fake = FakeUpstream::start(FakeConfig {
            first_token_delay: Duration::from_millis(5),
            token_delay: Duration::from_millis(5),
            ..FakeConfig::default()
        })
        .await
        .expect("fake upstream starts");
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_with(Arc::new(fake), dir, tweak).await
    }

    /// Starts on an existing fake and data directory (e.g. to restart).
    pub async fn start_with(
        fake: Arc<FakeUpstream>,
        dir: Arc<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::defaults();
        config.listen_addr = "127.0.0.1:0".parse().expect("addr");
        config.data_dir = dir.path().display().to_string();
        config.database = DatabaseUrl::in_dir(dir.path());
        config.upstream.base_url = fake.base_url();
        config.upstream.model = "fake".into();
        config.upstream.timeout = Duration::from_secs(5);
        config.limits.rate_burst = 1_000;
        config.limits.rate_per_sec = 1_000.0;
        // Every test client is 127.0.0.1: the per-address limits are tested
        // on their own (tests/abuse.rs); elsewhere they would only count tests.
        config.limits.identity_burst = 100_000;
        config.limits.addr_rate_burst = 100_000;
        config.limits.addr_rate_per_sec = 100_000.0;
        config.limits.max_streams_per_addr = 100_000;
        config.shutdown_grace = Duration::from_secs(5);
        tweak(&mut config);
        let listener = TcpListener::bind(config.listen_addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = server::build_state(config.clone())
            .await
            .expect("state builds");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            fake,
            config,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn stats(&self) -> &FakeStats {
        &self.fake.stats
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("tether.db")
    }

    /// A new user (fresh cookie) with one open socket.
    pub async fn user(&self) -> WsClient {
        let cookie = self.cookie().await;
        self.connect(&cookie).await
    }

    /// A fresh identity cookie, obtained like a browser: by loading the page.
    pub async fn cookie(&self) -> String {
        // Bounded: a page that never answers fails the test instead of hanging it.
        let response = reqwest::Client::builder()
            .timeout(STEP)
            .build()
            .expect("client")
            .get(format!("http://{}/", self.addr))
            .send()
            .await
            .expect("GET /");
        assert!(
            response.status().is_success(),
            "GET / is {}",
            response.status()
        );
        let set = response
            .headers()
            .get("set-cookie")
            .expect("GET / sets an identity cookie")
            .to_str()
            .expect("ascii")
            .to_owned();
        set.split(';').next().expect("cookie pair").to_owned()
    }

    /// Opens a socket with this cookie and reads `hello`.
    pub async fn connect(&self, cookie: &str) -> WsClient {
        let mut client = self
            .try_connect(Some(&self.origin()), Some(cookie), "/ws")
            .await
            .expect("upgrade succeeds");
        match client.next().await {
            ServerFrame::Hello { protocol, .. } => assert_eq!(protocol, 1),
            other => panic!("first frame must be hello, got {other:?}"),
        }
        client.cookie = cookie.to_owned();
        client
    }

    /// Tries an upgrade; `Err(status)` when the server refuses it.
    pub async fn try_connect(
        &self,
        origin: Option<&str>,
        cookie: Option<&str>,
        path: &str,
    ) -> Result<WsClient, u16> {
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .expect("request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", HeaderValue::from_str(cookie).expect("cookie"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(WsClient {
                ws,
                cookie: cookie.unwrap_or_default().to_owned(),
                step: STEP,
            }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("unexpected upgrade failure: {other}"),
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server ran cleanly");
        }
    }

    /// Starts shutdown without waiting.
    pub fn begin_shutdown(&mut self) -> JoinHandle<Result<(), server::ServerError>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running")
    }
}

/// One WebSocket of one user.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    pub cookie: String,
    /// How long [`WsClient::next`] waits for a frame ([`STEP`] unless a test
    /// waits on something slower, such as a real model loading).
    pub step: Duration,
}

impl WsClient {
    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_text(&frame.to_json()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next server frame (control frames skipped); panics after `step`.
    pub async fn next(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(self.step, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("socket open")
                .expect("socket ok");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("bad frame {text}: {e}"))
                }
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Reads until `done` of the conversation; returns every frame read.
    pub async fn until_done(&mut self, conversation: &ConversationId) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let is_done = matches!(&frame, ServerFrame::Done { conversation_id, .. } if conversation_id == conversation);
            frames.push(frame);
            if is_done {
                return frames;
            }
        }
    }

    /// Reads until a frame matches; returns it.
    pub async fn until(&mut self, mut pred: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let frame = self.next().await;
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Sends `text` to an existing conversation (a fresh `client_msg_id`).
    pub async fn send_text_to(&mut self, conversation: &ConversationId, text: &str) {
        self.send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: Some(conversation.clone()),
            text: text.into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    }

    /// Sends `text` in a new conversation; returns the `accepted` frame's conversation id.
    pub async fn start_conversation(&mut self, text: &str) -> ConversationId {
        let id = uuid();
        self.start_with(&ClientFrame::Send {
            client_msg_id: id.as_str().into(),
            conversation_id: None,
            text: text.into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await
    }

    /// Sends a `send` frame that starts a conversation; returns the
    /// `accepted` frame's conversation id.
    pub async fn start_with(&mut self, send: &ClientFrame) -> ConversationId {
        self.send(send).await;
        match self
            .until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
            .await
        {
            ServerFrame::Accepted {
                conversation_id, ..
            } => conversation_id,
            other => panic!("expected accepted, got {other:?}"),
        }
    }

    /// Subscribes and returns the snapshot's stored messages (skipping other frames).
    pub async fn snapshot(
        &mut self,
        conversation: &ConversationId,
    ) -> Vec<tether::protocol::Message> {
        self.subscribe(conversation).await.0
    }

    /// Subscribes and returns the snapshot's stored messages and the reply
    /// in progress, if any (skipping other frames).
    pub async fn subscribe(
        &mut self,
        conversation: &ConversationId,
    ) -> (
        Vec<tether::protocol::Message>,
        Option<tether::protocol::StreamingMessage>,
    ) {
        self.send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
        match self
            .until(|f| matches!(f, ServerFrame::Snapshot { .. }))
            .await
        {
            ServerFrame::Snapshot {
                messages,
                streaming,
                ..
            } => (messages, streaming),
            _ => unreachable!(),
        }
    }

    /// Sends a conversation-list frame and returns the `conversations` answer's items.
    pub async fn conversations(
        &mut self,
        frame: ClientFrame,
    ) -> Vec<tether::protocol::ConversationSummary> {
        self.send(&frame).await;
        match self
            .until(|f| matches!(f, ServerFrame::Conversations { .. }))
            .await
        {
            ServerFrame::Conversations { items, .. } => items,
            _ => unreachable!(),
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("close arrives in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// Text of the deltas of `frames`, checking their indexes run 0,1,2… without gaps.
pub fn delta_text(frames: &[ServerFrame]) -> String {
    delta_text_from(frames, 0)
}

/// Text of the deltas of `frames`, checking their indexes run `first`,
/// `first + 1`… without gaps (a socket that joined a reply in progress:
/// `first` is the snapshot's `next_index`).
pub fn delta_text_from(frames: &[ServerFrame], first: u64) -> String {
    let mut text = String::new();
    let mut expected = first;
    for frame in frames {
        if let ServerFrame::Delta { index, text: t, .. } = frame {
            assert_eq!(*index, expected, "delta indexes must be contiguous");
            expected += 1;
            text.push_str(t);
        }
    }
    text
}

/// The `done` frame among `frames`.
pub fn done_of(frames: &[ServerFrame]) -> &ServerFrame {
    frames
        .iter()
        .rev()
        .find(|f| matches!(f, ServerFrame::Done { .. }))
        .expect("a done frame")
}

/// A port on 127.0.0.1 for a child process that must be told its port
/// (a server, Redis, HAProxy, PostgreSQL): free when checked, never the same
/// twice in one test process, and below the kernel's ephemeral range.
///
/// Below that range because between this check and the child's `bind` the
/// port is nobody's: a port from the ephemeral range could meanwhile become
/// the source port of another test's outgoing connection (that once failed
/// a cluster test in CI: "Address already in use"). Ports below it are only
/// ever taken by an explicit `bind`.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let below = ephemeral_start().max(LOWEST + 1_000);
    let span = below - LOWEST;
    // Test processes that run at once start at different places.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOWEST + (start + n) % span).expect("a port");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOWEST}..{below}")
}

/// The first port the kernel hands out for outgoing connections.
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Polls `ready` (every 20 ms, at most 20 s) until it says yes; `what` names
/// the awaited thing in the failure. `ready` returns `Err` to give up at once
/// (e.g. the process exited).
pub async fn poll_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match ready().await {
            Ok(true) => return,
            Ok(false) if tokio::time::Instant::now() < deadline => {}
            Ok(false) => panic!("{what}: not ready after 20 s"),
            Err(why) => panic!("{what}: {why}"),
        }
        // The poll interval of a readiness check, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A random client id.
pub fn uuid() -> String {
    let mut s = String::new();
    for _ in 0..4 {
        s.push_str(&format!("{:08x}", rand_u32()));
    }
    s
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

/// The value of one `/metrics` series, named exactly (labels included).
pub fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

/// One series of `/metrics` of the server at `addr`.
pub async fn metric_at(addr: impl std::fmt::Display, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    series_value(&text, series)
}
