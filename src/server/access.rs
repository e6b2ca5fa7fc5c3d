//! Who may open a stream: the checks shared by `GET /ws` and the HTTP
//! streaming endpoints (`src/server/sse.rs`).
//!
//! Both transports carry the same identity (the signed cookie) and the same
//! conversations, so both refuse the same requests: an `Origin` outside the
//! allowlist (`403`, which matters even more for a cookie-authenticated
//! `POST`) and a missing or invalid identity cookie (`401`). The reason is
//! plain text, identical on both transports.

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{metrics::UpgradeRefusal, state::AppState};
use crate::protocol::UserId;

/// Why a request was refused before reaching the chat core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    MissingOrigin,
    ForeignOrigin,
    NoIdentity,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::MissingOrigin | Refusal::ForeignOrigin => StatusCode::FORBIDDEN,
            Refusal::NoIdentity => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MissingOrigin => "missing Origin header",
            Refusal::ForeignOrigin => "origin not allowed",
            Refusal::NoIdentity => "missing or invalid identity cookie: load the page first",
        }
    }

    /// The `/metrics` counter of a refused WebSocket upgrade.
    pub fn upgrade_metric(self) -> UpgradeRefusal {
        match self {
            Refusal::MissingOrigin | Refusal::ForeignOrigin => UpgradeRefusal::Origin,
            Refusal::NoIdentity => UpgradeRefusal::Identity,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status(), self.reason()).into_response()
    }
}

/// The `Origin` must be allowed (`ALLOWED_ORIGINS`, or same origin), then the
/// identity cookie must be valid; returns the cookie's user.
pub fn check_origin_and_identity(state: &AppState, headers: &HeaderMap) -> Result<UserId, Refusal> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let Some(origin) = origin else {
        return Err(Refusal::MissingOrigin);
    };
    check_allowed_then_identity(state, headers, origin)
}

/// For `GET`s that only read (`/api/hello`, the events stream). Browsers
/// send no `Origin` on a same-origin `GET` (nor does `EventSource`), and a
/// page cannot read the answer of a cross-site one, so a missing `Origin` is
/// accepted unless `Sec-Fetch-Site` says the request came from another site.
/// A present `Origin` must be allowed, as everywhere.
pub fn check_read_access(state: &AppState, headers: &HeaderMap) -> Result<UserId, Refusal> {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => check_allowed_then_identity(state, headers, origin),
        None => {
            let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
            if site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
                return Err(Refusal::ForeignOrigin);
            }
            identity(state, headers)
        }
    }
}

fn check_allowed_then_identity(
    state: &AppState,
    headers: &HeaderMap,
    origin: &str,
) -> Result<UserId, Refusal> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !state.config.origins.allows(origin, host) {
        tracing::info!(origin, "refused a request from a foreign origin");
        return Err(Refusal::ForeignOrigin);
    }
    identity(state, headers)
}

/// The user of a valid identity cookie.
fn identity(state: &AppState, headers: &HeaderMap) -> Result<UserId, Refusal> {
    state
        .identity
        .user_from_headers(headers)
        .ok_or(Refusal::NoIdentity)
}
