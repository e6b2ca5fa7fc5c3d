//! The companion endpoints (docs/protocol.md "Companions"): JSON in and
//! out, uploads as the raw request body (a card file, a picture), access
//! as everywhere ([`Caller`] for changes, [`Reader`] for reads).
//!
//! | | |
//! |---|---|
//! | `GET /api/companions` | presets, then the user's own |
//! | `POST /api/companions` | make one (`CompanionDraft`), `201` |
//! | `POST /api/companions/import` | a character card (PNG or JSON body), `201` |
//! | `GET/PUT/DELETE /api/companions/{id}` | read, edit, delete |
//! | `GET /api/companions/{id}/card.json`, `card.png` | export as a card |
//! | `GET/PUT/DELETE /api/companions/{id}/avatar` | the picture |

use axum::{
    body::{to_bytes, Body, Bytes},
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};

use super::CompanionError;
use crate::{
    protocol::{Changed, CompanionDraft, ErrorCode, ServerFrame, UserId},
    server::{
        access::{Caller, Reader},
        error::ApiError,
        state::AppState,
    },
};

/// The routes, merged into the app's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/companions", get(list).post(create))
        .route("/api/companions/import", post(import))
        .route("/api/companions/{id}", get(read).put(update).delete(delete))
        .route("/api/companions/{id}/card.json", get(card_json))
        .route("/api/companions/{id}/card.png", get(card_png))
        .route(
            "/api/companions/{id}/avatar",
            get(avatar).put(set_avatar).delete(remove_avatar),
        )
}

async fn list(State(state): State<AppState>, Reader(user): Reader) -> Result<Response, ApiError> {
    let items = state.chat.companions().list(&user).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

async fn read(
    State(state): State<AppState>,
    Reader(user): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.chat.companions().get(&user, &id).await?).into_response())
}

async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let draft = draft(&state, body).await?;
    let made = state.chat.companions().create(&user, draft).await?;
    changed(&state, &user);
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

async fn update(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let draft = draft(&state, body).await?;
    let changed_one = state.chat.companions().update(&user, &id, draft).await?;
    changed(&state, &user);
    Ok(Json(changed_one).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.chat.companions().delete(&user, &id).await?;
    changed(&state, &user);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn import(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = upload(body, state.config.limits.max_card_bytes, "the card").await?;
    let made = state.chat.companions().import(&user, &bytes).await?;
    changed(&state, &user);
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

async fn card_json(
    State(state): State<AppState>,
    Reader(user): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (card, name) = state.chat.companions().export_json(&user, &id).await?;
    Ok(attachment(
        "application/json",
        &format!("{name}.json"),
        serde_json::to_vec_pretty(&card).unwrap_or_default(),
    ))
}

async fn card_png(
    State(state): State<AppState>,
    Reader(user): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (png, name) = state.chat.companions().export_png(&user, &id).await?;
    Ok(attachment("image/png", &format!("{name}.png"), png))
}

async fn avatar(
    State(state): State<AppState>,
    Reader(user): Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let picture = state.chat.companions().avatar(&user, &id).await?;
    let mut response = picture.bytes.into_response();
    let headers = response.headers_mut();
    // The type the bytes were sniffed as (PNG, JPEG, GIF or WebP), never
    // guessed again by the browser, and nothing in it may run.
    if let Ok(value) = HeaderValue::from_str(&picture.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    // The URL carries the picture's version (`?v=`): private, kept for good.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}

async fn set_avatar(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = upload(body, state.config.limits.max_avatar_bytes, "the picture").await?;
    let changed = state
        .chat
        .companions()
        .set_avatar(&user, &id, bytes.to_vec())
        .await?;
    self::changed(&state, &user);
    Ok(Json(changed).into_response())
}

async fn remove_avatar(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let removed = state.chat.companions().remove_avatar(&user, &id).await?;
    changed(&state, &user);
    Ok(Json(removed).into_response())
}

/// Tells the user's other tabs and devices their companions changed.
fn changed(state: &AppState, user: &UserId) {
    state.chat.notify(user, Changed::Companions);
}

/// A draft in a JSON body, of at most the size of a card.
async fn draft(state: &AppState, body: Body) -> Result<CompanionDraft, ApiError> {
    let bytes = upload(body, state.config.limits.max_card_bytes, "the body").await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CompanionError::BadRequest(format!("invalid companion: {e}")).into())
}

/// An upload's bytes, refused with `413` past `limit` (not read on).
async fn upload(body: Body, limit: usize, what: &'static str) -> Result<Bytes, ApiError> {
    to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::from(CompanionError::OverLimit { what, limit }))
}

/// A download: its type, and a file name (ASCII, plus the UTF-8 one).
pub(crate) fn attachment(content_type: &'static str, name: &str, bytes: Vec<u8>) -> Response {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

impl From<CompanionError> for ApiError {
    fn from(err: CompanionError) -> Self {
        let (status, code) = match &err {
            CompanionError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            CompanionError::TooLarge { .. }
            | CompanionError::OverLimit { .. }
            | CompanionError::Card(super::card::CardError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge)
            }
            CompanionError::Card(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            CompanionError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            CompanionError::Preset => (StatusCode::FORBIDDEN, ErrorCode::BadRequest),
            CompanionError::TooMany { .. } => (StatusCode::CONFLICT, ErrorCode::BadRequest),
            CompanionError::Store(store) => {
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
