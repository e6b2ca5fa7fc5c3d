//! Shared run configuration and the identity step (`GET /api/session`).

use std::time::Duration;
use tokio::time::Instant;

pub struct Ctx {
    /// `http://host:port` (no trailing slash); also the `Origin` sent.
    pub origin: String,
    /// `ws://host:port/ws`
    pub ws_url: String,
    pub http: reqwest::Client,
    pub messages: usize,
    pub text: String,
    pub expected: Option<String>,
    pub msg_timeout: Duration,
    /// End of the whole run (`--duration-cap-s`).
    pub deadline: Instant,
    /// Distinguishes client_msg_ids of different runs.
    pub run_tag: String,
}

impl Ctx {
    /// The context for a server at `url` (`http://host:port`, no path).
    pub fn build(
        url: &str,
        messages: usize,
        text: &str,
        msg_timeout: Duration,
        deadline: Instant,
    ) -> anyhow::Result<Ctx> {
        let origin = url.trim_end_matches('/').to_owned();
        let Some(authority) = origin.strip_prefix("http://") else {
            anyhow::bail!("--url must be http://host:port");
        };
        if authority.contains('/') {
            anyhow::bail!("--url must have no path: http://host:port");
        }
        Ok(Ctx {
            ws_url: format!("ws://{authority}/ws"),
            origin,
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(usize::MAX)
                .build()?,
            messages,
            text: text.to_owned(),
            expected: crate::stats::expected_reply(text),
            msg_timeout,
            deadline,
            run_tag: format!(
                "b{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_micros()
            ),
        })
    }

    /// Deadline for one step of a message started at `t0`.
    pub fn step_deadline(&self, t0: Instant) -> Instant {
        (t0 + self.msg_timeout).min(self.deadline)
    }
}

/// `GET /api/session`, returns the `tether_id=...` cookie pair.
pub async fn get_cookie(ctx: &Ctx) -> Result<String, String> {
    let fut = ctx.http.get(format!("{}/api/session", ctx.origin)).send();
    let resp = match tokio::time::timeout_at(ctx.step_deadline(Instant::now()), fut).await {
        Err(_) => return Err("timeout:session".into()),
        Ok(Err(_)) => return Err("connect:session".into()),
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        return Err(format!("session_status_{}", resp.status().as_u16()));
    }
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.trim_start().starts_with("tether_id="))
        .map(|pair| pair.trim().to_owned());
    // Read the (tiny) body so the connection goes back to the pool.
    let _ = resp.bytes().await;
    cookie.ok_or_else(|| "session_no_cookie".into())
}
