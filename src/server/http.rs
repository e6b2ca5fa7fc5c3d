//! The accept loop: TCP connections in, HTTP/1.1 (and WebSocket upgrades)
//! served by hyper, with the limits `axum::serve` does not have.
//!
//! * **Slow or silent clients.** A request's headers must arrive within
//!   `HEADER_TIMEOUT_SECS`, or the connection is closed (hyper's header
//!   timer). This is what stops a client holding connections open by
//!   trickling a request (slowloris) or by connecting and never sending one,
//!   which also covers an upgrade that never completes. After an upgrade
//!   the socket's pings take over (`WS_PING_INTERVAL_SECS`).
//! * **Where a request comes from.** Every request carries its TCP peer as
//!   `ConnectInfo<SocketAddr>`, read by [`super::access::address`].
//! * `TCP_NODELAY` on every connection: frames are small and written as soon
//!   as they exist (a connection already batches what is queued); Nagle's
//!   algorithm would hold each back until the peer's delayed ACK.
//!
//! [`serve`] stops accepting when `stop` is cancelled, asks every open HTTP
//! connection to finish its request and close, and returns once they have.
//! Upgraded sockets are not HTTP connections any more: the server's
//! shutdown closes them itself.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    Router,
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_service::Service;

use super::metrics::Metrics;

/// What every HTTP connection is served with.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `HEADER_TIMEOUT_SECS`.
    pub header_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Serves `listener` with `app` until `stop` is cancelled, then waits for
/// the open HTTP connections to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: HttpSettings,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_failed(err).await;
                continue;
            }
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let connection = connection(tcp, peer, app.clone(), settings.clone(), stop.clone());
        connections.spawn(connection);
    }
    connections.close();
    connections.wait().await;
}

/// One TCP connection: its requests, until it closes, upgrades, times out
/// or the server stops (then the request in progress is finished first).
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    settings: HttpSettings,
    stop: CancellationToken,
) {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let mut request: Request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    let served = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    let mut served = std::pin::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    match result {
        Ok(()) => {}
        Err(err) if err.is_timeout() => {
            settings.metrics.slow_request_closed();
            tracing::debug!(%peer, "closed a connection whose request headers did not arrive in time");
        }
        Err(err) => tracing::debug!(%peer, error = %err, "HTTP connection ended with an error"),
    }
}

/// An `accept` failed. A connection reset before it was accepted is the
/// peer's business; anything else (out of file descriptors) is logged and
/// the loop pauses briefly rather than spinning on the same error.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
