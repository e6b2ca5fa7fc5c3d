//! The "take your data" endpoints (docs/protocol.md "Take your data"):
//! downloads need the identity cookie ([`Reader`]); an import is a change
//! ([`Caller`]: an allowed `Origin` too), its body at most
//! `MAX_IMPORT_BYTES`.
//!
//! | | |
//! |---|---|
//! | `GET /api/conversations/{id}/export.json` | the conversation, every branch |
//! | `GET /api/conversations/{id}/export.md` | the path shown, as Markdown |
//! | `POST /api/conversations/import` | a JSON export as a new conversation, `201` |
//! | `GET /api/export` | everything of the user, one JSON file |

use axum::{
    body::{to_bytes, Body},
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};

use super::ArchiveError;
use crate::{
    protocol::{ConversationId, ErrorCode, ServerFrame},
    server::{
        access::{Caller, Reader},
        companions::{file_name, routes::attachment},
        error::ApiError,
        state::AppState,
    },
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/conversations/{id}/export.json", get(export_json))
        .route("/api/conversations/{id}/export.md", get(export_markdown))
        .route("/api/conversations/import", post(import))
        .route("/api/export", get(export_everything))
}

async fn export_json(
    State(state): State<AppState>,
    Reader(user): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let export =
        super::export_conversation(&**state.chat.store(), &user, &ConversationId(id)).await?;
    let name = file_name(&export.title, "conversation");
    Ok(attachment(
        "application/json",
        &format!("{name}.json"),
        serde_json::to_vec_pretty(&export).unwrap_or_default(),
    ))
}

async fn export_markdown(
    State(state): State<AppState>,
    Reader(user): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (text, name) = super::export_markdown(
        &**state.chat.store(),
        state.chat.companions(),
        &user,
        &ConversationId(id),
    )
    .await?;
    Ok(attachment(
        "text/markdown; charset=utf-8",
        &format!("{name}.md"),
        text.into_bytes(),
    ))
}

async fn import(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.config.limits.max_import_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ArchiveError::OverLimit { limit })?;
    let made = super::import_conversation(
        &**state.chat.store(),
        &user,
        &bytes,
        state.config.limits.max_title_chars,
    )
    .await?;
    state
        .chat
        .notify(&user, crate::protocol::Changed::Conversations);
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

async fn export_everything(
    State(state): State<AppState>,
    Reader(user): Reader,
) -> Result<Response, ApiError> {
    let export =
        super::export_everything(&**state.chat.store(), state.chat.companions(), &user).await?;
    let day = export.exported_at.get(..10).unwrap_or("now").to_owned();
    Ok(attachment(
        "application/json",
        &format!("tether-export-{day}.json"),
        serde_json::to_vec_pretty(&export).unwrap_or_default(),
    ))
}

impl From<ArchiveError> for ApiError {
    fn from(err: ArchiveError) -> Self {
        let (status, code) = match &err {
            ArchiveError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ArchiveError::OverLimit { .. } => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            ArchiveError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ArchiveError::Store(store) => {
                let chat = crate::server::chat::ChatError::from(store.clone());
                return ApiError::from(chat.refusing(None, None));
            }
        };
        ApiError::Frame {
            status,
            frame: ServerFrame::error(code, err.to_string()),
        }
    }
}
