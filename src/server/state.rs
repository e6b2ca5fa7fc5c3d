//! The composition root's product: one `AppState`, cloned into every handler.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    chat::{limits::SocketRegistry, ChatService},
    config::Config,
    identity::IdentityKeys,
    metrics::Metrics,
};

/// Shared server state. Cheap to clone: every field is an `Arc` or a handle.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    pub identity: Arc<IdentityKeys>,
    pub chat: Arc<ChatService>,
    pub sockets: Arc<SocketRegistry>,
    /// One permit per open WebSocket (`MAX_CONNECTIONS`).
    pub connection_permits: Arc<Semaphore>,
    /// Every upgraded socket's task, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Tells every socket to close with 1001.
    pub close_sockets: CancellationToken,
    /// Counters and timings for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
