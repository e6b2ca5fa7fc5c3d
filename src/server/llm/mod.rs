//! The model: streaming chat completions from any OpenAI-compatible endpoint.
//!
//! This is the only module that knows `async-openai`. It turns a prompt into a
//! stream of [`LlmEvent`]s and upstream failures into [`LlmError`]s the chat
//! core can map to protocol error codes. Dropping the stream aborts the HTTP
//! request. The API key is handed to the HTTP client and nowhere else.

use std::{pin::Pin, time::Duration};

use async_openai::{
    config::OpenAIConfig,
    error::OpenAIError,
    middleware::HttpRequestFactory,
    types::chat::{
        ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
        ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
        ChatCompletionStreamOptions, CreateChatCompletionRequest, FinishReason as OaFinishReason,
        StopConfiguration,
    },
    Client,
};
use futures::{Stream, StreamExt};
use thiserror::Error;

use super::config::UpstreamConfig;
use crate::protocol::{FinishReason, Role, Usage};

/// One turn of the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptTurn {
    System(String),
    Said(Role, String),
}

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
}

/// What is wrong with the configured provider, found by [`LlmClient::check`].
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ProviderProblem {
    #[error("cannot reach the model provider at {base_url}: {reason}")]
    Unreachable { base_url: String, reason: String },
    #[error(
        "the model provider at {base_url} refused the API key (HTTP {status}); set OPENAI_API_KEY"
    )]
    Unauthorized { base_url: String, status: u16 },
    #[error("the model provider at {base_url} has no model {model:?}; it offers: {available}")]
    UnknownModel {
        base_url: String,
        model: String,
        available: String,
    },
    #[error("the model provider at {base_url} answered the model list with an error: {reason}")]
    Failed { base_url: String, reason: String },
}

/// The stream returned by [`LlmClient::stream`].
pub type LlmStream = Pin<Box<dyn Stream<Item = Result<LlmEvent, LlmError>> + Send>>;

/// A 429 turned into an error by our HTTP layer, so that async-openai's own
/// retry loop never hides it and `Retry-After` survives.
#[derive(Debug, Error)]
#[error("rate limited")]
struct RateLimitedResponse {
    retry_after: Option<Duration>,
}

/// Client for one configured upstream.
#[derive(Clone)]
pub struct LlmClient {
    client: Client<OpenAIConfig>,
    /// Plain HTTP for `GET /models`, whose answer varies too much between
    /// providers for async-openai's strict type (llama.cpp omits `created`).
    http: reqwest::Client,
    config: UpstreamConfig,
}

/// The part of a `/models` answer every provider agrees on.
#[derive(serde::Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(serde::Deserialize)]
struct ModelEntry {
    id: String,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("base_url", &self.config.base_url)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    pub fn new(config: UpstreamConfig) -> Self {
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.clone());
        // An empty key would send `Authorization: Bearer ` to local servers; skip it.
        if !config.api_key.is_empty() {
            openai = openai.with_api_key(config.api_key.expose().to_owned());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(4096)
            .build()
            .unwrap_or_default();
        let service_http = http.clone();
        let service = tower::service_fn(move |factory: HttpRequestFactory| {
            let http = service_http.clone();
            async move {
                let request = factory.build().await?;
                let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
                if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    return Err(OpenAIError::Boxed(Box::new(RateLimitedResponse {
                        retry_after,
                    })));
                }
                Ok(response)
            }
        });
        let client = Client::with_config(openai).with_http_service(service);
        Self {
            client,
            http,
            config,
        }
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Deadline for the first byte and for each later chunk.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Asks the provider for its models (`GET /models`): is it reachable, is
    /// the key accepted, is the configured model there? Providers without a
    /// model list (HTTP 404 on `/models`) pass when reachable. Returns the
    /// model ids it listed.
    pub async fn check(&self) -> Result<Vec<String>, ProviderProblem> {
        let base_url = self.config.base_url.clone();
        let mut request = self.http.get(format!("{base_url}/models"));
        if !self.config.api_key.is_empty() {
            request = request.bearer_auth(self.config.api_key.expose());
        }
        let answer = request
            .timeout(self.config.timeout.min(Duration::from_secs(10)))
            .send()
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                return Err(ProviderProblem::Unreachable {
                    base_url,
                    reason: redact_url(&e.without_url().to_string()),
                })
            }
        };
        let status = response.status().as_u16();
        match status {
            401 | 403 => return Err(ProviderProblem::Unauthorized { base_url, status }),
            404 => return Ok(Vec::new()),
            200..=299 => {}
            _ => {
                return Err(ProviderProblem::Failed {
                    base_url,
                    reason: format!("HTTP {status}"),
                })
            }
        }
        let list: ModelList = match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(list)) => list,
            Ok(Err(e)) => {
                return Err(ProviderProblem::Failed {
                    base_url,
                    reason: format!("unexpected model list: {e}"),
                })
            }
            Err(e) => {
                return Err(ProviderProblem::Unreachable {
                    base_url,
                    reason: e.without_url().to_string(),
                })
            }
        };
        let ids: Vec<String> = list.data.into_iter().map(|m| m.id).collect();
        if ids.is_empty() || ids.contains(&self.config.model) {
            Ok(ids)
        } else {
            Err(ProviderProblem::UnknownModel {
                base_url,
                model: self.config.model.clone(),
                available: ids.join(", "),
            })
        }
    }

    /// Starts a streaming completion. Waits at most the configured timeout for
    /// the response headers; the caller applies the same timeout to each chunk.
    pub async fn stream(&self, prompt: &[PromptTurn]) -> Result<LlmStream, LlmError> {
        let request = self.request(prompt);
        let response = tokio::time::timeout(
            self.config.timeout,
            self.client.chat().create_stream(request),
        )
        .await
        .map_err(|_| LlmError::Timeout)?
        .map_err(map_error)?;
        let events = response.flat_map(|item| {
            let mut out = Vec::new();
            match item {
                Err(e) => out.push(Err(map_error(e))),
                Ok(chunk) => {
                    for choice in chunk.choices {
                        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                            out.push(Ok(LlmEvent::Text(text)));
                        }
                        if let Some(reason) = choice.finish_reason {
                            out.push(Ok(LlmEvent::Finished(match reason {
                                OaFinishReason::Length => FinishReason::Length,
                                _ => FinishReason::Stop,
                            })));
                        }
                    }
                    if let Some(u) = chunk.usage {
                        out.push(Ok(LlmEvent::Usage(Usage {
                            prompt_tokens: u.prompt_tokens,
                            completion_tokens: u.completion_tokens,
                        })));
                    }
                }
            }
            futures::stream::iter(out)
        });
        Ok(Box::pin(events))
    }

    fn request(&self, prompt: &[PromptTurn]) -> CreateChatCompletionRequest {
        let messages = prompt
            .iter()
            .map(|turn| match turn {
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
            })
            .collect();
        #[allow(deprecated)]
        CreateChatCompletionRequest {
            model: self.config.model.clone(),
            messages,
            stream: Some(true),
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            max_tokens: self.config.max_tokens,
            temperature: self.config.temperature,
            frequency_penalty: self.config.frequency_penalty,
            presence_penalty: self.config.presence_penalty,
            stop: match self.config.stop.as_slice() {
                [] => None,
                stops => Some(StopConfiguration::StringArray(stops.to_vec())),
            },
            ..Default::default()
        }
    }
}

fn map_error(err: OpenAIError) -> LlmError {
    match err {
        OpenAIError::Boxed(inner) => match inner.downcast::<RateLimitedResponse>() {
            Ok(limited) => LlmError::RateLimited {
                retry_after: limited.retry_after,
            },
            Err(other) => LlmError::Upstream(other.to_string()),
        },
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            match status {
                401 | 403 => LlmError::Unauthorized { status },
                429 => LlmError::RateLimited { retry_after: None },
                _ => LlmError::Upstream(format!(
                    "HTTP {status}: {}",
                    provider_message(&api.api_error.message)
                )),
            }
        }
        OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Timeout,
        OpenAIError::Reqwest(e) => LlmError::Upstream(redact_url(&e.to_string())),
        other => LlmError::Upstream(other.to_string()),
    }
}

/// The readable part of a provider's error: `error.message` when the text is
/// OpenAI's JSON error body, cut to a length that fits a chat notice.
fn provider_message(raw: &str) -> String {
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

/// reqwest errors may quote the URL; keep them but never any query string.
fn redact_url(message: &str) -> String {
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

    #[test]
    fn provider_errors_are_reduced_to_their_message() {
        let body = r#"{"error":{"code":"x","message":"fake failure","param":null,"type":"t"}}"#;
        assert_eq!(super::provider_message(body), "fake failure");
        assert_eq!(super::provider_message(" plain text "), "plain text");
        let long = "é".repeat(1000);
        assert_eq!(super::provider_message(&long).chars().count(), 301);
    }
    use super::*;

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
