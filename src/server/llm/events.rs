//! What the model's stream yields ([`LlmEvent`]) and how asking it fails
//! ([`LlmError`]), with no HTTP client in sight: the chunk reader
//! (`stream.rs`) needs only these, so the fuzz targets build it without the
//! server half (`tether::fuzzing`).

use std::time::Duration;

use thiserror::Error;

use crate::protocol::{FinishReason, Usage};

/// What the upstream streams back. The stream ends after the last event.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmEvent {
    /// A piece of the reply (never empty).
    Text(String),
    /// The upstream said why the reply ends (`stop` or `length`).
    Finished(FinishReason),
    /// Token accounting, usually in the last chunk.
    Usage(Usage),
}

/// Why the upstream failed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum LlmError {
    /// HTTP 429; `retry_after` from the `Retry-After` header when given.
    #[error("the model provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// No first byte, or no next chunk, within the configured timeout.
    #[error("the model did not answer in time")]
    Timeout,
    /// The provider refused the credentials (401/403).
    #[error("the model provider refused the API key ({status})")]
    Unauthorized { status: u16 },
    /// Any other failure: status, connection, malformed stream.
    #[error("the model provider failed: {0}")]
    Upstream(String),
    /// The local model's set-up failed (`MODEL_SETUP_FILE`), with its reason.
    #[error(
        "the local model could not be set up: {0}. Tether works with any \
         OpenAI-compatible provider: set OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL"
    )]
    NotSetUp(String),
    /// The stream ended without a word: a model that ended at once, or a
    /// server that cut the stream (llama-cpp-python ends a stream with
    /// `[DONE]` when another request arrives unless told not to).
    #[error("the model ended its reply without saying anything; try again")]
    Empty,
}

/// A body that cannot fail (the fuzz targets' and the tests' byte streams).
impl From<std::convert::Infallible> for LlmError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// The readable part of a provider's error: `error.message` when the text is
/// OpenAI's JSON error body, cut to a length that fits a chat notice.
pub(crate) fn provider_message(raw: &str) -> String {
    const MAX_CHARS: usize = 300;
    let text = serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| raw.trim().to_owned());
    if text.chars().count() > MAX_CHARS {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}
