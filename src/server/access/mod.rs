//! Who may open a stream or change anything: the checks shared by `GET /ws`
//! and the HTTP endpoints (`src/server/sse.rs`), as axum extractors.
//!
//! Both transports carry the same identity (the signed cookie) and the same
//! conversations, so both refuse the same requests: an `Origin` outside the
//! allowlist (`403`, which matters even more for a cookie-authenticated
//! `POST`) and a missing or invalid identity cookie (`401`). The reason is
//! plain text, identical on both transports.
//!
//! * [`Caller`]: a request that may change state, or opens a socket: its
//!   `Origin` must be present and allowed.
//! * [`Reader`]: a `GET` that only reads; see its doc for the `Origin` rule.
//!
//! How many streams may be open at once is [`admission`]; where a request
//! comes from (for the per-address limits) is [`address`].

pub mod address;
pub mod admission;

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{config::Config, identity::IdentityKeys, metrics::UpgradeRefusal};
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

/// What the checks need: the origin allowlist and the cookie keys. Any
/// router state that can give one (`FromRef`) can use the extractors.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    pub config: Arc<Config>,
    pub identity: Arc<IdentityKeys>,
}

/// The user of a request that may change state (or open a socket): its
/// `Origin` is present and allowed (`ALLOWED_ORIGINS`, or same origin), and
/// its identity cookie is valid.
#[derive(Clone, Debug)]
pub struct Caller(pub UserId);

/// The user of a `GET` that only reads (`/api/hello`, the events stream).
/// Browsers send no `Origin` on a same-origin `GET` (nor does
/// `EventSource`), and a page cannot read the answer of a cross-site one, so
/// a missing `Origin` is accepted unless `Sec-Fetch-Site` says the request
/// came from another site. A present `Origin` must be allowed, as everywhere.
#[derive(Clone, Debug)]
pub struct Reader(pub UserId);

/// `FromRequestParts` for an extractor that is [`AccessPolicy`]'s check.
macro_rules! extractor {
    ($extractor:ident, $check:ident) => {
        impl<S> FromRequestParts<S> for $extractor
        where
            S: Send + Sync,
            AccessPolicy: FromRef<S>,
        {
            type Rejection = Refusal;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
                AccessPolicy::from_ref(state)
                    .$check(&parts.headers)
                    .map($extractor)
            }
        }
    };
}

extractor!(Caller, caller);
extractor!(Reader, reader);

impl AccessPolicy {
    /// See [`Caller`].
    fn caller(&self, headers: &HeaderMap) -> Result<UserId, Refusal> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let Some(origin) = origin else {
            return Err(Refusal::MissingOrigin);
        };
        self.allowed_then_identity(headers, origin)
    }

    /// See [`Reader`].
    fn reader(&self, headers: &HeaderMap) -> Result<UserId, Refusal> {
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(origin) => self.allowed_then_identity(headers, origin),
            None => {
                let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
                if site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
                    return Err(Refusal::ForeignOrigin);
                }
                self.identity(headers)
            }
        }
    }

    fn allowed_then_identity(&self, headers: &HeaderMap, origin: &str) -> Result<UserId, Refusal> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !self.config.origins.allows(origin, host) {
            tracing::info!(origin, "refused a request from a foreign origin");
            return Err(Refusal::ForeignOrigin);
        }
        self.identity(headers)
    }

    /// The user of a valid identity cookie.
    fn identity(&self, headers: &HeaderMap) -> Result<UserId, Refusal> {
        self.identity
            .user_from_headers(headers)
            .ok_or(Refusal::NoIdentity)
    }
}
