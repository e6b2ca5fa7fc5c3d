//! Take your data, over real HTTP: a conversation with branches exported as
//! JSON and imported back (the same file again, but for its ids), as
//! Markdown (the path shown), everything of a user in one file, and every
//! refusal of a bad import.

mod common;

use common::{
    browser::{refusal, Browser},
    done_of, uuid, TestServer, WsClient,
};
use reqwest::Method;
use serde_json::{json, Value};
use tether::protocol::{Alternatives, ClientFrame, ConversationId, ServerFrame};

/// A conversation of the browser's user with a swipe and an edited branch:
/// "first" → (2 replies) and "first, edited" → reply; "second" on the old branch.
async fn branched_conversation(
    server: &TestServer,
    browser: &Browser,
) -> (WsClient, ConversationId) {
    let mut ws = server.connect(&browser.cookie).await;
    let id = ws.start_conversation("first").await;
    ws.until_done(&id).await;
    ws.send_text_to(&id, "second").await;
    ws.until_done(&id).await;
    ws.send(&ClientFrame::Regenerate {
        conversation_id: id.clone(),
        client_msg_id: uuid().as_str().into(),
    })
    .await;
    ws.until_done(&id).await;
    let first = ws.snapshot(&id).await[0].id.clone();
    ws.send(&ClientFrame::Edit {
        conversation_id: id.clone(),
        client_msg_id: uuid().as_str().into(),
        message_id: first,
        text: "first, edited".into(),
    })
    .await;
    let frames = ws.until_done(&id).await;
    assert!(matches!(done_of(&frames), ServerFrame::Done { .. }));
    (ws, id)
}

/// The export with every message id replaced by its position (ids are fresh
/// on import; everything else must be the same).
fn without_ids(mut export: Value) -> Value {
    let ids: Vec<String> = export["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    let position = |id: &str| ids.iter().position(|i| i == id).expect("a known id");
    for m in export["messages"].as_array_mut().expect("messages") {
        m["id"] = json!(position(m["id"].as_str().expect("id")));
        if let Some(parent) = m.get("parent").and_then(Value::as_str) {
            m["parent"] = json!(position(parent));
        }
    }
    export
}

#[tokio::test]
async fn a_conversation_exported_and_imported_is_the_same_but_for_its_ids() {
    let server = TestServer::start(|_| {}).await;
    let browser = Browser::new(&server).await;
    let (mut ws, id) = branched_conversation(&server, &browser).await;

    let response = browser
        .get(&format!("/api/conversations/{id}/export.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("attachment; filename=\"first.json\""));
    let bytes = response.bytes().await.expect("body");
    let export: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(export["format"], "tether.conversation");
    assert_eq!(export["version"], 1);
    assert_eq!(export["messages"].as_array().expect("messages").len(), 7);
    let chosen = export["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["chosen"] == true)
        .count();
    // Not chosen: the first reply to "second" (swiped) and "first" (edited).
    assert_eq!(chosen, 5, "one chosen per turn");

    let response = browser
        .upload(Method::POST, "/api/conversations/import", bytes.to_vec())
        .await;
    assert_eq!(response.status(), 201);
    let made: Value = response.json().await.expect("summary");
    let copy = made["id"].as_str().expect("id").to_owned();
    assert_ne!(copy, id.as_str());
    assert_eq!(made["title"], "first");

    let again: Value = browser
        .get(&format!("/api/conversations/{copy}/export.json"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(without_ids(again), without_ids(export));

    // It opens at the same path, with the same alternatives.
    let original = ws.snapshot(&id).await;
    let imported = ws.snapshot(&ConversationId(copy.clone())).await;
    let shape = |ms: &[tether::protocol::Message]| -> Vec<(String, Option<Alternatives>)> {
        ms.iter()
            .map(|m| (m.content.clone(), m.alternatives))
            .collect()
    };
    assert_eq!(shape(&imported), shape(&original));
    assert_eq!(
        imported[0].alternatives,
        Some(Alternatives { index: 1, count: 2 })
    );
    // And goes on like any other.
    ws.send_text_to(&ConversationId(copy.clone()), "after import")
        .await;
    ws.until_done(&ConversationId(copy)).await;
}

#[tokio::test]
async fn markdown_is_the_path_shown() {
    let server = TestServer::start(|_| {}).await;
    let browser = Browser::new(&server).await;
    let (_ws, id) = branched_conversation(&server, &browser).await;
    let response = browser
        .get(&format!("/api/conversations/{id}/export.md"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    let text = response.text().await.expect("text");
    assert!(text.starts_with("# first\n"), "{text}");
    assert!(text.contains("first, edited"), "{text}");
    assert!(text.contains("version 2 of 2"), "{text}");
    assert!(
        !text.contains("\n\nsecond\n"),
        "the other branch is left out: {text}"
    );
}

#[tokio::test]
async fn everything_of_a_user_comes_as_one_file_and_nothing_of_anybody_else() {
    let server = TestServer::start(|_| {}).await;
    let browser = Browser::new(&server).await;
    let (_ws, id) = branched_conversation(&server, &browser).await;
    let made = browser
        .json(
            Method::POST,
            "/api/companions",
            &json!({"name": "Aria", "greeting": "Hi {{user}}", "emoji": "🌙"}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let stranger = Browser::new(&server).await;
    let (_other_ws, _) = branched_conversation(&server, &stranger).await;

    let response = browser.get("/api/export").await;
    assert_eq!(response.status(), 200);
    let all: Value = response.json().await.expect("json");
    assert_eq!(all["format"], "tether.export");
    assert_eq!(all["conversations"].as_array().expect("list").len(), 1);
    assert_eq!(all["conversations"][0]["title"], "first");
    let companions = all["companions"].as_array().expect("companions");
    assert_eq!(companions.len(), 1, "presets are not the user's data");
    assert_eq!(companions[0]["card"]["data"]["name"], "Aria");
    assert_eq!(companions[0]["emoji"], "🌙");
    assert!(all["settings"].is_object());
    // Somebody else's conversation is not found, not exported.
    let response = stranger
        .get(&format!("/api/conversations/{id}/export.json"))
        .await;
    assert_eq!(refusal(response, 404).await.0, "not_found");
}

#[tokio::test]
async fn bad_imports_are_refused_with_the_reason_and_store_nothing() {
    let server = TestServer::start(|c| c.limits.max_import_bytes = 4096).await;
    let browser = Browser::new(&server).await;
    let import = |body: Vec<u8>| browser.upload(Method::POST, "/api/conversations/import", body);
    let valid = |messages: Value| {
        json!({
            "format": "tether.conversation", "version": 1, "title": "t", "companion": "p",
            "created_at": "2026-12-01T10:00:00.000Z", "updated_at": "2026-12-01T10:00:00.000Z",
            "messages": messages,
        })
    };
    let user = |id: &str, parent: Option<&str>, chosen: bool| {
        json!({"id": id, "parent": parent, "role": "user", "content": "x",
               "created_at": "2026-12-01T10:00:00.000Z", "chosen": chosen})
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not json".to_vec(), 400, "not a conversation export"),
        (
            json!({"format": "tether.export"}).to_string().into_bytes(),
            400,
            "not a conversation export",
        ),
        (
            {
                let mut v = valid(json!([]));
                v["format"] = json!("sillytavern");
                v.to_string().into_bytes()
            },
            400,
            "format",
        ),
        (
            valid(json!([user("a", Some("b"), true)]))
                .to_string()
                .into_bytes(),
            400,
            "not an earlier message",
        ),
        (
            valid(json!([user("a", None, true), user("b", None, true)]))
                .to_string()
                .into_bytes(),
            400,
            "two alternatives",
        ),
        (
            valid(json!([user("a", None, false)]))
                .to_string()
                .into_bytes(),
            400,
            "none of the first",
        ),
        (vec![b' '; 5000], 413, "limit is 4096 bytes"),
    ];
    for (body, status, reason) in cases {
        let (_, message) = refusal(import(body).await, status).await;
        assert!(
            message.contains(reason),
            "{message:?} should say {reason:?}"
        );
    }
    // Without an allowed Origin nothing is imported either.
    let response = reqwest::Client::new()
        .post(format!("{}/api/conversations/import", browser.base))
        .header("cookie", &browser.cookie)
        .body(valid(json!([])).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    let all: Value = browser.get("/api/export").await.json().await.expect("json");
    assert_eq!(all["conversations"], json!([]), "nothing was stored");
}
