//! A fake OpenAI-compatible model server for Tether's tests, end-to-end runs
//! and demos. Not part of the product: `tether` has it as a dev-dependency,
//! and the `fake-upstream` binary serves it as a process.
//!
//! It speaks the real wire format (`POST /v1/chat/completions` with
//! `stream: true` answers `chat.completion.chunk` server-sent events ending in
//! `data: [DONE]`; `GET /v1/models` lists one model) over a real socket. The
//! reply is deterministic: `"You said: <last user message>"` split into word
//! tokens, one every `token_delay` after `first_token_delay`. Directives in the
//! last user message change the behaviour for that request only, so parallel
//! tests do not interfere:
//!
//! | directive | effect |
//! |---|---|
//! | `[[long]]` | a 60-token reply |
//! | `[[tokens:N]]` | an N-token reply `t1 t2 … tN` (at most 10,000; for benchmarks) |
//! | `[[xss]]` | a reply with raw HTML (`<img onerror>`, `<script>`) |
//! | `[[markdown]]` | a reply with a list, a table and a code block |
//! | `[[status:N]]` | answer HTTP N (429 carries `Retry-After: 2`) |
//! | `[[stall:N]]` | N tokens, then silence until the client gives up |
//! | `[[cut:N]]` | N tokens, then the connection is closed without `[DONE]` |
//! | `[[delay:MS]]` | MS between tokens for this request |
//! | `[[burst]]` | every token in one write (as a fast model's burst arrives) |
//! | `[[model]]` | the reply is `model <the request's model>` |
//!
//! A **continuation** (Tether's `continue`: the messages end with a user
//! message, then the partial assistant reply, then a user message starting
//! with `Continue your last reply`) is answered with the rest of the reply to
//! that first user message after the partial text, with its `[[delay:MS]]` /
//! `[[burst]]` but none of its faults (`status`, `stall`, `cut`): a reply
//! cut by `[[cut:N]]` and then continued ends with the whole reply.
//!
//! [`FakeStats`] counts requests, finished streams and streams the client
//! aborted, so tests can prove that `stop` really cancels the upstream call.
//!
//! Modules: `reply` (directives and the reply's tokens), `continuation`
//! (continuation requests), `handlers` (the two endpoints), `stream` (the
//! streamed body), `stats` ([`FakeStats`]).

mod continuation;
mod handlers;
mod reply;
mod stats;
mod stream;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    routing::{get, post},
    serve::{ListenerExt, TapIo},
    Router,
};
use tokio::net::{TcpListener, TcpStream};

pub use continuation::CONTINUE_PREFIX;
pub use reply::reply_tokens;
pub use stats::FakeStats;

/// Behaviour of the fake.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub first_token_delay: Duration,
    pub token_delay: Duration,
    pub model: String,
    /// More models it lists and answers as (`FAKE_MODELS`, comma-separated).
    pub more_models: Vec<String>,
    /// When set, requests must carry `Authorization: Bearer <key>` (else 401).
    pub required_key: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            first_token_delay: Duration::from_millis(20),
            token_delay: Duration::from_millis(15),
            model: "fake".into(),
            more_models: Vec::new(),
            required_key: None,
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
struct FakeState {
    config: Arc<FakeConfig>,
    stats: Arc<FakeStats>,
}

/// The router of the fake, for serving on any listener.
pub fn router(config: FakeConfig) -> (Router, Arc<FakeStats>) {
    let stats = Arc::new(FakeStats::default());
    let state = FakeState {
        config: Arc::new(config),
        stats: stats.clone(),
    };
    let router = Router::new()
        .route("/v1/chat/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::models))
        .with_state(state);
    (router, stats)
}

/// A running fake on a loopback port; stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub stats: Arc<FakeStats>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    /// Binds `127.0.0.1:0` and serves in the background.
    pub async fn start(config: FakeConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (router, stats) = router(config);
        let task = tokio::spawn(async move {
            let _ = axum::serve(no_delay(listener), router).await;
        });
        Ok(Self { addr, stats, task })
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the fake on `addr` until Ctrl-C (used by the `fake-upstream` binary).
pub async fn serve_forever(addr: SocketAddr, config: FakeConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let (router, _) = router(config);
    axum::serve(no_delay(listener), router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// `listener` with `TCP_NODELAY` on every accepted socket, as a real model
/// server: without it a token written shortly after the response head would
/// wait for the client's delayed ACK (~40 ms on Linux). A copy of Tether's
/// `server::no_delay`, so that the fake does not depend on the product.
fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    fn set(tcp: &mut TcpStream) {
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(set as fn(&mut TcpStream))
}
