//! HTTP streaming transport: one `POST /api/chat` per message, the reply read
//! as `text/event-stream`.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use tokio::time::Instant;

use crate::ctx::{get_cookie, Ctx};
use crate::frames::{send_json, ServerFrame};
use crate::stats::{MsgSample, MsgTrack, UserResult};

pub async fn run_user(ctx: Arc<Ctx>, user: usize) -> UserResult {
    let mut out = UserResult::default();
    if let Err(e) = user_inner(&ctx, user, &mut out).await {
        out.errors.push(e);
    }
    out
}

/// Splits complete events (terminated by a blank line) off the front of `buf`.
/// Returns (event bytes incl. the blank line, event name, data).
fn next_event(buf: &mut Vec<u8>) -> Option<(usize, String, String)> {
    let pos = buf.windows(2).position(|w| w == b"\n\n")?;
    let block: Vec<u8> = buf.drain(..pos + 2).collect();
    let text = String::from_utf8_lossy(&block);
    let mut event = String::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim_start().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    Some((block.len(), event, data.join("\n")))
}

async fn user_inner(ctx: &Ctx, user: usize, out: &mut UserResult) -> Result<(), String> {
    let cookie = get_cookie(ctx).await?;
    let mut conversation: Option<String> = None;
    for m in 0..ctx.messages {
        let id = format!("{}-u{user}-m{m}", ctx.run_tag);
        out.samples
            .push(exchange(ctx, &cookie, &id, &mut conversation).await?);
    }
    Ok(())
}

/// `POST {origin}{path}` with a JSON `body`, the cookie and a same-origin
/// `Origin`. A status other than `200`/`204` is an error `http_<status>[:code]`.
pub async fn post_json(
    ctx: &Ctx,
    cookie: &str,
    path: &str,
    body: String,
    deadline: Instant,
) -> Result<reqwest::Response, String> {
    let fut = ctx
        .http
        .post(format!("{}{path}", ctx.origin))
        .header(CONTENT_TYPE, "application/json")
        .header(ORIGIN, &ctx.origin)
        .header(COOKIE, cookie)
        .body(body)
        .send();
    let resp = match tokio::time::timeout_at(deadline, fut).await {
        Err(_) => return Err("timeout:accepted".into()),
        Ok(Err(_)) => return Err("connect".into()),
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    if status == 200 || status == 204 {
        return Ok(resp);
    }
    Err(refusal(resp, deadline).await)
}

/// The error kind of a refused request: `http_<status>[:code]`, the code from
/// the `error` frame in the body.
pub async fn refusal(resp: reqwest::Response, deadline: Instant) -> String {
    let status = resp.status().as_u16();
    let code = match tokio::time::timeout_at(deadline, resp.bytes()).await {
        Ok(Ok(b)) => match serde_json::from_slice::<ServerFrame>(&b) {
            Ok(ServerFrame::Error { code, .. }) => format!(":{code}"),
            _ => String::new(),
        },
        _ => String::new(),
    };
    format!("http_{status}{code}")
}

/// Sends `ctx.text` as the message `id` with `POST /api/chat` and reads the
/// streamed reply to `done`, validated (then drains the body so the
/// connection is reused).
pub async fn exchange(
    ctx: &Ctx,
    cookie: &str,
    id: &str,
    conversation: &mut Option<String>,
) -> Result<MsgSample, String> {
    let body = send_json(id, conversation.as_deref(), &ctx.text);
    let t0 = Instant::now();
    let deadline = ctx.step_deadline(t0);
    let mut resp = post_json(ctx, cookie, "/api/chat", body, deadline).await?;
    let mut track = MsgTrack::new(t0.into_std(), ctx.expected.clone());
    let mut buf: Vec<u8> = Vec::new();
    let mut sample = None;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) if sample.is_some() => break, // reply complete, the body just did not end in time
            Err(_) => {
                return Err(track.timeout_error());
            }
            Ok(Err(_)) => return Err("closed:mid_stream".into()),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => c,
        };
        if sample.is_some() {
            continue; // drain to the end so the connection is reused
        }
        let now = std::time::Instant::now();
        track.on_bytes(chunk.len());
        buf.extend_from_slice(&chunk);
        while let Some((len, event, data)) = next_event(&mut buf) {
            if event.is_empty() && data.is_empty() {
                continue; // keep-alive comment
            }
            let frame: ServerFrame =
                serde_json::from_str(&data).map_err(|_| "protocol:bad_json".to_string())?;
            if let Some(done) =
                track.on_frame(frame, now, len as u64, len as u64, id, conversation)?
            {
                sample = Some(done);
                break;
            }
        }
    }
    sample.ok_or_else(|| "protocol:stream_ended_before_done".into())
}

/// Reads the events of one streamed response, one at a time.
pub struct EventReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl EventReader {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event's frame, `None` at the end of the body.
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<ServerFrame>, String> {
        loop {
            while let Some((_, event, data)) = next_event(&mut self.buf) {
                if event.is_empty() && data.is_empty() {
                    continue; // keep-alive comment
                }
                return serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|_| "protocol:bad_json".to_string());
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => return Err("timeout:event".into()),
                Ok(Err(_)) => return Err("closed:mid_stream".into()),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(c))) => self.buf.extend_from_slice(&c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_event;

    #[test]
    fn parses_events_and_keeps_the_rest() {
        let mut buf = b"event: delta\nid: m:0\ndata: {\"a\":1}\n\n: keep\n\nevent: do".to_vec();
        let (len, ev, data) = next_event(&mut buf).unwrap();
        assert_eq!(
            (len, ev.as_str(), data.as_str()),
            (36, "delta", "{\"a\":1}")
        );
        let (_, ev, data) = next_event(&mut buf).unwrap();
        assert!(ev.is_empty() && data.is_empty());
        assert!(next_event(&mut buf).is_none());
        assert_eq!(buf, b"event: do");
    }
}
