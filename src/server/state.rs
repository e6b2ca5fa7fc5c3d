//! The composition root's product: one `AppState`, cloned into every handler,
//! and the sub-states (`FromRef`) that extractors and layers ask for, so
//! modules below it (`access`, `identity`, `error`) never name `AppState`.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::protocol::UserId;

use super::{
    access::{address::AddrKey, admission::Admission, AccessPolicy},
    accounts::{Accounts, Identity},
    chat::limits::RateLimiter,
    chat::ChatService,
    config::Config,
    identity::{CookiePolicy, IdentityKeys},
    metrics::Metrics,
};

/// Shared server state. Cheap to clone: every field is an `Arc` or a handle.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    pub identity: Arc<IdentityKeys>,
    pub chat: Arc<ChatService>,
    /// Open streams, WebSocket or SSE: `MAX_CONNECTIONS` and
    /// `MAX_SOCKETS_PER_USER`.
    pub admission: Arc<Admission>,
    /// New identity cookies per client address (`IDENTITY_BURST`,
    /// `IDENTITY_PER_SEC`).
    pub identities_issued: Arc<RateLimiter<AddrKey>>,
    /// Every upgraded socket's task, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Tells every socket to close with 1001.
    pub close_sockets: CancellationToken,
    /// Counters and timings for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Accounts, sessions, the admin's actions.
    pub accounts: Arc<Accounts>,
}

impl AppState {
    /// The user a page is rendered for: who the cookie middleware found, or
    /// (a request it did not look at) who the request's cookies say.
    pub async fn page_user(&self, parts: &axum::http::request::Parts) -> Option<UserId> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Some(identity.user.clone());
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| super::config::canonical_ip(info.0.ip()));
        match self
            .accounts
            .identify(&parts.headers, peer, &self.identity)
            .await
        {
            Ok(found) => found.map(|identity| identity.user),
            Err(err) => {
                tracing::warn!(error = %err, "could not look up who a page is for");
                None
            }
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for AccessPolicy {
    fn from_ref(state: &AppState) -> Self {
        AccessPolicy {
            config: state.config.clone(),
            identity: state.identity.clone(),
            accounts: state.accounts.clone(),
        }
    }
}

impl FromRef<AppState> for CookiePolicy {
    fn from_ref(state: &AppState) -> Self {
        CookiePolicy {
            keys: state.identity.clone(),
            secure: state.config.cookie_secure,
            config: state.config.clone(),
            issued: state.identities_issued.clone(),
            metrics: state.metrics.clone(),
            accounts: state.accounts.clone(),
        }
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}
