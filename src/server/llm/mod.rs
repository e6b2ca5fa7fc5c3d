//! The model: streaming chat completions from any OpenAI-compatible endpoint.
//!
//! This is the only module that knows the upstream's wire format. It turns a
//! prompt into a stream of [`LlmEvent`]s and upstream failures into
//! [`LlmError`]s the chat core can map to protocol error codes. The request
//! body is `async-openai`'s typed `CreateChatCompletionRequest` (`request`,
//! which also reads refusals); the response is read right here, in the
//! reply's own task, by the chunk reader (`stream`). async-openai's own
//! streaming helper spawns a detached task and an unbounded channel per
//! reply, which shutdown could not drain and which cost a task wake-up per
//! token. Dropping the stream aborts the HTTP request. `check` asks the
//! provider for its models at start-up. The API key is handed to the HTTP
//! client and nowhere else.

mod check;
mod events;
mod request;
mod setup;
mod stream;

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::Stream;

/// The chunk reader's property check, for `tether::fuzzing`.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use self::stream::properties as chunk_reader_properties;
pub use self::{
    check::ProviderProblem,
    events::{LlmError, LlmEvent},
    setup::SetupWatch,
};
use self::{
    request::{refusal, request_error},
    stream::ChunkStream,
};
use super::config::UpstreamConfig;
use crate::protocol::Role;

/// One turn of the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptTurn {
    System(String),
    Said(Role, String),
}

/// The stream returned by [`LlmClient::stream`].
pub type LlmStream = Pin<Box<dyn Stream<Item = Result<LlmEvent, LlmError>> + Send>>;

/// A successful provider check: when, and the models it listed.
type Checked = (Instant, Vec<String>);

/// Client for one configured upstream.
#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    /// `{base_url}/chat/completions`, parsed once; the text when it is no
    /// URL (each request then fails with reqwest's reason).
    completions: Result<reqwest::Url, String>,
    config: UpstreamConfig,
    /// The last successful [`LlmClient::check`] and when it was made.
    checked: Arc<Mutex<Option<Checked>>>,
    /// Whether the model is set up yet (`MODEL_SETUP_FILE`).
    setup: SetupWatch,
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
        let completions_url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Self {
            http,
            completions: reqwest::Url::parse(&completions_url).map_err(|_| completions_url),
            setup: SetupWatch::new(
                Some(config.setup_file.as_str())
                    .filter(|file| !file.is_empty())
                    .map(Into::into),
            ),
            config,
            checked: Arc::new(Mutex::new(None)),
        }
    }

    /// The model's set-up (ready unless `MODEL_SETUP_FILE` says otherwise).
    pub fn setup(&self) -> &SetupWatch {
        &self.setup
    }

    /// Waits until the model is set up; a failed set-up is an error.
    pub async fn ready(&self) -> Result<(), LlmError> {
        self.setup.ready().await.map_err(LlmError::NotSetUp)
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

    /// The default model (`OPENAI_MODEL`).
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The models a conversation may be asked of: what the provider listed
    /// at its last successful check (the default first), or the default
    /// alone before any check or when it lists none.
    pub fn models(&self) -> Vec<String> {
        let listed = self
            .lock_checked()
            .as_ref()
            .map(|(_, models)| models.clone())
            .unwrap_or_default();
        let mut models = vec![self.config.model.clone()];
        models.extend(listed.into_iter().filter(|m| *m != self.config.model));
        models
    }

    /// Whether `model` is one of [`LlmClient::models`] (nothing copied).
    pub fn offers(&self, model: &str) -> bool {
        model == self.config.model
            || self
                .lock_checked()
                .as_ref()
                .is_some_and(|(_, models)| models.iter().any(|m| m == model))
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
        let checked = check::models(self).await;
        if let Ok(models) = &checked {
            *self.lock_checked() = Some((Instant::now(), models.clone()));
        }
        checked
    }

    /// [`LlmClient::check`], answered from a success less than `max_age`
    /// old (a load balancer's health checks, several a second, do not each
    /// ask the provider; a failure is always asked again).
    pub async fn check_recent(&self, max_age: Duration) -> Result<Vec<String>, ProviderProblem> {
        if let Some((at, models)) = self.lock_checked().as_ref() {
            if at.elapsed() < max_age {
                return Ok(models.clone());
            }
        }
        self.check().await
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, Option<Checked>> {
        self.checked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a streaming completion by `model`. Waits at most the configured timeout for
    /// the response headers; the caller applies the same timeout to each chunk.
    pub async fn stream(&self, model: &str, prompt: &[PromptTurn]) -> Result<LlmStream, LlmError> {
        let body = serde_json::to_vec(&request::body(&self.config, model, prompt))
            .map_err(|e| LlmError::Upstream(format!("could not encode the request: {e}")))?;
        let request = self
            .authorized(match &self.completions {
                Ok(url) => self.http.post(url.clone()),
                Err(text) => self.http.post(text.as_str()),
            })
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
}
