//! The HTTP fallback (feature `browser`): the protocol over plain requests
//! when the WebSocket cannot be opened (a proxy that drops upgrades, say).
//!
//! `GET /api/hello` stands in for the socket's greeting; every client frame
//! is then a `POST /api/frame`. The streaming answers (`send`,
//! `regenerate`, `subscribe`) are Server-Sent Events read from the fetch
//! body as they arrive; the others are one JSON frame. Frames go to the same
//! `on_frame` as the socket's, so the rest of the page cannot tell the
//! difference, except for the status badge.

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use futures::{channel::mpsc::UnboundedReceiver, FutureExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, ReadableStreamDefaultReader, Request, RequestInit, Response};

use crate::event_stream::EventStream;
use crate::protocol::{ClientFrame, ModelSetup, ServerFrame};

/// Frames (as JSON) waiting to be delivered, shared with the socket loop.
pub type Outbox = Rc<RefCell<VecDeque<String>>>;

/// `GET /api/hello`: the greeting, if the server answers plain requests.
pub async fn hello() -> Option<ServerFrame> {
    let response = fetch("GET", "/api/hello", None).await.ok()?;
    if !response.ok() {
        return None;
    }
    serde_json::from_str(&text(&response).await.ok()?).ok()
}

/// `GET /api/model-setup`: whether the model is set up yet.
pub async fn model_setup() -> Option<ModelSetup> {
    let response = fetch("GET", "/api/model-setup", None).await.ok()?;
    if !response.ok() {
        return None;
    }
    serde_json::from_str(&text(&response).await.ok()?).ok()
}

/// Why [`serve`] returned.
pub enum Served {
    /// A request could not reach the server; its frame is back in the outbox.
    Lost,
    /// A probe socket got its `hello`: WebSockets work (again).
    SocketWorks,
    /// The page closed the frame channel.
    Closed,
}

/// How often the fallback checks, quietly, whether a socket would open now.
const PROBE_EVERY_MS: u32 = 60_000;

/// Carries frames over HTTP, each request on its own, until one cannot reach
/// the server (the frame that failed, and any queued, stay in `outbox`) or a
/// probe socket shows that WebSockets work again.
pub async fn serve(
    rx: &mut UnboundedReceiver<ClientFrame>,
    outbox: &Outbox,
    on_frame: &Rc<dyn Fn(ServerFrame)>,
    socket_url: &str,
) -> Served {
    let (lost_tx, mut lost_rx) = futures::channel::mpsc::unbounded::<()>();
    let mut probe = Box::pin(TimeoutFuture::new(PROBE_EVERY_MS).fuse());
    loop {
        while let Some(json) = outbox.borrow_mut().pop_front() {
            let (outbox, on_frame, lost) = (outbox.clone(), on_frame.clone(), lost_tx.clone());
            leptos::task::spawn_local(async move {
                if exchange(&json, on_frame.as_ref()).await.is_err() {
                    outbox.borrow_mut().push_back(json);
                    let _ = lost.unbounded_send(());
                }
            });
        }
        futures::select_biased! {
            _ = lost_rx.next() => return Served::Lost,
            outgoing = rx.next() => match outgoing {
                Some(frame) => outbox.borrow_mut().push_back(frame.to_json()),
                None => return Served::Closed,
            },
            () = probe => {
                if socket_greets(socket_url).await {
                    return Served::SocketWorks;
                }
                probe = Box::pin(TimeoutFuture::new(PROBE_EVERY_MS).fuse());
            }
        }
    }
}

/// Whether a socket opened now receives its `hello` within a few seconds.
/// The probe is closed either way; nothing is sent on it.
async fn socket_greets(url: &str) -> bool {
    let Ok(socket) = WebSocket::open(url) else {
        return false;
    };
    let (_, mut read) = socket.split();
    futures::select! {
        first = read.next().fuse() => matches!(first, Some(Ok(WsMessage::Text(_)))),
        () = TimeoutFuture::new(5_000).fuse() => false,
    }
}

/// The request did not reach the server, or its answer broke off.
struct Lost;

/// Posts one frame; each frame of the answer goes to `on_frame` as it arrives.
async fn exchange(json: &str, on_frame: &dyn Fn(ServerFrame)) -> Result<(), Lost> {
    let response = fetch("POST", "/api/frame", Some(json))
        .await
        .map_err(|_| Lost)?;
    let streaming = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !streaming {
        // 204, or one frame: an answer, or an `error` with its HTTP status.
        if response.status() != 204 {
            if let Ok(frame) = ServerFrame::from_json(&text(&response).await?) {
                on_frame(frame);
            }
        }
        return Ok(());
    }
    let Some(body) = response.body() else {
        return Ok(());
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut events = EventStream::default();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|_| Lost)?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(());
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(|_| Lost)?;
        for data in events.push(&js_sys::Uint8Array::new(&value).to_vec()) {
            if let Ok(frame) = ServerFrame::from_json(&data) {
                on_frame(frame);
            }
        }
    }
}

async fn text(response: &Response) -> Result<String, Lost> {
    let promise = response.text().map_err(|_| Lost)?;
    let value = JsFuture::from(promise).await.map_err(|_| Lost)?;
    Ok(value.as_string().unwrap_or_default())
}

/// A same-origin request (the identity cookie goes along).
async fn fetch(method: &str, url: &str, body: Option<&str>) -> Result<Response, JsValue> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        let headers = Headers::new()?;
        headers.set("content-type", "application/json")?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(body));
    }
    let request = Request::new_with_str_and_init(url, &init)?;
    let window = web_sys::window().ok_or(JsValue::NULL)?;
    JsFuture::from(window.fetch_with_request(&request))
        .await?
        .dyn_into()
}
