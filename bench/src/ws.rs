//! WebSocket transport: one connection per user, sequential sends.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ctx::{get_cookie, Ctx};
use crate::frames::{send_json, ServerFrame};
use crate::stats::{ws_header_len, MsgSample, MsgTrack, UserResult};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upgrade at `/ws` with the cookie and a same-origin `Origin`, then wait for `hello`.
pub async fn connect(ctx: &Ctx, cookie: &str, deadline: Instant) -> Result<Ws, String> {
    let mut req = ctx
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| "connect:bad_url".to_string())?;
    let h = req.headers_mut();
    h.insert(
        "Origin",
        HeaderValue::from_str(&ctx.origin).map_err(|_| "connect:bad_origin")?,
    );
    h.insert(
        "Cookie",
        HeaderValue::from_str(cookie).map_err(|_| "connect:bad_cookie")?,
    );
    let fut = tokio_tungstenite::connect_async_with_config(req, None, true);
    let mut ws = match tokio::time::timeout_at(deadline, fut).await {
        Err(_) => return Err("timeout:upgrade".into()),
        Ok(Err(WsError::Http(resp))) => return Err(format!("upgrade_{}", resp.status().as_u16())),
        Ok(Err(_)) => return Err("connect".into()),
        Ok(Ok((ws, _))) => ws,
    };
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("timeout:hello".into()),
            Ok(None) | Ok(Some(Err(_))) => return Err("closed:before_hello".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return match serde_json::from_str::<ServerFrame>(t.as_str()) {
                    Ok(ServerFrame::Hello { protocol: 1 }) => Ok(ws),
                    Ok(ServerFrame::Error { code, .. }) => Err(format!("error_frame:{code}")),
                    _ => Err("protocol:first_frame_not_hello".into()),
                };
            }
            Ok(Some(Ok(Message::Close(_)))) => return Err("closed:before_hello".into()),
            Ok(Some(Ok(_))) => continue, // ping/pong
        }
    }
}

/// One user: cookie, connect, `messages` sequential sends on one conversation.
pub async fn run_user(ctx: Arc<Ctx>, user: usize) -> UserResult {
    let mut out = UserResult::default();
    if let Err(e) = user_inner(&ctx, user, &mut out).await {
        out.errors.push(e);
    }
    out
}

async fn user_inner(ctx: &Ctx, user: usize, out: &mut UserResult) -> Result<(), String> {
    let cookie = get_cookie(ctx).await?;
    let mut ws = connect(ctx, &cookie, ctx.step_deadline(Instant::now())).await?;
    let mut conversation: Option<String> = None;
    for m in 0..ctx.messages {
        let id = format!("{}-u{user}-m{m}", ctx.run_tag);
        out.samples
            .push(exchange(ctx, &mut ws, &id, &mut conversation).await?);
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// What reading the next frame gave.
pub enum Recv {
    Text(Utf8Bytes),
    Timeout,
    /// The stream ended, failed or sent a close frame.
    Closed,
    Binary,
}

/// The next text frame (pings and pongs are skipped), or why there is none by `deadline`.
pub async fn recv(ws: &mut Ws, deadline: Instant) -> Recv {
    loop {
        return match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => Recv::Timeout,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => Recv::Closed,
            Ok(Some(Ok(Message::Text(t)))) => Recv::Text(t),
            Ok(Some(Ok(Message::Binary(_)))) => Recv::Binary,
            Ok(Some(Ok(_))) => continue,
        };
    }
}

/// Writes one text frame by `deadline`.
pub async fn send_text(ws: &mut Ws, text: String, deadline: Instant) -> Result<(), String> {
    match tokio::time::timeout_at(deadline, ws.send(Message::Text(text.into()))).await {
        Err(_) => Err("timeout:send".into()),
        Ok(Err(_)) => Err("closed:send".into()),
        Ok(Ok(())) => Ok(()),
    }
}

/// Sends `ctx.text` as the message `id` (in `conversation`, or a new one that
/// is then recorded there) and reads its reply to `done`, validated.
pub async fn exchange(
    ctx: &Ctx,
    ws: &mut Ws,
    id: &str,
    conversation: &mut Option<String>,
) -> Result<MsgSample, String> {
    let body = send_json(id, conversation.as_deref(), &ctx.text);
    let t0 = Instant::now();
    let deadline = ctx.step_deadline(t0);
    send_text(ws, body, deadline).await?;
    let mut track = MsgTrack::new(t0.into_std(), ctx.expected.clone());
    loop {
        let msg = match recv(ws, deadline).await {
            Recv::Timeout => return Err(track.timeout_error()),
            Recv::Closed => return Err("closed:mid_message".into()),
            Recv::Binary => return Err("protocol:binary_frame".into()),
            Recv::Text(t) => t,
        };
        let now = std::time::Instant::now();
        let len = msg.len();
        track.on_bytes(len);
        let frame: ServerFrame =
            serde_json::from_str(msg.as_str()).map_err(|_| "protocol:bad_json".to_string())?;
        let wire = len as u64 + ws_header_len(len);
        if let Some(sample) = track.on_frame(frame, now, len as u64, wire, id, conversation)? {
            return Ok(sample);
        }
    }
}
