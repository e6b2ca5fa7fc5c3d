//! Model choice over a real socket: the provider's list in `hello`, a new
//! conversation on a model picked from it, `set_model` for the next
//! replies, each reply recording its model, and refusals.

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestServer, WsClient};
use tether::protocol::{ClientFrame, ConversationId, ErrorCode, ServerFrame};
use tether_fake_upstream::{FakeConfig, FakeUpstream};

/// A server whose provider lists `fake` (the default) and `fake-large`,
/// with the list known (`/readyz` asks the provider).
async fn two_models() -> TestServer {
    let fake = FakeUpstream::start(FakeConfig {
        first_token_delay: Duration::from_millis(5),
        token_delay: Duration::from_millis(5),
        more_models: vec!["fake-large".into()],
        ..FakeConfig::default()
    })
    .await
    .expect("fake upstream starts");
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let server = TestServer::start_with(Arc::new(fake), dir, |_| {}).await;
    let ready = reqwest::get(format!("http://{}/readyz", server.addr))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    server
}

async fn start_on(client: &mut WsClient, model: Option<&str>, text: &str) -> ConversationId {
    let id = client
        .start_with(&ClientFrame::Send {
            client_msg_id: common::uuid().as_str().into(),
            conversation_id: None,
            text: text.into(),
            persona: None,
            greeting: None,
            model: model.map(str::to_owned),
        })
        .await;
    client.until_done(&id).await;
    id
}

async fn error_of(client: &mut WsClient) -> (ErrorCode, String) {
    match client
        .until(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, message, .. } => (code, message),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn hello_offers_the_providers_models_and_a_conversation_keeps_its_pick() {
    let server = two_models().await;
    let cookie = server.cookie().await;
    let mut client = server
        .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
        .await
        .expect("upgrade");
    match client.next().await {
        ServerFrame::Hello { models, model, .. } => {
            assert_eq!(models, ["fake", "fake-large"]);
            assert_eq!(model.as_deref(), Some("fake"));
        }
        other => panic!("hello first, got {other:?}"),
    }
    let id = start_on(&mut client, Some("fake-large"), "[[model]] which?").await;
    let messages = client.snapshot(&id).await;
    assert_eq!(
        messages[1].content, "model fake-large",
        "the model asked is the one picked"
    );
    assert_eq!(messages[1].model.as_deref(), Some("fake-large"));
    assert_eq!(messages[0].model, None, "a person's message has no model");

    // A regenerated reply asks the conversation's model again.
    client
        .send(&ClientFrame::Regenerate {
            conversation_id: id.clone(),
            client_msg_id: common::uuid().as_str().into(),
        })
        .await;
    client.until_done(&id).await;
    assert_eq!(client.snapshot(&id).await[1].content, "model fake-large");

    // The next replies go to another model; the earlier ones keep theirs.
    client
        .send(&ClientFrame::SetModel {
            conversation_id: id.clone(),
            model: "fake".into(),
        })
        .await;
    match client
        .until(|f| matches!(f, ServerFrame::Conversations { .. }))
        .await
    {
        ServerFrame::Conversations { items, .. } => {
            assert_eq!(items[0].model.as_deref(), Some("fake"));
        }
        _ => unreachable!(),
    }
    client.send_text_to(&id, "[[model]] and now?").await;
    client.until_done(&id).await;
    let messages = client.snapshot(&id).await;
    assert_eq!(messages[3].content, "model fake");
    assert_eq!(messages[3].model.as_deref(), Some("fake"));
    assert_eq!(messages[1].model.as_deref(), Some("fake-large"));
}

#[tokio::test]
async fn a_new_conversation_without_a_pick_is_on_the_default_model() {
    let server = two_models().await;
    let mut client = server.user().await;
    let id = start_on(&mut client, None, "[[model]] default?").await;
    let messages = client.snapshot(&id).await;
    assert_eq!(messages[1].content, "model fake");
    assert_eq!(messages[1].model.as_deref(), Some("fake"));
}

#[tokio::test]
async fn models_the_provider_does_not_offer_are_refused() {
    let server = two_models().await;
    let mut client = server.user().await;
    client
        .send(&ClientFrame::Send {
            client_msg_id: common::uuid().as_str().into(),
            conversation_id: None,
            text: "hi".into(),
            persona: None,
            greeting: None,
            model: Some("gpt-9".into()),
        })
        .await;
    let (code, message) = error_of(&mut client).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("unknown model \"gpt-9\""), "{message}");
    assert!(message.contains("fake, fake-large"), "{message}");
    assert_eq!(server.stats().requests(), 0);

    let id = start_on(&mut client, None, "hi").await;
    client
        .send(&ClientFrame::SetModel {
            conversation_id: id.clone(),
            model: "gpt-9".into(),
        })
        .await;
    assert_eq!(error_of(&mut client).await.0, ErrorCode::BadRequest);
    let mut stranger = server.user().await;
    stranger
        .send(&ClientFrame::SetModel {
            conversation_id: id,
            model: "fake-large".into(),
        })
        .await;
    assert_eq!(error_of(&mut stranger).await.0, ErrorCode::NotFound);
}
