//! The upgrade: origin allowlist, identity cookie, limits on sockets.

mod common;

use common::TestServer;
use tether::{protocol::ServerFrame, server::config::OriginPolicy};

#[tokio::test]
async fn page_sets_an_httponly_samesite_identity_cookie() {
    let server = TestServer::start(|_| {}).await;
    let response = reqwest::get(format!("http://{}/", server.addr))
        .await
        .expect("GET /");
    assert!(response.status().is_success());
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("cookie set")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("tether_id="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http gets no Secure flag");
    let body = response.text().await.expect("body");
    assert!(body.contains("Tether"), "the page renders");
}

#[tokio::test]
async fn https_proxy_gets_a_secure_cookie() {
    let server = TestServer::start(|_| {}).await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/", server.addr))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("GET /");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn foreign_origin_gets_403_and_no_upgrade() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let refused = server
        .try_connect(Some("http://evil.example"), Some(&cookie), "/ws")
        .await
        .err();
    assert_eq!(refused, Some(403));
    let refused = server.try_connect(None, Some(&cookie), "/ws").await.err();
    assert_eq!(refused, Some(403), "a missing Origin is refused too");
}

#[tokio::test]
async fn configured_allowlist_is_enforced() {
    let server = TestServer::start(|c| {
        c.origins = OriginPolicy::List(vec!["http://localhost:5173".into()]);
    })
    .await;
    let cookie = server.cookie().await;
    assert!(server
        .try_connect(Some("http://localhost:5173"), Some(&cookie), "/ws")
        .await
        .is_ok());
    assert_eq!(
        server
            .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
            .await
            .err(),
        Some(403),
        "only the listed origins"
    );
}

#[tokio::test]
async fn missing_or_forged_cookie_gets_401() {
    let server = TestServer::start(|_| {}).await;
    let origin = server.origin();
    assert_eq!(
        server.try_connect(Some(&origin), None, "/ws").await.err(),
        Some(401)
    );
    let cookie = server.cookie().await;
    let (name_and_user, _sig) = cookie.split_once('.').expect("signed cookie");
    let forged = format!("{name_and_user}.{}", "00".repeat(32));
    assert_eq!(
        server
            .try_connect(Some(&origin), Some(&forged), "/ws")
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn uid_query_parameter_is_never_identity() {
    let server = TestServer::start(|_| {}).await;
    let origin = server.origin();
    assert_eq!(
        server
            .try_connect(Some(&origin), None, "/ws?uid=alice")
            .await
            .err(),
        Some(401)
    );
    let mut a = server.user().await;
    let mut b = server.user().await;
    // Two cookies are two users, whatever `uid` says.
    let conversation = a.start_conversation("mine").await;
    let mut b2 = server
        .try_connect(Some(&origin), Some(&b.cookie), "/ws?uid=same")
        .await
        .expect("upgrade");
    let _hello = b2.next().await;
    b2.send(&tether::protocol::ClientFrame::Subscribe {
        conversation_id: conversation.clone(),
    })
    .await;
    assert!(matches!(
        b2.next().await,
        ServerFrame::Error {
            code: tether::protocol::ErrorCode::NotFound,
            ..
        }
    ));
    let _ = b.ws.close(None).await;
    a.until_done(&conversation).await;
}

#[tokio::test]
async fn allowed_origin_gets_hello_first_with_limits() {
    let server = TestServer::start(|c| c.limits.max_frame_bytes = 4096).await;
    let cookie = server.cookie().await;
    let mut client = server
        .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
        .await
        .expect("upgrade");
    match client.next().await {
        ServerFrame::Hello {
            protocol,
            limits,
            user_id,
            server,
            personas,
            model_setup,
            models,
            model,
        } => {
            assert_eq!(protocol, 1);
            assert_eq!(model.as_deref(), Some("fake"), "the default model");
            assert!(models.is_empty(), "one model: no choice to offer");
            assert_eq!(model_setup, None, "no set-up file: the model is ready");
            assert_eq!(limits.max_frame_bytes, 4096);
            assert!(
                cookie.contains(user_id.as_str()),
                "hello names the cookie's user"
            );
            assert!(server.starts_with("tether/"));
            assert_eq!(personas[0].id, "companion");
        }
        other => panic!("expected hello, got {other:?}"),
    }
}

#[tokio::test]
async fn too_many_sockets_per_user_are_refused_with_a_reason() {
    let server = TestServer::start(|c| c.limits.max_sockets_per_user = 2).await;
    let cookie = server.cookie().await;
    let _a = server.connect(&cookie).await;
    let _b = server.connect(&cookie).await;
    let mut c = server
        .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
        .await
        .expect("upgrade, then refusal frame");
    match c.next().await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, tether::protocol::ErrorCode::RateLimited);
            assert!(message.contains("too many open connections"), "{message}");
        }
        other => panic!("expected error, got {other:?}"),
    }
    assert_eq!(c.closed().await, Some(1008));
    // Another user is unaffected.
    let _other = server.user().await;
}

#[tokio::test]
async fn server_wide_connection_limit_answers_503() {
    let server = TestServer::start(|c| c.limits.max_connections = 1).await;
    let _a = server.user().await;
    let cookie = server.cookie().await;
    assert_eq!(
        server
            .try_connect(Some(&server.origin()), Some(&cookie), "/ws")
            .await
            .err(),
        Some(503)
    );
}

#[tokio::test]
async fn healthz_answers_json() {
    let server = TestServer::start(|_| {}).await;
    let body: serde_json::Value = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok");
}
