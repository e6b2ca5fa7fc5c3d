//! WebSocket transport: one connection per user, sequential sends.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ctx::{get_cookie, Ctx};
use crate::frames::{send_json, ServerFrame};
use crate::stats::{ws_header_len, MsgTrack, UserResult};

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
        let body = send_json(&id, conversation.as_deref(), &ctx.text);
        let t0 = Instant::now();
        let deadline = ctx.step_deadline(t0);
        match tokio::time::timeout_at(deadline, ws.send(Message::Text(body.into()))).await {
            Err(_) => return Err("timeout:send".into()),
            Ok(Err(_)) => return Err("closed:send".into()),
            Ok(Ok(())) => {}
        }
        let mut track = MsgTrack::new(t0.into_std(), ctx.expected.clone());
        loop {
            let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => {
                    return Err(track.timeout_error());
                }
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Err("closed:mid_message".into())
                }
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(Message::Binary(_)))) => return Err("protocol:binary_frame".into()),
                Ok(Some(Ok(_))) => continue,
            };
            let now = std::time::Instant::now();
            let len = msg.len();
            track.on_bytes(len);
            let frame: ServerFrame =
                serde_json::from_str(msg.as_str()).map_err(|_| "protocol:bad_json".to_string())?;
            let wire = len as u64 + ws_header_len(len);
            if let Some(sample) =
                track.on_frame(frame, now, len as u64, wire, &id, &mut conversation)?
            {
                out.samples.push(sample);
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}
