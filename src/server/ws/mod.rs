//! `GET /ws`: the checks before the upgrade, then one [`connection`] per socket.
//!
//! Refusals happen before upgrading, with a status and a plain-text reason:
//! `403` for an `Origin` outside the allowlist, `401` without a valid identity
//! cookie, `503` when the server holds its maximum of sockets. A `?uid=` query
//! parameter is never read. The Origin and identity checks are
//! [`super::access`] extractors, shared with the HTTP streaming transport;
//! so is the count of open streams ([`super::access::admission`]).

pub mod connection;
pub mod decode;
pub mod flood;
pub mod following;

use axum::{
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade},
        State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::{
    access::{address::ClientAddr, admission::Crowded, CallerIdentity, Refusal},
    metrics::UpgradeRefusal,
    state::AppState,
};

/// How many bytes of frames a socket gathers before writing them without
/// waiting for the flush (every batch of frames ends with a flush).
const WRITE_GATHER: usize = 16 * 1024;

/// The upgrade handler.
pub async fn upgrade(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    caller: Result<CallerIdentity, Refusal>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let identity = match caller {
        Ok(CallerIdentity(identity)) => identity,
        Err(refusal) => {
            state.metrics.upgrade_refused(refusal.upgrade_metric());
            return refusal.into_response();
        }
    };
    let user = identity.user.clone();
    let session = state.accounts.watch(&identity);
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    // A full server refuses before upgrading; a user or an address with too
    // many sockets is told so on the socket, which then closes (the page
    // shows why).
    let admitted = match state
        .admission
        .admit_everywhere(&user, from, state.chat.cluster())
        .await
    {
        Err(Crowded::Server) => {
            state.metrics.upgrade_refused(UpgradeRefusal::Capacity);
            return (StatusCode::SERVICE_UNAVAILABLE, Crowded::Server.reason()).into_response();
        }
        admitted => admitted,
    };
    let limits = state.config.limits;
    // tungstenite's own cap is a hard backstop above the protocol limit: frames
    // between the two get a `too_large` error frame and the socket stays open.
    let hard_cap = (limits.max_frame_bytes * 2).max(64 * 1024);
    let tracker = state.connections.clone();
    // Per-socket memory is the cost of an idle user: a 1 KiB read buffer
    // (frames larger than that are read in more steps). Frames written
    // together (`accepted` and the echo, a `delta` and `done`) are gathered
    // up to WRITE_GATHER bytes and leave in one write at the flush; the
    // buffer only grows as large as what was gathered (nothing for an idle
    // socket). With 0, every frame was its own send(2) (issue 18).
    ws.read_buffer_size(1024)
        .write_buffer_size(WRITE_GATHER)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| {
            // No `async` block around it: that would hold the connection's
            // future twice (as a captured value and as the awaited one).
            let connection =
                connection::Connection::new(socket, state, (user, from), admitted, session);
            tracker.track_future(connection.run())
        })
}
