//! Who may open a stream or change anything: the checks shared by `GET /ws`
//! and the HTTP endpoints (`src/server/sse.rs`), as axum extractors.
//!
//! Both transports carry the same identity (the signed cookie) and the same
//! conversations, so both refuse the same requests: an `Origin` outside the
//! allowlist (`403`, which matters even more for a cookie-authenticated
//! `POST`) and a request without an identity (`401`: no valid identity
//! cookie, or in `AUTH_MODE=accounts` no account session; see
//! [`super::accounts`]). The reason is plain text, identical on both
//! transports.
//!
//! * [`Caller`]: a request that may change state, or opens a socket: its
//!   `Origin` must be present and allowed.
//! * [`Reader`]: a `GET` that only reads; see its doc for the `Origin` rule.
//!
//! How many streams may be open at once is [`admission`]; where a request
//! comes from (for the per-address limits) is [`address`].

pub mod address;
pub mod admission;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    accounts::{Accounts, Identity},
    config::{canonical_ip, AuthMode, Config},
    identity::IdentityKeys,
    metrics::UpgradeRefusal,
};
use crate::protocol::UserId;

/// Why a request was refused before reaching the chat core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    MissingOrigin,
    ForeignOrigin,
    /// No valid identity cookie (`AUTH_MODE=open`).
    NoIdentity,
    /// No account session (`AUTH_MODE=accounts`).
    SignIn,
    /// Who the request is could not be looked up (the database).
    Unavailable,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::MissingOrigin | Refusal::ForeignOrigin => StatusCode::FORBIDDEN,
            Refusal::NoIdentity | Refusal::SignIn => StatusCode::UNAUTHORIZED,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MissingOrigin => "missing Origin header",
            Refusal::ForeignOrigin => "origin not allowed",
            Refusal::NoIdentity => "missing or invalid identity cookie: load the page first",
            Refusal::SignIn => "sign in first: this server needs an account (/signin)",
            Refusal::Unavailable => "the database cannot be used right now; try again in a moment",
        }
    }

    /// The `/metrics` counter of a refused WebSocket upgrade.
    pub fn upgrade_metric(self) -> UpgradeRefusal {
        match self {
            Refusal::MissingOrigin | Refusal::ForeignOrigin => UpgradeRefusal::Origin,
            Refusal::NoIdentity | Refusal::SignIn | Refusal::Unavailable => {
                UpgradeRefusal::Identity
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status(), self.reason()).into_response()
    }
}

/// What the checks need: the origin allowlist, the cookie keys and the
/// accounts. Any router state that can give one (`FromRef`) can use the
/// extractors.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    pub config: Arc<Config>,
    pub identity: Arc<IdentityKeys>,
    pub accounts: Arc<Accounts>,
}

/// The user of a request that may change state (or open a socket): its
/// `Origin` is present and allowed (`ALLOWED_ORIGINS`, or same origin), and
/// it has an identity this mode accepts ([`Accounts::identify`]).
#[derive(Clone, Debug)]
pub struct Caller(pub UserId);

/// The user of a `GET` that only reads (`/api/hello`, the events stream).
/// Browsers send no `Origin` on a same-origin `GET` (nor does
/// `EventSource`), and a page cannot read the answer of a cross-site one, so
/// a missing `Origin` is accepted unless `Sec-Fetch-Site` says the request
/// came from another site. A present `Origin` must be allowed, as everywhere.
#[derive(Clone, Debug)]
pub struct Reader(pub UserId);

/// [`Caller`] with the whole [`Identity`] (its session, its account).
#[derive(Clone, Debug)]
pub struct CallerIdentity(pub Identity);

/// [`Reader`] with the whole [`Identity`].
#[derive(Clone, Debug)]
pub struct ReaderIdentity(pub Identity);

/// A state-changing request from an allowed origin, whoever it is (the
/// sign-in and sign-up forms, which have no identity yet).
#[derive(Clone, Copy, Debug)]
pub struct AllowedOrigin;

impl<S> FromRequestParts<S> for AllowedOrigin
where
    S: Send + Sync,
    AccessPolicy: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let origin = origin.ok_or(Refusal::MissingOrigin)?;
        AccessPolicy::from_ref(state).check_origin(&parts.headers, origin)?;
        Ok(AllowedOrigin)
    }
}

/// `FromRequestParts` for an extractor that is [`AccessPolicy`]'s check.
macro_rules! extractor {
    ($extractor:ident, $check:ident, $map:expr) => {
        impl<S> FromRequestParts<S> for $extractor
        where
            S: Send + Sync,
            AccessPolicy: FromRef<S>,
        {
            type Rejection = Refusal;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
                AccessPolicy::from_ref(state).$check(parts).await.map($map)
            }
        }
    };
}

extractor!(Caller, caller, |identity: Identity| Caller(identity.user));
extractor!(Reader, reader, |identity: Identity| Reader(identity.user));
extractor!(CallerIdentity, caller, CallerIdentity);
extractor!(ReaderIdentity, reader, ReaderIdentity);

impl AccessPolicy {
    /// See [`Caller`].
    async fn caller(&self, parts: &mut Parts) -> Result<Identity, Refusal> {
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let Some(origin) = origin else {
            return Err(Refusal::MissingOrigin);
        };
        self.check_origin(&parts.headers, origin)?;
        self.identity(parts).await
    }

    /// See [`Reader`].
    async fn reader(&self, parts: &mut Parts) -> Result<Identity, Refusal> {
        match parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            Some(origin) => self.check_origin(&parts.headers, origin)?,
            None => {
                let site = parts
                    .headers
                    .get("sec-fetch-site")
                    .and_then(|v| v.to_str().ok());
                if site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
                    return Err(Refusal::ForeignOrigin);
                }
            }
        }
        self.identity(parts).await
    }

    /// Whether a present `Origin` is allowed.
    pub fn check_origin(&self, headers: &HeaderMap, origin: &str) -> Result<(), Refusal> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !self.config.origins.allows(origin, host) {
            tracing::info!(origin, "refused a request from a foreign origin");
            return Err(Refusal::ForeignOrigin);
        }
        Ok(())
    }

    /// Who the request is, looked up once per request (kept in its
    /// extensions for any later extractor).
    async fn identity(&self, parts: &mut Parts) -> Result<Identity, Refusal> {
        if let Some(known) = parts.extensions.get::<Identity>() {
            return Ok(known.clone());
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| canonical_ip(peer.ip()));
        let found = self
            .accounts
            .identify(&parts.headers, peer, &self.identity)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "could not look up who a request is");
                Refusal::Unavailable
            })?;
        let identity = found.ok_or(match self.config.auth_mode {
            AuthMode::Open => Refusal::NoIdentity,
            AuthMode::Accounts => Refusal::SignIn,
        })?;
        parts.extensions.insert(identity.clone());
        Ok(identity)
    }
}
