//! HTTP streaming transport: one `POST /api/chat` per message, the reply read
//! as `text/event-stream`.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use tokio::time::Instant;

use crate::ctx::{get_cookie, Ctx};
use crate::frames::{send_json, ServerFrame};
use crate::stats::{MsgTrack, UserResult};

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
    let url = format!("{}/api/chat", ctx.origin);
    let mut conversation: Option<String> = None;
    for m in 0..ctx.messages {
        let id = format!("{}-u{user}-m{m}", ctx.run_tag);
        let body = send_json(&id, conversation.as_deref(), &ctx.text);
        let t0 = Instant::now();
        let deadline = ctx.step_deadline(t0);
        let fut = ctx
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ORIGIN, &ctx.origin)
            .header(COOKIE, &cookie)
            .body(body)
            .send();
        let mut resp = match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => return Err("timeout:accepted".into()),
            Ok(Err(_)) => return Err("connect".into()),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let code = match tokio::time::timeout_at(deadline, resp.bytes()).await {
                Ok(Ok(b)) => match serde_json::from_slice::<ServerFrame>(&b) {
                    Ok(ServerFrame::Error { code, .. }) => format!(":{code}"),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            return Err(format!("http_{status}{code}"));
        }
        let mut track = MsgTrack::new(t0.into_std(), ctx.expected.clone());
        let mut buf: Vec<u8> = Vec::new();
        let mut done = false;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Err(_) if done => break, // reply complete, the body just did not end in time
                Err(_) => {
                    return Err(track.timeout_error());
                }
                Ok(Err(_)) => return Err("closed:mid_stream".into()),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if done {
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
                if let Some(sample) =
                    track.on_frame(frame, now, len as u64, len as u64, &id, &mut conversation)?
                {
                    out.samples.push(sample);
                    done = true;
                    break;
                }
            }
        }
        if !done {
            return Err("protocol:stream_ended_before_done".into());
        }
    }
    Ok(())
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
