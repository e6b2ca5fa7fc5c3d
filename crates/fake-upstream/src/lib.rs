//! A fake OpenAI-compatible model server for tests, end-to-end runs and demos.
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
//!
//! [`FakeStats`] counts requests, finished streams and streams the client
//! aborted, so tests can prove that `stop` really cancels the upstream call.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::server::no_delay;

/// Behaviour of the fake.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub first_token_delay: Duration,
    pub token_delay: Duration,
    pub model: String,
    /// When set, requests must carry `Authorization: Bearer <key>` (else 401).
    pub required_key: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            first_token_delay: Duration::from_millis(20),
            token_delay: Duration::from_millis(15),
            model: "fake".into(),
            required_key: None,
        }
    }
}

/// What the fake has seen.
#[derive(Debug, Default)]
pub struct FakeStats {
    /// Chat completion requests received.
    pub requests: AtomicU64,
    /// Streams that ran to `[DONE]`.
    pub completed: AtomicU64,
    /// Streams dropped by the client before the end.
    pub aborted: AtomicU64,
    /// Streams open right now, and the most ever open at once.
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// The `messages` of the latest request.
    pub last_messages: Mutex<Option<Value>>,
    changed: tokio::sync::Notify,
}

impl FakeStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn aborted(&self) -> u64 {
        self.aborted.load(Ordering::SeqCst)
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Resolves once at least `n` streams were aborted by the client.
    pub async fn wait_aborted(&self, n: u64) {
        self.wait_until(|s| s.aborted() >= n).await
    }

    /// Resolves once at least `n` streams ran to `[DONE]`.
    pub async fn wait_completed(&self, n: u64) {
        self.wait_until(|s| s.completed() >= n).await
    }

    async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.changed.notified();
            if done(self) {
                return;
            }
            notified.await;
        }
    }
}

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
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(models))
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

/// The deterministic reply to `text` (directives removed), as tokens.
pub fn reply_tokens(text: &str) -> Vec<String> {
    let directive = |name: &str| text.contains(&format!("[[{name}]]"));
    let body = if directive("long") {
        (1..=60)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else if let Some(n) = directive_number(text, "tokens") {
        (1..=n.min(10_000))
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else if directive("xss") {
        "Careful: <img src=x onerror=\"window.__xss=1\"> and <script>window.__xss=2</script> stay text."
            .to_owned()
    } else if directive("markdown") {
        "Here is **bold** and a list:\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n"
            .to_owned()
    } else {
        format!("You said: {}", strip_directives(text).trim())
    };
    split_tokens(&body)
}

fn strip_directives(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        out.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits into tokens that concatenate back to `text` (each keeps its leading space).
fn split_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if ch == ' ' && !current.trim().is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn directive_number(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("[[{name}:"))? + name.len() + 3;
    let end = text[start..].find("]]")? + start;
    text[start..end].trim().parse().ok()
}

async fn models(State(state): State<FakeState>, headers: HeaderMap) -> Response {
    if !key_ok(&state, &headers) {
        return unauthorized();
    }
    Json(json!({
        "object": "list",
        "data": [{"id": state.config.model, "object": "model", "created": 0, "owned_by": "tether-fake"}]
    }))
    .into_response()
}

fn key_ok(state: &FakeState, headers: &HeaderMap) -> bool {
    let Some(key) = &state.config.required_key else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given == Some(key.as_str())
}

fn unauthorized() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided",
        "invalid_api_key",
    )
}

fn api_error(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})),
    )
        .into_response()
}

async fn completions(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.stats.requests.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut last) = state.stats.last_messages.lock() {
        *last = body.get("messages").cloned();
    }
    if !key_ok(&state, &headers) {
        return unauthorized();
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if model != state.config.model {
        return api_error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist"),
            "model_not_found",
        );
    }
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(status) = directive_number(&last_user, "status") {
        let status =
            StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = api_error(status, "fake failure", "fake");
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        }
        return response;
    }
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let tokens = reply_tokens(&last_user);
    if !streaming {
        let text: String = tokens.concat();
        return Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": state.config.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": tokens.len(), "total_tokens": tokens.len() + 1}
        }))
        .into_response();
    }
    let plan = StreamPlan {
        tokens,
        first_delay: state.config.first_token_delay,
        delay: directive_number(&last_user, "delay")
            .map(Duration::from_millis)
            .unwrap_or(state.config.token_delay),
        stall_after: directive_number(&last_user, "stall").map(|n| n as usize),
        cut_after: directive_number(&last_user, "cut").map(|n| n as usize),
        burst: last_user.contains("[[burst]]"),
        model: state.config.model.clone(),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let now_open = state.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state
        .stats
        .max_in_flight
        .fetch_max(now_open, Ordering::SeqCst);
    let guard = AbortGuard {
        stats: state.stats.clone(),
        finished: false,
    };
    let stream = futures::stream::unfold(
        (plan, guard, 0usize, false),
        |(plan, mut guard, i, ended)| async move {
            if ended {
                return None;
            }
            let n = plan.tokens.len();
            if i == 0 {
                tokio::time::sleep(plan.first_delay).await;
            } else if i <= n && !plan.delay.is_zero() {
                // `[[delay:0]]`: every token its own body chunk, back to back.
                tokio::time::sleep(plan.delay).await;
            }
            if plan.stall_after == Some(i) {
                std::future::pending::<()>().await;
            }
            if plan.cut_after == Some(i) {
                // Ends the body without [DONE]: the client sees a broken stream.
                guard.finished = true;
                return Some((
                    Err::<Bytes, std::io::Error>(std::io::Error::other("cut")),
                    (plan, guard, i, true),
                ));
            }
            if plan.burst && i == 0 && n > 0 {
                let all: String = plan
                    .tokens
                    .iter()
                    .enumerate()
                    .map(|(k, token)| {
                        let mut delta = json!({"content": token});
                        if k == 0 {
                            delta["role"] = json!("assistant");
                        }
                        sse(&chunk_json(&plan.model, delta, Value::Null))
                    })
                    .collect();
                return Some((Ok(Bytes::from(all)), (plan, guard, n, false)));
            }
            let chunk = if i < n {
                let mut delta = json!({"content": plan.tokens[i]});
                if i == 0 {
                    delta["role"] = json!("assistant");
                }
                sse(&chunk_json(&plan.model, delta, Value::Null))
            } else {
                let mut out = sse(&chunk_json(&plan.model, json!({}), json!("stop")));
                if plan.include_usage {
                    let usage =
                        json!({"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7});
                    out.push_str(&sse(&json!({
                        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                        "model": plan.model, "choices": [], "usage": usage
                    })));
                }
                out.push_str("data: [DONE]\n\n");
                guard.finished = true;
                guard.stats.completed.fetch_add(1, Ordering::SeqCst);
                guard.stats.changed.notify_waiters();
                return Some((Ok(Bytes::from(out)), (plan, guard, i + 1, true)));
            };
            Some((Ok(Bytes::from(chunk)), (plan, guard, i + 1, false)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

struct StreamPlan {
    tokens: Vec<String>,
    first_delay: Duration,
    delay: Duration,
    stall_after: Option<usize>,
    cut_after: Option<usize>,
    /// Every token in one write, after the first-token delay.
    burst: bool,
    model: String,
    include_usage: bool,
}

/// Counts a stream as aborted when the body is dropped before its end.
struct AbortGuard {
    stats: Arc<FakeStats>,
    finished: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.stats.aborted.fetch_add(1, Ordering::SeqCst);
            self.stats.changed.notify_waiters();
        }
    }
}

fn chunk_json(model: &str, delta: Value, finish_reason: Value) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    })
}

fn sse(value: &Value) -> String {
    format!("data: {value}\n\n")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_concatenate_to_the_reply() {
        let tokens = reply_tokens("hello  there [[delay:5]]");
        assert_eq!(tokens.concat(), "You said: hello  there");
        assert!(tokens.len() >= 3);
    }

    #[test]
    fn directives_are_parsed() {
        assert_eq!(directive_number("x [[stall:3]] y", "stall"), Some(3));
        assert_eq!(directive_number("x [[status:429]]", "status"), Some(429));
        assert_eq!(directive_number("none", "status"), None);
        assert_eq!(reply_tokens("[[long]]").len(), 60);
        assert_eq!(reply_tokens("[[tokens:40]] hi").len(), 40);
        assert_eq!(reply_tokens("[[tokens:3]]").concat(), "t1 t2 t3");
    }
}
