//! The two endpoints: `GET /v1/models` and `POST /v1/chat/completions`
//! (refusals, `[[status:N]]`, the whole reply, or a stream).

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::{
    continuation::Continuation,
    reply::{directive_number, has_directive, reply_tokens},
    stats::AbortGuard,
    stream::{self, StreamPlan},
    FakeState,
};

/// `GET /v1/models`: the configured model, then the others.
pub(crate) async fn models(State(state): State<FakeState>, headers: HeaderMap) -> Response {
    if !key_ok(&state, &headers) {
        return unauthorized();
    }
    let data: Vec<Value> = std::iter::once(&state.config.model)
        .chain(&state.config.more_models)
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "tether-fake"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `POST /v1/chat/completions`: counted and its messages kept, then refused,
/// failed on request, answered whole, or streamed; a continuation request
/// gets the rest of its reply, with no fault.
pub(crate) async fn completions(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.stats.record_request(body.get("messages").cloned());
    if let Some(refusal) = refusal(&state, &headers, &body) {
        return refusal;
    }
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(continuation) = Continuation::of(&body) {
        // The fault directives of the original message happened already.
        let tokens = continuation.tokens();
        if !streaming {
            return whole_reply(&state.config.model, &tokens);
        }
        let plan = StreamPlan::new(&state.config, &body, &continuation.original, tokens);
        return stream::respond(plan.without_faults(), AbortGuard::open(state.stats.clone()));
    }
    let last_user = last_user_text(&body);
    if let Some(status) = directive_number(&last_user, "status") {
        return failure(status);
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tokens = if has_directive(&last_user, "model") {
        vec!["model ".to_owned(), model.to_owned()]
    } else {
        reply_tokens(&last_user)
    };
    if !streaming {
        return whole_reply(model, &tokens);
    }
    let plan = StreamPlan::new(&state.config, &body, &last_user, tokens);
    stream::respond(plan, AbortGuard::open(state.stats.clone()))
}

/// The answer to a completion request with a wrong key (401) or an unknown
/// model (404), if it has either.
fn refusal(state: &FakeState, headers: &HeaderMap, body: &Value) -> Option<Response> {
    if !key_ok(state, headers) {
        return Some(unauthorized());
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let known = model == state.config.model || state.config.more_models.iter().any(|m| m == model);
    (!known).then(|| {
        api_error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist"),
            "model_not_found",
        )
    })
}

/// The content of the last `user` message (empty when there is none).
fn last_user_text(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `[[status:N]]`: HTTP N with an OpenAI error body; 429 says `Retry-After: 2`.
fn failure(status: u64) -> Response {
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = api_error(status, "fake failure", "fake");
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    }
    response
}

/// The answer to a request without `stream: true`.
fn whole_reply(model: &str, tokens: &[String]) -> Response {
    let text: String = tokens.concat();
    Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": tokens.len(), "total_tokens": tokens.len() + 1}
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
