//! The streamed reply: `chat.completion.chunk` events, one write per token
//! (or all at once for `[[burst]]`), then the finish chunk, usage when asked
//! for, and `data: [DONE]`; or silence (`[[stall:N]]`), or a cut
//! connection (`[[cut:N]]`).

use std::{io, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use crate::{
    reply::{directive_number, has_directive},
    stats::AbortGuard,
    FakeConfig,
};

/// How one reply is streamed.
pub(crate) struct StreamPlan {
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

impl StreamPlan {
    /// The plan for `tokens`, from the config, the directives in `last_user`
    /// and the request's `stream_options`.
    pub(crate) fn new(
        config: &FakeConfig,
        request: &Value,
        last_user: &str,
        tokens: Vec<String>,
    ) -> Self {
        Self {
            tokens,
            first_delay: config.first_token_delay,
            delay: directive_number(last_user, "delay")
                .map(Duration::from_millis)
                .unwrap_or(config.token_delay),
            stall_after: directive_number(last_user, "stall").map(|n| n as usize),
            cut_after: directive_number(last_user, "cut").map(|n| n as usize),
            burst: has_directive(last_user, "burst"),
            model: config.model.clone(),
            include_usage: request
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

impl StreamPlan {
    /// The same plan with no stall and no cut (a continuation's).
    pub(crate) fn without_faults(self) -> Self {
        Self {
            stall_after: None,
            cut_after: None,
            ..self
        }
    }
}

/// The `text/event-stream` response that plays `plan`; `guard` counts it.
pub(crate) fn respond(plan: StreamPlan, guard: AbortGuard) -> Response {
    let cursor = Cursor {
        plan,
        guard,
        next: 0,
        ended: false,
    };
    let stream = futures::stream::unfold(cursor, next_write);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Where a stream is: the next token to send, and whether the body ended.
struct Cursor {
    plan: StreamPlan,
    guard: AbortGuard,
    next: usize,
    ended: bool,
}

/// The body's next write, after the plan's delay (or never, when stalled).
async fn next_write(mut cursor: Cursor) -> Option<(io::Result<Bytes>, Cursor)> {
    if cursor.ended {
        return None;
    }
    let plan = &cursor.plan;
    let (i, n) = (cursor.next, plan.tokens.len());
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
        cursor.guard.cut();
        cursor.ended = true;
        return Some((Err(io::Error::other("cut")), cursor));
    }
    let out = if plan.burst && i == 0 && n > 0 {
        cursor.next = n;
        let tokens = plan.tokens.iter().enumerate();
        tokens
            .map(|(k, token)| token_event(&plan.model, k, token))
            .collect()
    } else if i < n {
        cursor.next = i + 1;
        token_event(&plan.model, i, &plan.tokens[i])
    } else {
        let out = finish_events(plan);
        cursor.next = i + 1;
        cursor.ended = true;
        cursor.guard.complete();
        out
    };
    Some((Ok(Bytes::from(out)), cursor))
}

/// The event of token number `index` (the first one carries the role).
fn token_event(model: &str, index: usize, token: &str) -> String {
    let mut delta = json!({"content": token});
    if index == 0 {
        delta["role"] = json!("assistant");
    }
    sse(&chunk_json(model, delta, Value::Null))
}

/// The finish chunk, the usage chunk when asked for, and `[DONE]`.
fn finish_events(plan: &StreamPlan) -> String {
    let n = plan.tokens.len();
    let mut out = sse(&chunk_json(&plan.model, json!({}), json!("stop")));
    if plan.include_usage {
        let usage = json!({"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7});
        out.push_str(&sse(&json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
            "model": plan.model, "choices": [], "usage": usage
        })));
    }
    out.push_str("data: [DONE]\n\n");
    out
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
