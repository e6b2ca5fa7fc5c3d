//! Changes outside any one conversation reach every socket of the user:
//! companions made or changed (over HTTP), a conversation made, renamed or
//! put on another model, an import. Never anybody else's sockets.

mod common;

use common::{browser::Browser, TestServer, WsClient};
use reqwest::Method;
use serde_json::json;
use tether::protocol::{Changed, ClientFrame, ServerFrame};

async fn changed(client: &mut WsClient) -> Changed {
    match client
        .until(|f| matches!(f, ServerFrame::Changed { .. }))
        .await
    {
        ServerFrame::Changed { what } => what,
        _ => unreachable!(),
    }
}

/// The next frame of `client` is the answer to a ping: nothing else came.
async fn nothing_else(client: &mut WsClient) {
    client
        .send(&ClientFrame::Ping {
            nonce: "quiet".into(),
        })
        .await;
    assert_eq!(
        client.next().await,
        ServerFrame::Pong {
            nonce: "quiet".into()
        }
    );
}

#[tokio::test]
async fn every_tab_of_the_user_hears_of_companions_and_conversations_and_nobody_else() {
    let server = TestServer::start(|_| {}).await;
    let browser = Browser::new(&server).await;
    let mut tab = server.connect(&browser.cookie).await;
    let mut other_tab = server.connect(&browser.cookie).await;
    let mut stranger = server.user().await;

    let made = browser
        .json(Method::POST, "/api/companions", &json!({"name": "Aria"}))
        .await;
    assert_eq!(made.status(), 201);
    assert_eq!(changed(&mut tab).await, Changed::Companions);
    assert_eq!(changed(&mut other_tab).await, Changed::Companions);

    let id = tab.start_conversation("hello").await;
    tab.until_done(&id).await;
    assert_eq!(changed(&mut other_tab).await, Changed::Conversations);

    tab.send(&ClientFrame::RenameConversation {
        conversation_id: id.clone(),
        title: "Renamed".into(),
    })
    .await;
    assert_eq!(changed(&mut other_tab).await, Changed::Conversations);

    let export = browser
        .get(&format!("/api/conversations/{id}/export.json"))
        .await
        .bytes()
        .await
        .expect("export");
    let imported = browser
        .upload(Method::POST, "/api/conversations/import", export.to_vec())
        .await;
    assert_eq!(imported.status(), 201);
    assert_eq!(changed(&mut other_tab).await, Changed::Conversations);

    nothing_else(&mut stranger).await;
}
