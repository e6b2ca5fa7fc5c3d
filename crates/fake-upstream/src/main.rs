//! `fake-upstream`: the fake OpenAI-compatible model server as a process, for
//! Playwright runs and UI work without a model.
//!
//! `FAKE_ADDR` (default 127.0.0.1:9100), `FAKE_FIRST_MS` (20), `FAKE_DELAY_MS`
//! (15), `FAKE_MODEL` (fake), `FAKE_REQUIRED_KEY` (unset: no key needed).

use std::time::Duration;

use tether_fake_upstream::{serve_forever, FakeConfig};

fn env_ms(key: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("FAKE_ADDR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| ([127, 0, 0, 1], 9100).into());
    let config = FakeConfig {
        first_token_delay: env_ms("FAKE_FIRST_MS", 20),
        token_delay: env_ms("FAKE_DELAY_MS", 15),
        model: std::env::var("FAKE_MODEL").unwrap_or_else(|_| "fake".into()),
        more_models: std::env::var("FAKE_MODELS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
        required_key: std::env::var("FAKE_REQUIRED_KEY").ok(),
    };
    eprintln!(
        "fake-upstream listening on http://{addr}/v1 (model {:?})",
        config.model
    );
    serve_forever(addr, config).await
}
