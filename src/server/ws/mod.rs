//! `GET /ws`: the checks before the upgrade, then one [`connection`] per socket.
//!
//! Refusals happen before upgrading, with a status and a plain-text reason:
//! `403` for an `Origin` outside the allowlist, `401` without a valid identity
//! cookie, `503` when the server holds its maximum of sockets. A `?uid=` query
//! parameter is never read. The Origin and identity checks are
//! [`super::access`], shared with the HTTP streaming transport.

pub mod connection;

use axum::{
    extract::{ws::WebSocketUpgrade, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{access::check_origin_and_identity, metrics::UpgradeRefusal, state::AppState};

/// The upgrade handler.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let user = match check_origin_and_identity(&state, &headers) {
        Ok(user) => user,
        Err(refusal) => {
            state.metrics.upgrade_refused(refusal.upgrade_metric());
            return refusal.into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Ok(permit) = state.connection_permits.clone().try_acquire_owned() else {
        state.metrics.upgrade_refused(UpgradeRefusal::Capacity);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server holds its maximum number of connections",
        )
            .into_response();
    };
    let slot = state.sockets.open(&user);
    let limits = state.config.limits;
    // tungstenite's own cap is a hard backstop above the protocol limit: frames
    // between the two get a `too_large` error frame and the socket stays open.
    let hard_cap = (limits.max_frame_bytes * 2).max(64 * 1024);
    let tracker = state.connections.clone();
    // Per-socket memory is the cost of an idle user: a 1 KiB read buffer
    // (frames larger than that are read in more steps), no write buffer.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| {
            // No `async` block around it: that would hold the connection's
            // future twice (as a captured value and as the awaited one).
            tracker
                .track_future(connection::Connection::new(socket, state, user, slot, permit).run())
        })
}
