//! Start-up checks of the model provider, `/readyz`, and configuration
//! precedence (file < environment < flag) on the real binary.

mod common;

use std::{process::Command, sync::Arc};

use common::TestServer;
use tether::server::{
    config::{Config, Secret},
    llm::{LlmClient, ProviderProblem},
};
use tether_fake_upstream::{FakeConfig, FakeUpstream};

fn client_for(base_url: &str, model: &str, key: &str) -> LlmClient {
    let mut c = Config::defaults().upstream;
    c.base_url = base_url.into();
    c.model = model.into();
    c.api_key = Secret::new(key);
    LlmClient::new(c)
}

#[tokio::test]
async fn provider_check_names_what_is_wrong() {
    let fake = FakeUpstream::start(FakeConfig {
        required_key: Some("good-key".into()),
        ..Default::default()
    })
    .await
    .expect("fake");
    let ok = client_for(&fake.base_url(), "fake", "good-key")
        .check()
        .await;
    assert_eq!(ok, Ok(vec!["fake".to_owned()]));

    let err = client_for(&fake.base_url(), "fake", "bad-key")
        .check()
        .await
        .expect_err("401");
    assert!(
        matches!(err, ProviderProblem::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("bad-key"));

    let err = client_for(&fake.base_url(), "gpt-9", "good-key")
        .check()
        .await
        .expect_err("model");
    match &err {
        ProviderProblem::UnknownModel { available, .. } => assert_eq!(available, "fake"),
        other => panic!("expected unknown model, got {other}"),
    }
    assert!(err.to_string().contains("gpt-9"));

    let err = client_for("http://127.0.0.1:9/v1", "fake", "")
        .check()
        .await
        .expect_err("refused");
    assert!(matches!(err, ProviderProblem::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn readyz_reports_database_and_provider() {
    let server = TestServer::start(|_| {}).await;
    let response = reqwest::get(format!("http://{}/readyz", server.addr))
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["provider"]["model"], "fake");
    assert_eq!(body["provider"]["models"], serde_json::json!(["fake"]));

    let down = TestServer::start_with(
        server.fake.clone(),
        Arc::new(tempfile::tempdir().expect("tmp")),
        |c| c.upstream.base_url = "http://127.0.0.1:9/v1".into(),
    )
    .await;
    let response = reqwest::get(format!("http://{}/readyz", down.addr))
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["provider"]["ok"], false);
    assert!(body["provider"]["error"]
        .as_str()
        .expect("error")
        .contains("cannot reach"));
}

/// Runs `tether --print-config` with a clean environment plus `env`.
fn print_config(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .arg("--print-config")
        .args(args)
        .output()
        .expect("run tether");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn configuration_precedence_is_file_then_env_then_flag() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("tether.toml"),
        "[upstream]\nmodel = \"from-file\"\napi_key = \"sk-file-secret\"\n[limits]\nmax_frame_bytes = 1111\nmax_message_chars = 2222\nrate_burst = 3\n",
    )
    .expect("write");
    let (ok, out) = print_config(dir.path(), &[], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("\"from-file\""), "file applies: {out}");
    assert!(out.contains("max_frame_bytes: 1111"), "{out}");
    assert!(
        !out.contains("sk-file-secret"),
        "secrets are redacted: {out}"
    );

    let (ok, out) = print_config(
        dir.path(),
        &[("OPENAI_MODEL", "from-env"), ("MAX_FRAME_BYTES", "3333")],
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("\"from-env\""), "env beats file: {out}");
    assert!(out.contains("max_frame_bytes: 3333"), "{out}");
    assert!(
        out.contains("max_message_chars: 2222"),
        "file still applies elsewhere: {out}"
    );

    let (ok, out) = print_config(
        dir.path(),
        &[("OPENAI_MODEL", "from-env")],
        &["--openai-model", "from-flag"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("\"from-flag\""), "flag beats env: {out}");
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ok, out) = print_config(dir.path(), &[("RATE_PER_SEC", "-1")], &[]);
    assert!(!ok);
    assert!(out.contains("RATE_PER_SEC"), "{out}");

    let (ok, out) = print_config(dir.path(), &[("MAX_FRAME_BYTES", "lots")], &[]);
    assert!(!ok);
    assert!(
        out.contains("MAX_FRAME_BYTES") || out.contains("max-frame-bytes"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "[limits]\nmax_frame_byte = 1\n",
    )
    .expect("write");
    let (ok, out) = print_config(dir.path(), &[], &["--config", "bad.toml"]);
    assert!(!ok);
    assert!(out.contains("max_frame_byte"), "{out}");
}

#[test]
fn help_lists_every_setting_with_its_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_MODEL",
        "ALLOWED_ORIGINS",
        "DATABASE_URL",
        "MAX_FRAME_BYTES",
        "RATE_BURST",
        "MAX_SOCKETS_PER_USER",
        "MAX_CONCURRENT_UPSTREAM",
        "HISTORY_MESSAGES",
        "UPSTREAM_TIMEOUT_SECS",
        "SHUTDOWN_GRACE_SECS",
        "LOG_FORMAT",
        "TETHER_CONFIG",
    ] {
        assert!(help.contains(var), "--help mentions {var}");
    }
}

/// Starts `tether` for real (no `--print-config`) with a clean environment
/// plus `env`; its exit status, or `None` when it was still running after
/// ten seconds (then it is killed).
fn start_briefly(dir: &std::path::Path, env: &[(&str, &str)]) -> (Option<bool>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .current_dir(dir)
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tether");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break Some(status.success()),
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                break None;
            }
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (status, text)
}

#[test]
fn database_url_is_read_by_scheme() {
    let dir = tempfile::tempdir().expect("tmp");
    // (postgres:// is a supported scheme now: tests/on_postgres.rs.)
    let unknown = [(
        "DATABASE_URL",
        "mysql://tether:hunter2@127.0.0.1:3306/tether",
    )];
    let (status, out) = start_briefly(dir.path(), &unknown);
    assert_eq!(
        status,
        Some(false),
        "an unknown scheme stops start-up: {out}"
    );
    assert!(out.contains("DATABASE_URL"), "names the setting: {out}");
    assert!(out.contains("`mysql:`"), "names the scheme: {out}");
    assert!(out.contains("`sqlite:`"), "names the supported ones: {out}");
    assert!(
        !out.contains("hunter2"),
        "the password is not echoed: {out}"
    );
    let (ok, out) = print_config(dir.path(), &unknown, &[]);
    assert!(!ok && out.contains("DATABASE_URL"), "{out}");

    for malformed in [
        "sqlite://",
        "sqlite::memory:",
        "://nowhere",
        "post gres://x",
    ] {
        let (ok, out) = print_config(dir.path(), &[("DATABASE_URL", malformed)], &[]);
        assert!(!ok, "{malformed:?} is refused: {out}");
        assert!(out.contains("DATABASE_URL"), "{out}");
    }
    std::fs::write(
        dir.path().join("mysql.toml"),
        "[server]\ndatabase_url = \"mysql://db/tether\"\n",
    )
    .expect("write");
    let (ok, out) = print_config(dir.path(), &[], &["--config", "mysql.toml"]);
    assert!(
        !ok && out.contains("server.database_url") && out.contains("`mysql:`"),
        "{out}"
    );

    let absolute = dir.path().join("abs.db").display().to_string();
    for (url, path) in [
        ("sqlite://rel/a.db".to_owned(), "rel/a.db".to_owned()),
        ("sqlite:b.db".into(), "b.db".into()),
        ("sqlite:c.db?mode=rwc".into(), "c.db".into()),
        ("plain/d.db".into(), "plain/d.db".into()),
        (format!("sqlite://{absolute}"), absolute.clone()),
    ] {
        let (ok, out) = print_config(dir.path(), &[("DATABASE_URL", &url)], &[]);
        assert!(ok, "{url:?} is accepted: {out}");
        assert!(
            out.contains(&format!("store: SQLite file {path}\n")),
            "{url:?} chooses {path}: {out}"
        );
    }
    let (ok, out) = print_config(dir.path(), &[("TETHER_DATA_DIR", "elsewhere")], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("store: SQLite file elsewhere/tether.db\n"),
        "{out}"
    );

    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains(':')),
        "no stray `postgres:`-like directory: {names:?}"
    );
}
