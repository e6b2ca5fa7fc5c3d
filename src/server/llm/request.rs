//! The request to the upstream: the typed `async-openai` body built from a
//! prompt, and every way sending it can fail turned into an [`LlmError`]
//! (an error status with the provider's own message, a transport error with
//! no query string).

use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, StopConfiguration,
};

use super::{events::provider_message, LlmError, PromptTurn};
use crate::{protocol::Role, server::config::UpstreamConfig};

/// The streaming completion request for `prompt` to `model` (usage asked for).
pub(super) fn body(
    config: &UpstreamConfig,
    model: &str,
    prompt: &[PromptTurn],
) -> CreateChatCompletionRequest {
    let messages = prompt.iter().map(message).collect();
    #[allow(deprecated)]
    CreateChatCompletionRequest {
        model: model.to_owned(),
        messages,
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        }),
        max_tokens: config.max_tokens,
        temperature: config.temperature,
        frequency_penalty: config.frequency_penalty,
        presence_penalty: config.presence_penalty,
        stop: match config.stop.as_slice() {
            [] => None,
            stops => Some(StopConfiguration::StringArray(stops.to_vec())),
        },
        ..Default::default()
    }
}

/// One turn as a chat message.
fn message(turn: &PromptTurn) -> ChatCompletionRequestMessage {
    match turn {
        PromptTurn::System(text) => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: text.clone().into(),
                name: None,
            })
        }
        PromptTurn::Said(Role::User, text) => {
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: text.clone().into(),
                name: None,
            })
        }
        PromptTurn::Said(Role::Assistant, text) =>
        {
            #[allow(deprecated)]
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: Some(text.clone().into()),
                ..Default::default()
            })
        }
    }
}

/// A failure to send the request or to read the body.
impl From<reqwest::Error> for LlmError {
    fn from(err: reqwest::Error) -> Self {
        request_error(err)
    }
}

pub(super) fn request_error(err: reqwest::Error) -> LlmError {
    if err.is_timeout() {
        LlmError::Timeout
    } else {
        LlmError::Upstream(redact_url(&err.to_string()))
    }
}

/// The longest error body read from a provider; the rest is not needed.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An error status turned into an [`LlmError`], with the provider's own
/// message when it sent one in time.
pub(super) async fn refusal(mut response: reqwest::Response, timeout: Duration) -> LlmError {
    let status = response.status().as_u16();
    match status {
        429 => {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return LlmError::RateLimited { retry_after };
        }
        401 | 403 => return LlmError::Unauthorized { status },
        _ => {}
    }
    let mut body = Vec::new();
    let read = tokio::time::timeout(timeout, async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                body.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    })
    .await;
    let message = match read {
        Ok(()) if !body.is_empty() => provider_message(&String::from_utf8_lossy(&body)),
        _ => "no details".to_owned(),
    };
    LlmError::Upstream(format!("HTTP {status}: {message}"))
}

/// reqwest errors may quote the URL; keep them but never any query string.
pub(super) fn redact_url(message: &str) -> String {
    match message.find('?') {
        Some(i) => format!("{}…", &message[..i]),
        None => message.to_owned(),
    }
}

/// `Retry-After` as seconds (`"2"`, `"1.5"`); HTTP dates are not honoured.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_are_reduced_to_their_message() {
        let body = r#"{"error":{"code":"x","message":"fake failure","param":null,"type":"t"}}"#;
        assert_eq!(provider_message(body), "fake failure");
        assert_eq!(provider_message(" plain text "), "plain text");
        let long = "é".repeat(1000);
        assert_eq!(provider_message(&long).chars().count(), 301);
    }

    #[test]
    fn retry_after_parses_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
