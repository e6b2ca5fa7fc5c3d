//! The browser's one WebSocket to the server (feature `browser`).
//!
//! [`spawn`] keeps a connection open for the life of the page: it reconnects
//! with exponential backoff and jitter, reports its [`ConnStatus`], and queues
//! frames sent while offline, delivering each once when the socket is back
//! (the frame carries its `client_msg_id`, so the server deduplicates).
//! When sockets keep failing while the server answers plain requests, it
//! carries on over HTTP ([`super::fallback`]) until a request fails.

use std::rc::Rc;

use futures::{channel::mpsc::UnboundedReceiver, FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};
use gloo_timers::future::TimeoutFuture;

use super::{
    fallback::{self, Outbox, Served},
    ConnStatus,
};
use crate::protocol::{ClientFrame, ServerFrame};

/// Opens the socket in the background and keeps it open; frames arriving on
/// `outgoing` are written in order, held while offline.
pub fn spawn(
    outgoing: UnboundedReceiver<ClientFrame>,
    on_frame: impl Fn(ServerFrame) + 'static,
    on_status: impl Fn(ConnStatus) + 'static,
) {
    leptos::task::spawn_local(run(outgoing, Rc::new(on_frame), Rc::new(on_status)));
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

async fn run(
    mut rx: UnboundedReceiver<ClientFrame>,
    on_frame: Rc<dyn Fn(ServerFrame)>,
    on_status: Rc<dyn Fn(ConnStatus)>,
) {
    let outbox: Outbox = Rc::default();
    let mut failures: u32 = 0;
    // The server answered plain requests after a socket had failed.
    let mut http_answers = false;
    loop {
        on_status(match failures {
            0 => ConnStatus::Connecting,
            n if n >= OFFLINE_AFTER_FAILURES => ConnStatus::Offline,
            _ => ConnStatus::Reconnecting,
        });
        let Some(url) = socket_url() else { return };
        // The client-only (Trunk) page was not served by Tether, so it has no
        // identity cookie yet: ask for one (through Trunk's proxy).
        #[cfg(feature = "csr")]
        let _ = gloo_net::http::Request::get("/api/session").send().await;
        if let Ok(socket) = WebSocket::open(&url) {
            let (mut write, mut read) = socket.split();
            let mut opened = false;
            loop {
                // Flush what was queued while offline, in order.
                if opened {
                    loop {
                        let Some(text) = outbox.borrow_mut().pop_front() else {
                            break;
                        };
                        if write.send(WsMessage::Text(text.clone())).await.is_err() {
                            outbox.borrow_mut().push_front(text);
                            break;
                        }
                    }
                }
                futures::select_biased! {
                    incoming = read.next().fuse() => match incoming {
                        Some(Ok(WsMessage::Text(text))) => {
                            if let Ok(frame) = ServerFrame::from_json(&text) {
                                if matches!(frame, ServerFrame::Hello { .. }) {
                                    opened = true;
                                    failures = 0;
                                    http_answers = false;
                                    on_status(ConnStatus::Connected);
                                }
                                on_frame(frame);
                            }
                        }
                        Some(Ok(WsMessage::Bytes(_))) => {}
                        // This browser's session was signed out (another
                        // device, an admin, a password change): load the
                        // page again, which asks to sign in (or, where
                        // guests may chat, starts as a guest).
                        Some(Err(gloo_net::websocket::WebSocketError::ConnectionClose(close)))
                            if close.reason == "signed out" =>
                        {
                            if let Some(window) = web_sys::window() {
                                let _ = window.location().reload();
                            }
                            return;
                        }
                        Some(Err(_)) | None => break,
                    },
                    outgoing = rx.next() => match outgoing {
                        Some(frame) => outbox.borrow_mut().push_back(frame.to_json()),
                        None => return,
                    },
                }
            }
        }
        failures = failures.saturating_add(1);
        // A socket that cannot open while the server answers plain requests
        // (a proxy that drops upgrades): carry on over HTTP. It takes a
        // failed socket *after* a successful request, so a server that is
        // just starting up is not mistaken for one behind such a proxy.
        if http_answers {
            if let Some(hello) = fallback::hello().await {
                on_status(ConnStatus::Http);
                on_frame(hello);
                match fallback::serve(&mut rx, &outbox, &on_frame, &url).await {
                    Served::Closed => return,
                    // Straight back to a socket, which greets and resubscribes.
                    Served::SocketWorks => {
                        failures = 0;
                        http_answers = false;
                        continue;
                    }
                    Served::Lost => failures = 1,
                }
            }
            http_answers = false;
        } else if failures >= FALLBACK_AFTER_FAILURES && fallback::hello().await.is_some() {
            http_answers = true;
            continue;
        }
        on_status(if failures >= OFFLINE_AFTER_FAILURES {
            ConnStatus::Offline
        } else {
            ConnStatus::Reconnecting
        });
        TimeoutFuture::new(backoff_ms(failures)).await;
    }
}

/// Consecutive failed sockets after which the HTTP fallback is tried.
const FALLBACK_AFTER_FAILURES: u32 = 2;

/// Consecutive failed attempts after which the page says it is offline.
const OFFLINE_AFTER_FAILURES: u32 = 4;

/// 250 ms doubling up to 10 s, with ±30 % jitter so tabs do not reconnect in lockstep.
fn backoff_ms(failures: u32) -> u32 {
    let base = 250f64 * 2f64.powi(failures.min(6) as i32 - 1);
    let base = base.min(10_000.0);
    let jitter = 0.7 + js_sys::Math::random() * 0.6;
    (base * jitter) as u32
}
