//! The server half (feature `ssr`): configuration, state, routes, the
//! WebSocket edge and its HTTP streaming (SSE) twin (both thin: what a frame
//! means is the chat core's), access checks and HTTP errors, the chat core,
//! storage and the model client.
//!
//! [`build_state`] is the composition root; [`run`] serves an already bound
//! listener until `shutdown` resolves, then drains: it stops accepting, lets
//! running replies finish within the grace period, stops and stores the rest,
//! and closes every socket with 1001.

pub mod access;
pub mod accounts;
pub mod archive;
#[cfg(feature = "embed-site")]
pub mod assets;
pub mod chat;
pub mod cluster;
pub mod companions;
pub mod config;
pub mod error;
pub mod http;
pub mod identity;
pub mod llm;
pub mod metrics;
pub mod pages;
pub mod router;
pub mod sse;
pub mod state;
pub mod store;
pub mod ws;

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use leptos::config::LeptosOptions;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{
    access::admission::Admission,
    chat::{limits::RateLimiter, ChatService},
    config::Config,
    identity::IdentityKeys,
    llm::LlmClient,
    metrics::Metrics,
    state::AppState,
    store::{Store, StoreError},
};

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("session secret in {dir}: {source}")]
    Secret {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error(
        "SESSION_SECRET differs from the session secret the other instances on this \
         database use: give every instance the same SESSION_SECRET (or none, to share \
         the one stored in the database)"
    )]
    SecretMismatch,
}

/// Opens storage, loads keys and wires the services together.
pub async fn build_state(config: Config) -> Result<AppState, ServerError> {
    let store::OpenedStore {
        store,
        fault_counts,
    } = store::open(&config.database, &config.limits).await?;
    let clustered = config.redis_url.is_some();
    let identity = if clustered {
        // Other instances' replies are theirs: the cluster recovers the
        // replies of dead instances as it runs.
        shared_identity(store.as_ref(), config.session_secret.as_ref()).await?
    } else {
        recover_interrupted(store.as_ref()).await?;
        IdentityKeys::load_or_create(
            config.session_secret.as_ref().map(|s| s.expose()),
            Path::new(&config.data_dir),
        )
        .map_err(|source| ServerError::Secret {
            dir: config.data_dir.clone(),
            source,
        })?
    };
    let leptos_options = LeptosOptions::builder()
        .output_name("tether")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.listen_addr)
        .build();
    let config = Arc::new(config);
    let llm = LlmClient::new(config.upstream.clone());
    let metrics = Arc::new(Metrics::with_store_faults(fault_counts));
    let chat = match &config.redis_url {
        Some(url) => {
            let settings = cluster::ClusterSettings {
                instance: store::new_id(),
                lease: config.reply_lease.max(Duration::from_secs(1)),
            };
            tracing::info!(instance = %settings.instance, lease_secs = settings.lease.as_secs_f64(), "cluster mode: live state in Redis");
            let connecting = cluster::connect(url.expose(), settings).await?;
            ChatService::clustered(config.clone(), store, llm, metrics.clone(), connecting)
        }
        None => ChatService::new(config.clone(), store, llm, metrics.clone()),
    };
    // Quotas are counted in `accounts` mode only (see `accounts::quota`).
    let chat = match config.auth_mode {
        config::AuthMode::Accounts => {
            let store = chat.store().clone();
            chat.metered(Arc::new(accounts::quota::Quotas::new(
                config.clone(),
                store,
            )))
        }
        config::AuthMode::Open => chat,
    };
    let chat = Arc::new(chat);
    let identity = Arc::new(identity);
    let accounts = Arc::new(accounts::Accounts::new(
        config.clone(),
        chat.clone(),
        identity.clone(),
    ));
    Ok(AppState {
        leptos_options,
        identity,
        accounts,
        chat,
        admission: Arc::new(Admission::new(
            config.limits.max_connections,
            config.limits.max_sockets_per_user,
            config.limits.max_streams_per_addr,
            metrics.clone(),
        )),
        identities_issued: Arc::new(RateLimiter::new(
            config.limits.identity_burst,
            config.limits.identity_per_sec,
        )),
        connections: TaskTracker::new(),
        close_sockets: CancellationToken::new(),
        metrics,
        config,
    })
}

/// Marks replies a crash left streaming as interrupted (one instance alone).
async fn recover_interrupted(store: &dyn Store) -> Result<(), ServerError> {
    match store.recover_interrupted().await {
        Ok(0) => Ok(()),
        Ok(recovered) => {
            tracing::warn!(recovered, "marked replies interrupted by a crash as errors");
            Ok(())
        }
        // Unavailable now (logged by the store): the conversations show
        // such replies as errors anyway, and the next start marks them.
        Err(StoreError::Fault(fault)) if fault.kind.is_transient() => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The cookie key every instance on the database shares: the one stored
/// there, created by the first instance (from its `SESSION_SECRET`, or
/// random). An instance whose `SESSION_SECRET` differs refuses to start.
async fn shared_identity(
    store: &dyn Store,
    explicit: Option<&config::Secret>,
) -> Result<IdentityKeys, ServerError> {
    let proposed = match explicit {
        Some(secret) => secret.expose().to_owned(),
        None => identity::random_secret(),
    };
    let stored = store.shared_setting("session_secret", &proposed).await?;
    if explicit.is_some() && stored != proposed {
        return Err(ServerError::SecretMismatch);
    }
    Ok(IdentityKeys::new(stored.as_bytes()))
}

/// Serves `listener` until `shutdown` resolves, then drains and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let llm = state.chat.llm().clone();
    state
        .connections
        .spawn(llm.setup().clone().follow(state.close_sockets.clone()));
    let stop = state.close_sockets.clone();
    state.connections.spawn(async move {
        // A model being installed is checked once it is set up.
        tokio::select! {
            _ = llm.ready() => {}
            _ = stop.cancelled() => return,
        }
        match llm.check().await {
            Ok(models) => tracing::info!(
                base_url = llm.base_url(),
                model = llm.model(),
                available = %models.join(", "),
                "model provider ready"
            ),
            Err(problem) => tracing::error!("{problem}"),
        }
    });
    let stop_accepting = CancellationToken::new();
    let app = router::app(state.clone());
    let settings = http::HttpSettings {
        header_timeout: state.config.limits.header_timeout,
        write_timeout: state.config.limits.write_timeout,
        metrics: state.metrics.clone(),
        proxy_hint: Arc::new(http::ProxyHint::new(state.config.trusted_proxies.clone())),
    };
    let serve = tokio::spawn(http::serve(listener, app, settings, stop_accepting.clone()));

    shutdown.await;
    tracing::info!(
        grace_secs = state.config.shutdown_grace.as_secs_f64(),
        replies = state.chat.running_replies(),
        "shutting down: no new connections, finishing replies"
    );
    stop_accepting.cancel();
    state.chat.drain(state.config.shutdown_grace).await;
    state.close_sockets.cancel();
    state.connections.close();
    if tokio::time::timeout(Duration::from_secs(5), state.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = state.connections.len(),
            "sockets did not close in time"
        );
    }
    match tokio::time::timeout(Duration::from_secs(5), serve).await {
        Ok(Ok(())) => {}
        Ok(Err(join)) => tracing::error!(error = %join, "server task failed"),
        Err(_) => tracing::warn!("HTTP connections did not drain in time"),
    }
    tracing::info!("stopped");
    Ok(())
}
