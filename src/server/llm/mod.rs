//! The model: streaming chat completions from any OpenAI-compatible endpoint.
//!
//! This is the only module that knows the upstream's wire format. It turns a
//! prompt into a stream of [`LlmEvent`]s and upstream failures into
//! [`LlmError`]s the chat core can map to protocol error codes. The request
//! body is `async-openai`'s typed `CreateChatCompletionRequest`; the response
//! is read right here, in the reply's own task: each chunk of the HTTP body
//! goes through [`EventStream`] and a lenient chunk type (llama.cpp, vLLM and
//! Ollama leave out fields OpenAI sends). async-openai's own streaming helper
//! spawns a detached task and an unbounded channel per reply, which shutdown
//! could not drain and which cost a task wake-up per token. Dropping the
//! stream aborts the HTTP request. The API key is handed to the HTTP client
//! and nowhere else.

use std::{
    borrow::Cow,
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, StopConfiguration,
};
use bytes::Bytes;
use futures::Stream;
use thiserror::Error;

use super::config::UpstreamConfig;
use crate::{
    event_stream::EventStream,
    protocol::{FinishReason, Role, Usage},
};

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

/// Client for one configured upstream.
#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    /// `{base_url}/chat/completions`, built once.
    completions_url: String,
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
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(4096)
            .build()
            .unwrap_or_default();
        Self {
            http,
            completions_url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            config,
        }
    }

    /// A request to the provider, with the API key when one is set (an
    /// empty key would send `Authorization: Bearer ` to local servers).
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.config.api_key.is_empty() {
            request
        } else {
            request.bearer_auth(self.config.api_key.expose())
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
        let answer = self
            .authorized(self.http.get(format!("{base_url}/models")))
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
        let body = serde_json::to_vec(&self.request(prompt))
            .map_err(|e| LlmError::Upstream(format!("could not encode the request: {e}")))?;
        let request = self
            .authorized(self.http.post(&self.completions_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body);
        let timeout = self.config.timeout;
        let response = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| LlmError::Timeout)?
            .map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(response, timeout).await);
        }
        Ok(Box::pin(ChunkStream::new(Box::pin(
            response.bytes_stream(),
        ))))
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

/// A failure to send the request or to read the body.
fn request_error(err: reqwest::Error) -> LlmError {
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
async fn refusal(mut response: reqwest::Response, timeout: Duration) -> LlmError {
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

/// One `data:` payload of the stream, as lenient as providers need: every
/// field may be missing or `null`, unknown fields are ignored, text is
/// borrowed from the event unless it has escapes.
#[derive(serde::Deserialize)]
struct WireChunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<WireChoice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    /// Some providers report a failure mid-stream as an `error` object.
    #[serde(default, borrow)]
    error: Option<WireError<'a>>,
}

#[derive(serde::Deserialize)]
struct WireChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<WireDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct WireDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct WireError<'a> {
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// Turns the upstream's SSE body into [`LlmEvent`]s, in the task that polls
/// it. Ends at `data: [DONE]`, at the end of the body, or after an error.
struct ChunkStream<B> {
    body: B,
    events: EventStream,
    ready: VecDeque<Result<LlmEvent, LlmError>>,
    ended: bool,
}

impl<B> ChunkStream<B> {
    fn new(body: B) -> Self {
        Self {
            body,
            events: EventStream::default(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// Reads every event the bytes so far complete.
    fn read_events(&mut self) {
        while let Some(data) = self.events.next_event() {
            if data.trim() == "[DONE]" {
                self.ended = true;
                return;
            }
            if let Err(err) = chunk_events(&data, &mut self.ready) {
                self.ready.push_back(Err(err));
                self.ended = true;
                return;
            }
        }
    }
}

/// The events of one chunk, in order: text, then why it ends, then usage.
fn chunk_events(
    data: &str,
    out: &mut VecDeque<Result<LlmEvent, LlmError>>,
) -> Result<(), LlmError> {
    let chunk: WireChunk<'_> = serde_json::from_str(data)
        .map_err(|e| LlmError::Upstream(format!("unreadable stream chunk: {e}")))?;
    if let Some(error) = chunk.error {
        let message = error.message.as_deref().unwrap_or("no details");
        return Err(LlmError::Upstream(provider_message(message)));
    }
    for choice in chunk.choices.into_iter().flatten() {
        if let Some(text) = choice.delta.and_then(|d| d.content) {
            if !text.is_empty() {
                out.push_back(Ok(LlmEvent::Text(text.into_owned())));
            }
        }
        if let Some(reason) = choice.finish_reason {
            out.push_back(Ok(LlmEvent::Finished(match reason.as_ref() {
                "length" => FinishReason::Length,
                _ => FinishReason::Stop,
            })));
        }
    }
    if let Some(usage) = chunk.usage {
        out.push_back(Ok(LlmEvent::Usage(usage)));
    }
    Ok(())
}

impl<B> Stream for ChunkStream<B>
where
    B: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    type Item = Result<LlmEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(event));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.events.extend(&bytes);
                    this.read_events();
                }
                Poll::Ready(Some(Err(err))) => {
                    this.ready.push_back(Err(request_error(err)));
                    this.ended = true;
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
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

    /// Runs `body` through a [`ChunkStream`], cut into pieces of `cut` bytes.
    fn read_stream(body: &str, cut: usize) -> Vec<Result<LlmEvent, LlmError>> {
        let pieces: Vec<reqwest::Result<Bytes>> = body
            .as_bytes()
            .chunks(cut)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = ChunkStream::new(futures::stream::iter(pieces));
        futures::executor::block_on(futures::StreamExt::collect(stream))
    }

    #[test]
    fn chunks_from_lenient_providers_become_events_at_any_cut() {
        // OpenAI's shape, then llama.cpp's (no id/created, `null`s), CRLF
        // lines, a keep-alive comment, usage in its own chunk, and bytes
        // after `[DONE]` that must not be read.
        let body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"Hé \\\"you\\\"\"}}]}\r\n\r\n\
                    : ping\n\n\
                    data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n\
                    data: [DONE]\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n";
        let expected = vec![
            Ok(LlmEvent::Text("Hé \"you\"".into())),
            Ok(LlmEvent::Finished(FinishReason::Length)),
            Ok(LlmEvent::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
            })),
        ];
        for cut in 1..=body.len() {
            assert_eq!(read_stream(body, cut), expected, "cut every {cut} bytes");
        }
    }

    #[test]
    fn an_error_in_the_stream_ends_it_with_the_providers_message() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
                    data: {\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\"}}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n";
        assert_eq!(
            read_stream(body, 7),
            vec![
                Ok(LlmEvent::Text("a".into())),
                Err(LlmError::Upstream("model overloaded".into())),
            ]
        );
        let garbage = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: not json\n\n";
        let events = read_stream(garbage, 100);
        assert_eq!(events[0], Ok(LlmEvent::Text("a".into())));
        assert!(
            matches!(&events[1], Err(LlmError::Upstream(m)) if m.starts_with("unreadable stream chunk")),
            "{events:?}"
        );
        assert_eq!(events.len(), 2);
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
