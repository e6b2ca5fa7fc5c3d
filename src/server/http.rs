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
//! * **Readers that stop reading.** A write to a connection may not stall
//!   longer than `WRITE_TIMEOUT_SECS` ([`StallGuard`]), on every
//!   connection, upgraded or not: an event stream whose client stopped
//!   reading ends instead of holding its stream's place (and its buffers)
//!   for ever. A WebSocket has its own write timeout too.
//! * `TCP_NODELAY` on every connection: frames are small and written as soon
//!   as they exist (a connection already batches what is queued); Nagle's
//!   algorithm would hold each back until the peer's delayed ACK.
//!
//! [`serve`] stops accepting when `stop` is cancelled, asks every open HTTP
//! connection to finish its request and close, and returns once they have.
//! Upgraded sockets are not HTTP connections any more: the server's
//! shutdown closes them itself.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    Router,
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::Sleep,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_service::Service;

use super::{config::TrustedProxies, metrics::Metrics};

/// What every HTTP connection is served with.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `HEADER_TIMEOUT_SECS`.
    pub header_timeout: Duration,
    /// `WRITE_TIMEOUT_SECS`.
    pub write_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Says once when a proxy that is not trusted forwards requests.
    pub proxy_hint: Arc<ProxyHint>,
}

/// `X-Forwarded-For` from a peer outside `TRUSTED_PROXIES` is ignored, so
/// every client behind such a proxy shares its address's limits. That is
/// right for a client forging the header and wrong for an operator who
/// forgot the setting: the first such request is logged, once.
#[derive(Debug)]
pub struct ProxyHint {
    trusted: TrustedProxies,
    told: AtomicBool,
}

impl ProxyHint {
    pub fn new(trusted: TrustedProxies) -> Self {
        Self {
            trusted,
            told: AtomicBool::new(false),
        }
    }

    fn check(&self, peer: SocketAddr, request: &Request) {
        if self.told.load(Ordering::Relaxed)
            || !request.headers().contains_key("x-forwarded-for")
            || self.trusted.trusts(peer.ip())
            || self.told.swap(true, Ordering::Relaxed)
        {
            return;
        }
        tracing::warn!(
            peer = %peer.ip(),
            "a request from {} carries X-Forwarded-For, but TRUSTED_PROXIES does not name \
             that peer: the header is ignored, and if it is your reverse proxy every client \
             behind it shares one address's limits (set TRUSTED_PROXIES={}); said once",
            peer.ip(),
            peer.ip()
        );
    }
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
    let hint = settings.proxy_hint.clone();
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let mut request: Request = request.map(Body::new);
        hint.check(peer, &request);
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    let served = builder
        .serve_connection(
            TokioIo::new(StallGuard::new(tcp, settings.write_timeout)),
            service,
        )
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

/// An I/O stream whose writes fail once one has waited longer than `limit`
/// for the peer to read (the write side stayed full).
pub struct StallGuard<T> {
    io: T,
    limit: Duration,
    /// Running while a write waits; reset when one goes through.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// A write made progress (`ready`) or waits: then the clock runs, and
    /// when it has run out the write fails with `TimedOut`.
    fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        ready: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if ready.is_ready() {
            self.stalled = None;
            return ready;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let ready = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, ready)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let ready = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, ready)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let ready = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, ready)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_write_the_peer_does_not_read_fails_after_the_limit() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(ours, Duration::from_millis(50));
        // Within what the pipe holds, writes go through at once.
        guarded.write_all(&[1; 64]).await.expect("fits");
        // The peer reads some: the next write waits, then goes through.
        let mut buf = [0; 32];
        peer.read_exact(&mut buf).await.expect("read");
        guarded.write_all(&[2; 32]).await.expect("room again");
        // The peer stops reading: the write fails instead of waiting for ever.
        let err = guarded.write_all(&[3; 64]).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_cut() {
        let (ours, mut peer) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(ours, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).await.expect("read");
            all.len()
        });
        guarded
            .write_all(&[7; 4096])
            .await
            .expect("written in steps");
        guarded.shutdown().await.expect("shutdown");
        drop(guarded);
        assert_eq!(reader.await.expect("join"), 4096);
    }
}
