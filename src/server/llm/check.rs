//! The provider check behind [`LlmClient::check`]: `GET /models` answers
//! whether the provider is reachable, accepts the key and has the model.

use std::time::Duration;

use thiserror::Error;

use super::{request::redact_url, LlmClient};

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

/// The part of a `/models` answer every provider agrees on.
#[derive(serde::Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(serde::Deserialize)]
struct ModelEntry {
    id: String,
}

/// See [`LlmClient::check`].
pub(super) async fn models(client: &LlmClient) -> Result<Vec<String>, ProviderProblem> {
    let base_url = client.config.base_url.clone();
    let answer = client
        .authorized(client.http.get(format!("{base_url}/models")))
        .timeout(client.config.timeout.min(Duration::from_secs(10)))
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
    let ids = model_ids(response, &base_url).await?;
    if ids.is_empty() || ids.contains(&client.config.model) {
        Ok(ids)
    } else {
        Err(ProviderProblem::UnknownModel {
            base_url,
            model: client.config.model.clone(),
            available: ids.join(", "),
        })
    }
}

/// The ids of a successful `/models` answer.
async fn model_ids(
    response: reqwest::Response,
    base_url: &str,
) -> Result<Vec<String>, ProviderProblem> {
    let list: ModelList = match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            return Err(ProviderProblem::Failed {
                base_url: base_url.to_owned(),
                reason: format!("unexpected model list: {e}"),
            })
        }
        Err(e) => {
            return Err(ProviderProblem::Unreachable {
                base_url: base_url.to_owned(),
                reason: e.without_url().to_string(),
            })
        }
    };
    Ok(list.data.into_iter().map(|m| m.id).collect())
}
