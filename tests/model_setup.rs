//! A model being installed in the background (`MODEL_SETUP_FILE`, written by
//! `scripts/local-model.sh`): the server starts and takes messages at once,
//! holds their replies until the file says ready, then answers them; a
//! failed install ends them with its reason. `/readyz`, `/api/model-setup`
//! and `hello` say what the installer is doing. Real server, real socket,
//! the fake model over HTTP; the "installer" is this test writing the file.

mod common;

use std::{path::Path, sync::atomic::Ordering};

use common::{delta_text, done_of, TestServer};
use tether::protocol::{ClientFrame, ErrorCode, FinishReason, ModelSetup, ServerFrame};

fn write_status(path: &Path, json: &str) {
    // As the installer does: whole file, renamed into place.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).expect("write status");
    std::fs::rename(&tmp, path).expect("rename status");
}

const INSTALLING: &str =
    r#"{"state":"installing","step":2,"steps":3,"label":"Building llama.cpp","started_at":1}"#;

/// A server whose status file (in its data dir) says "installing".
async fn installing_server() -> (TestServer, std::path::PathBuf) {
    let server = TestServer::start(|c| {
        let status = Path::new(&c.data_dir).join("model-setup.json");
        write_status(&status, INSTALLING);
        c.upstream.setup_file = status.display().to_string();
    })
    .await;
    let status = server.dir.path().join("model-setup.json");
    (server, status)
}

async fn get_json(server: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{}{path}", server.addr))
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_message_sent_while_the_model_installs_is_answered_once_it_is_ready() {
    let (server, status) = installing_server().await;
    let mut client = server.user().await;

    let (code, readyz) = get_json(&server, "/readyz").await;
    assert_eq!(code, 503, "{readyz}");
    assert_eq!(readyz["model_setup"]["state"], "installing");
    assert_eq!(readyz["model_setup"]["step"], 2);
    assert_eq!(readyz["provider"]["ok"], false);
    let (_, setup) = get_json(&server, "/api/model-setup").await;
    let setup: ModelSetup = serde_json::from_value(setup).expect("model setup");
    assert!(
        matches!(&setup, ModelSetup::Installing { step: 2, steps: 3, label, elapsed_secs }
            if label == "Building llama.cpp" && *elapsed_secs > 0),
        "{setup:?}"
    );

    let conversation = client.start_conversation("hello while installing").await;
    // A round trip after `accepted`: the reply has not asked the model.
    client.send(&ClientFrame::Ping { nonce: 1.into() }).await;
    let next = client
        .until(|f| matches!(f, ServerFrame::Pong { .. } | ServerFrame::Delta { .. }))
        .await;
    assert!(matches!(next, ServerFrame::Pong { .. }), "{next:?}");
    assert_eq!(server.stats().requests.load(Ordering::SeqCst), 0);

    write_status(&status, r#"{"state":"ready"}"#);
    let frames = client.until_done(&conversation).await;
    assert!(!delta_text(&frames).is_empty(), "{frames:?}");
    assert!(
        matches!(
            done_of(&frames),
            ServerFrame::Done {
                finish_reason: FinishReason::Stop,
                ..
            }
        ),
        "{frames:?}"
    );
    assert_eq!(server.stats().requests.load(Ordering::SeqCst), 1);
    let (code, readyz) = get_json(&server, "/readyz").await;
    assert_eq!(code, 200, "{readyz}");
    assert_eq!(readyz["model_setup"]["state"], "ready");
}

/// A new visitor's first frame on `/ws`.
async fn first_frame(server: &TestServer) -> ServerFrame {
    let cookie = server.cookie().await;
    let mut client = server
        .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
        .await
        .expect("upgrade");
    client.next().await
}

#[tokio::test]
async fn hello_carries_the_set_up_only_while_it_is_not_ready() {
    let (server, status) = installing_server().await;
    let hello = first_frame(&server).await;
    assert!(
        matches!(
            &hello,
            ServerFrame::Hello {
                model_setup: Some(ModelSetup::Installing { step: 2, .. }),
                ..
            }
        ),
        "{hello:?}"
    );
    write_status(&status, r#"{"state":"ready"}"#);
    common::poll_until("the server reads the status file", || async {
        Ok(get_json(&server, "/api/model-setup").await.1["state"] == "ready")
    })
    .await;
    let hello = first_frame(&server).await;
    assert!(
        matches!(
            &hello,
            ServerFrame::Hello {
                model_setup: None,
                ..
            }
        ),
        "{hello:?}"
    );
}

#[tokio::test]
async fn a_failed_set_up_ends_held_replies_with_its_reason_and_what_to_do() {
    let (server, status) = installing_server().await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("hello").await;
    write_status(
        &status,
        r#"{"state":"failed","reason":"pip could not build llama-cpp-python"}"#,
    );
    let frames = client.until_done(&conversation).await;
    let error = frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::Error { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        })
        .expect("an error frame");
    assert_eq!(error.0, ErrorCode::Unavailable);
    assert!(
        error.1.contains("pip could not build llama-cpp-python"),
        "{}",
        error.1
    );
    assert!(error.1.contains("OPENAI_BASE_URL"), "{}", error.1);
    assert!(
        matches!(
            done_of(&frames),
            ServerFrame::Done {
                finish_reason: FinishReason::Error,
                ..
            }
        ),
        "{frames:?}"
    );
    assert_eq!(server.stats().requests.load(Ordering::SeqCst), 0);
    let (code, readyz) = get_json(&server, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(readyz["model_setup"]["state"], "failed");
}

#[tokio::test]
async fn stop_ends_a_reply_held_for_the_model() {
    let (server, _status) = installing_server().await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("hello").await;
    client
        .send(&ClientFrame::Stop {
            conversation_id: conversation.clone(),
        })
        .await;
    let frames = client.until_done(&conversation).await;
    assert!(
        matches!(
            done_of(&frames),
            ServerFrame::Done {
                finish_reason: FinishReason::Stopped,
                ..
            }
        ),
        "{frames:?}"
    );
    assert_eq!(server.stats().requests.load(Ordering::SeqCst), 0);
}
