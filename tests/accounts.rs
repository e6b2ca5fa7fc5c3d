//! Accounts (issue 16) over a real socket and a real SQLite file: each
//! mode's refusals, sign-up, sign-in and sign-out, the guest's
//! conversations moving to an account, sessions (devices) and their
//! revocation closing live sockets, password changes, throttling, no
//! enumeration difference, session fixation, cross-origin posts, quotas,
//! registration modes, the admin's actions and a trusted proxy's header.

mod common;

use std::time::Duration;

use common::{TestServer, WsClient, STEP};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use tether::{
    protocol::{ClientFrame, ErrorCode, ServerFrame},
    server::config::{AuthMode, Config, Registration},
};

/// A browser of one person: the cookies it holds and the server's origin.
struct Device {
    base: String,
    origin: String,
    cookie: String,
    http: reqwest::Client,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(STEP)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `name=value` of a `Set-Cookie` for `name` in a response, if set
/// (and not being removed).
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
        .map(str::to_owned)
}

/// `application/x-www-form-urlencoded` of one value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Device {
    /// A browser with no cookie yet.
    fn new(server: &TestServer) -> Self {
        Self {
            base: format!("http://{}", server.addr),
            origin: server.origin(),
            cookie: String::new(),
            http: http(),
        }
    }

    /// A guest: the cookie of a page load (`AUTH_MODE=open`).
    async fn guest(server: &TestServer) -> Self {
        Self {
            cookie: server.cookie().await,
            ..Self::new(server)
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("origin", &self.origin);
        if !self.cookie.is_empty() {
            request = request.header("cookie", &self.cookie);
        }
        request
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    async fn json(&self, method: Method, path: &str, body: &Value) -> reqwest::Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Posts `path` as the page's form would.
    async fn form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("form")
    }

    /// Keeps the session cookie the response set.
    fn keep(&mut self, response: &reqwest::Response) {
        if let Some(cookie) = set_cookie(response, "tether_session") {
            self.cookie = cookie;
        }
    }

    async fn sign_up(&mut self, username: &str, password: &str) -> reqwest::Response {
        let body = json!({"username": username, "password": password});
        let response = self.json(Method::POST, "/api/auth/signup", &body).await;
        self.keep(&response);
        response
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> reqwest::Response {
        let body = json!({"username": username, "password": password});
        let response = self.json(Method::POST, "/api/auth/signin", &body).await;
        self.keep(&response);
        response
    }

    async fn me(&self) -> Value {
        self.get("/api/auth/me").await.json().await.expect("me")
    }

    async fn sessions(&self) -> Vec<Value> {
        let body: Value = self
            .get("/api/auth/sessions")
            .await
            .json()
            .await
            .expect("sessions");
        body["items"].as_array().expect("items").clone()
    }

    async fn socket(&self, server: &TestServer) -> WsClient {
        server.connect(&self.cookie).await
    }
}

fn accounts_mode(config: &mut Config) {
    config.auth_mode = AuthMode::Accounts;
}

const PASSWORD: &str = "correct horse battery";

/// An admin (the first account) and a member, signed in.
async fn admin_and_member(server: &TestServer) -> (Device, Device) {
    let mut admin = Device::new(server);
    assert_eq!(admin.sign_up("admin", PASSWORD).await.status(), 200);
    let mut member = Device::new(server);
    assert_eq!(member.sign_up("member", PASSWORD).await.status(), 200);
    (admin, member)
}

async fn user_id_of(admin: &Device, username: &str) -> String {
    let users: Value = admin
        .get("/api/admin/users")
        .await
        .json()
        .await
        .expect("users");
    users["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("{username} is listed"))["user_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn accounts_mode_refuses_every_endpoint_without_a_session_but_the_sign_in_page() {
    let server = TestServer::start(accounts_mode).await;
    let nobody = Device::new(&server);
    for path in [
        "/api/hello",
        "/api/companions",
        "/api/export",
        "/api/conversations/abc/events",
        "/api/conversations/abc/messages",
        "/api/conversations/abc/export.json",
        "/api/auth/sessions",
        "/api/admin/users",
    ] {
        let response = nobody.get(path).await;
        assert_eq!(response.status(), 401, "GET {path}");
        let reason = response.text().await.expect("reason");
        assert!(reason.contains("sign in"), "GET {path}: {reason}");
    }
    let send = json!({"client_msg_id": "c1", "conversation_id": null, "text": "hi"});
    for path in ["/api/chat", "/api/frame", "/api/conversations/import"] {
        let response = nobody.json(Method::POST, path, &send).await;
        assert_eq!(response.status(), 401, "POST {path}");
    }
    // A cookie a guest got elsewhere is no account.
    let forged = Device {
        cookie: "tether_id=00000000000000000000000000000000.00".into(),
        ..Device::new(&server)
    };
    assert_eq!(forged.get("/api/hello").await.status(), 401);
    assert_eq!(
        server
            .try_connect(Some(&server.origin()), None, "/ws")
            .await
            .err(),
        Some(401)
    );
    // Pages send people to sign in; no guest identity is handed out.
    for path in ["/", "/c/some-conversation"] {
        let page = nobody.get(path).await;
        assert_eq!(page.status(), 303, "GET {path}");
        let to = page.headers()[header::LOCATION].to_str().expect("ascii");
        assert!(to.starts_with("/signin?next=/"), "{to}");
        assert_eq!(set_cookie(&page, "tether_id"), None);
    }
    let sign_in = nobody.get("/signin").await;
    assert_eq!(sign_in.status(), 200);
    assert_eq!(set_cookie(&sign_in, "tether_id"), None);
    assert!(sign_in
        .text()
        .await
        .expect("html")
        .contains("name=\"password\""));
    assert_eq!(nobody.get("/healthz").await.status(), 200);
    assert_eq!(nobody.get("/api/auth/me").await.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn sign_up_sign_in_chat_and_sign_out() {
    let server = TestServer::start(accounts_mode).await;
    let mut ann = Device::new(&server);
    let made = ann.sign_up("Ann", PASSWORD).await;
    assert_eq!(made.status(), 200);
    let cookie = made
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|v| v.starts_with("tether_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let me = ann.me().await;
    assert_eq!(me["account"]["username"], "ann", "names are lower-cased");
    assert_eq!(
        me["account"]["admin"], true,
        "the first account is the admin"
    );

    // The page and the socket work with the session, and a reply streams.
    assert_eq!(ann.get("/").await.status(), 200);
    let mut socket = ann.socket(&server).await;
    let id = socket.start_conversation("hello").await;
    let frames = socket.until_done(&id).await;
    assert!(!common::delta_text(&frames).is_empty());

    // A second device signs in and sees the same conversation.
    let mut phone = Device::new(&server);
    assert_eq!(phone.sign_in("ANN", PASSWORD).await.status(), 200);
    let mut phone_socket = phone.socket(&server).await;
    let listed = phone_socket
        .conversations(ClientFrame::ListConversations { query: None })
        .await;
    assert!(listed.iter().any(|c| c.id == id), "{listed:?}");

    let out = ann
        .request(Method::POST, "/api/auth/signout")
        .send()
        .await
        .expect("out");
    assert_eq!(out.status(), 204);
    let cleared = out.headers().get_all(header::SET_COOKIE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.starts_with("tether_session=;") && v.contains("Max-Age=0"))
    });
    assert!(cleared, "signing out clears the cookie");
    assert_eq!(
        socket.closed().await,
        Some(1008),
        "this device's socket closes"
    );
    assert_eq!(
        ann.get("/api/hello").await.status(),
        401,
        "the session is gone"
    );
    assert_eq!(
        phone.get("/api/hello").await.status(),
        200,
        "the other device stays"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let server = TestServer::start(accounts_mode).await;
    let mut ann = Device::new(&server);
    assert_eq!(ann.sign_up("ann", PASSWORD).await.status(), 200);
    let mut stranger = Device::new(&server);
    let wrong = stranger.sign_in("ann", "not the password").await;
    let (wrong_status, wrong_body) = (wrong.status(), wrong.text().await.expect("body"));
    let unknown = stranger.sign_in("nobody-here", "not the password").await;
    let (unknown_status, unknown_body) = (unknown.status(), unknown.text().await.expect("body"));
    assert_eq!(wrong_status, 401);
    assert_eq!((wrong_status, &wrong_body), (unknown_status, &unknown_body));
    assert_eq!(wrong_body, "wrong username or password");
    assert!(stranger.cookie.is_empty(), "no session for either");
    server.shutdown().await;
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_and_address_with_retry_after() {
    let server = TestServer::start(|c| {
        accounts_mode(c);
        c.limits.login_failures = 3;
        c.limits.login_backoff = Duration::from_secs(60);
    })
    .await;
    let mut ann = Device::new(&server);
    assert_eq!(ann.sign_up("ann", PASSWORD).await.status(), 200);
    let mut attacker = Device::new(&server);
    for _ in 0..3 {
        assert_eq!(attacker.sign_in("ann", "guess").await.status(), 401);
    }
    // Even the right password waits now, and says how long.
    let throttled = attacker.sign_in("ann", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let retry: u64 = throttled.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(throttled
        .text()
        .await
        .expect("body")
        .contains("too many failed sign-ins"));
    assert!(attacker.cookie.is_empty());
    // The address is throttled too: another name from it waits.
    assert_eq!(attacker.sign_in("someone", "guess").await.status(), 429);
    // The session ann already has is not affected.
    assert_eq!(ann.get("/api/hello").await.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn signing_in_rotates_the_session_id() {
    let server = TestServer::start(accounts_mode).await;
    let mut ann = Device::new(&server);
    assert_eq!(ann.sign_up("ann", PASSWORD).await.status(), 200);
    let before = ann.cookie.clone();
    // Signing in again from a browser holding a session (a planted one,
    // say) gives a new id and ends the old one.
    assert_eq!(ann.sign_in("ann", PASSWORD).await.status(), 200);
    assert_ne!(ann.cookie, before);
    let old = Device {
        cookie: before,
        ..Device::new(&server)
    };
    assert_eq!(old.get("/api/hello").await.status(), 401);
    assert_eq!(ann.get("/api/hello").await.status(), 200);
    assert_eq!(ann.sessions().await.len(), 1, "the old row is gone");
    server.shutdown().await;
}

#[tokio::test]
async fn signing_a_device_out_closes_its_socket_and_event_stream_at_once() {
    let server = TestServer::start(accounts_mode).await;
    let mut laptop = Device::new(&server);
    assert_eq!(laptop.sign_up("ann", PASSWORD).await.status(), 200);
    let mut phone = Device::new(&server);
    assert_eq!(phone.sign_in("ann", PASSWORD).await.status(), 200);
    let mut phone_socket = phone.socket(&server).await;
    let id = phone_socket
        .start_conversation("[[delay:50]] [[tokens:40]] hi")
        .await;

    let sessions = laptop.sessions().await;
    assert_eq!(sessions.len(), 2);
    let phone_row = sessions
        .iter()
        .find(|s| s["current"] == false)
        .expect("the phone's row");
    let path = format!(
        "/api/auth/sessions/{}",
        phone_row["id"].as_str().expect("id")
    );
    assert_eq!(
        laptop
            .request(Method::DELETE, &path)
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert_eq!(phone_socket.closed().await, Some(1008));
    assert_eq!(phone.get("/api/hello").await.status(), 401);
    // The reply the phone started runs on and is stored; the laptop sees it:
    // the rest of it streaming (after the text so far in the snapshot) when
    // it joins in time, and stored either way.
    let mut laptop_socket = laptop.socket(&server).await;
    if let (_, Some(streaming)) = laptop_socket.subscribe(&id).await {
        let frames = laptop_socket.until_done(&id).await;
        let text =
            streaming.message.content + &common::delta_text_from(&frames, streaming.next_index);
        assert!(text.contains("t40"), "{text:?} {frames:?}");
    }
    let messages = laptop_socket.snapshot(&id).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[1].content.contains("t40"), "{messages:?}");
    // Another session's id is not found.
    assert_eq!(
        laptop
            .request(
                Method::DELETE,
                "/api/auth/sessions/ffffffffffffffffffffffff"
            )
            .send()
            .await
            .expect("delete")
            .status(),
        404
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_event_stream_ends_when_its_session_is_signed_out() {
    let server = TestServer::start(accounts_mode).await;
    let mut laptop = Device::new(&server);
    assert_eq!(laptop.sign_up("ann", PASSWORD).await.status(), 200);
    let mut phone = Device::new(&server);
    assert_eq!(phone.sign_in("ann", PASSWORD).await.status(), 200);
    let body = json!({"client_msg_id": "slow-1", "conversation_id": null,
                      "text": "[[delay:200]] [[tokens:100]] hi"});
    let mut stream = phone
        .json(Method::POST, "/api/chat", &body)
        .await
        .bytes_stream();
    use futures::StreamExt;
    // The stream is open: its first bytes (`accepted`) arrive.
    let first = tokio::time::timeout(STEP, stream.next())
        .await
        .expect("first bytes");
    assert!(first.is_some());
    let path = "/api/auth/sessions/signout-all";
    assert_eq!(
        laptop
            .request(Method::POST, path)
            .send()
            .await
            .expect("out")
            .status(),
        204
    );
    // The phone's stream ends long before the reply's 20 s would.
    let ended = tokio::time::timeout(STEP, async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream ended");
    assert_eq!(
        laptop.get("/api/hello").await.status(),
        401,
        "everywhere: this one too"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn changing_the_password_signs_out_the_other_devices() {
    let server = TestServer::start(accounts_mode).await;
    let mut laptop = Device::new(&server);
    assert_eq!(laptop.sign_up("ann", PASSWORD).await.status(), 200);
    let mut phone = Device::new(&server);
    assert_eq!(phone.sign_in("ann", PASSWORD).await.status(), 200);
    let mut phone_socket = phone.socket(&server).await;

    let wrong = json!({"current": "not it", "new": "a new passphrase"});
    assert_eq!(
        laptop
            .json(Method::POST, "/api/auth/password", &wrong)
            .await
            .status(),
        400
    );
    let short = json!({"current": PASSWORD, "new": "short"});
    assert_eq!(
        laptop
            .json(Method::POST, "/api/auth/password", &short)
            .await
            .status(),
        400
    );
    let change = json!({"current": PASSWORD, "new": "a new passphrase"});
    let changed = laptop
        .json(Method::POST, "/api/auth/password", &change)
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.json::<Value>().await.expect("json")["signed_out"],
        1
    );
    assert_eq!(phone_socket.closed().await, Some(1008));
    assert_eq!(phone.get("/api/hello").await.status(), 401);
    assert_eq!(
        laptop.get("/api/hello").await.status(),
        200,
        "this device stays"
    );
    let mut again = Device::new(&server);
    assert_eq!(again.sign_in("ann", PASSWORD).await.status(), 401);
    assert_eq!(again.sign_in("ann", "a new passphrase").await.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_guest_keeps_their_conversations_when_signing_up_or_in() {
    let server = TestServer::start(|_| {}).await;
    // A guest chats, then makes an account.
    let mut guest = Device::guest(&server).await;
    let mut socket = guest.socket(&server).await;
    let first = socket.start_conversation("hello as a guest").await;
    socket.until_done(&first).await;
    let guest_cookie = guest.cookie.clone();
    let made = guest.sign_up("ann", PASSWORD).await;
    assert_eq!(made.status(), 200);
    assert_eq!(
        made.json::<Value>().await.expect("json")["claimed_conversations"],
        1
    );
    // The session cookie replaced the guest's (the response removed it).
    let mut account_socket = guest.socket(&server).await;
    let listed = account_socket
        .conversations(ClientFrame::ListConversations { query: None })
        .await;
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&first]
    );
    // The old guest cookie is an empty guest now.
    let mut old_guest = server.connect(&guest_cookie).await;
    assert!(old_guest
        .conversations(ClientFrame::ListConversations { query: None })
        .await
        .is_empty());

    // Another guest (a second browser) signs in to the same account.
    let mut other = Device::guest(&server).await;
    let mut other_socket = other.socket(&server).await;
    let second = other_socket
        .start_conversation("hello from the phone")
        .await;
    other_socket.until_done(&second).await;
    let other_guest = other.cookie.clone();
    let signed_in = other.sign_in("ann", PASSWORD).await;
    assert_eq!(
        signed_in.json::<Value>().await.expect("json")["claimed_conversations"],
        1
    );
    let listed = guest
        .socket(&server)
        .await
        .conversations(ClientFrame::ListConversations { query: None })
        .await;
    assert_eq!(listed.len(), 2, "both devices' chats are the account's");
    // Idempotent: signing in again with that guest cookie moves nothing.
    let mut replay = Device {
        cookie: other_guest,
        ..Device::new(&server)
    };
    let again = replay.sign_in("ann", PASSWORD).await;
    assert_eq!(
        again.json::<Value>().await.expect("json")["claimed_conversations"],
        0
    );
    assert_eq!(
        guest
            .socket(&server)
            .await
            .conversations(ClientFrame::ListConversations { query: None })
            .await
            .len(),
        2
    );
    server.shutdown().await;
}

#[tokio::test]
async fn state_changing_requests_from_other_origins_are_refused() {
    let server = TestServer::start(accounts_mode).await;
    let mut ann = Device::new(&server);
    assert_eq!(ann.sign_up("ann", PASSWORD).await.status(), 200);
    let evil = |path: &str, method: Method| {
        ann.http
            .request(method, format!("{}{path}", ann.base))
            .header("origin", "https://evil.example")
            .header("cookie", &ann.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=ann&password=x&current=x&new=yyyyyyyyyy")
    };
    for (method, path) in [
        (Method::POST, "/api/auth/signin"),
        (Method::POST, "/signin"),
        (Method::POST, "/signup"),
        (Method::POST, "/signout"),
        (Method::POST, "/api/auth/signout"),
        (Method::POST, "/settings/password"),
        (Method::POST, "/settings/signout-all"),
        (Method::POST, "/admin/invites"),
    ] {
        let response = evil(path, method.clone()).send().await.expect("request");
        assert_eq!(response.status(), 403, "{method} {path}");
    }
    // No Origin at all is refused too.
    let bare = ann
        .http
        .post(format!("{}/signout", ann.base))
        .header("cookie", &ann.cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(bare.status(), 403);
    assert_eq!(ann.get("/api/hello").await.status(), 200, "still signed in");
    server.shutdown().await;
}

#[tokio::test]
async fn registration_closed_invite_and_approval() {
    // Closed: only the first account.
    let server = TestServer::start(|c| {
        accounts_mode(c);
        c.registration = Registration::Closed;
    })
    .await;
    let mut admin = Device::new(&server);
    assert_eq!(admin.sign_up("admin", PASSWORD).await.status(), 200);
    let mut late = Device::new(&server);
    let refused = late.sign_up("late", PASSWORD).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.expect("body").contains("invite"));
    // An admin's invite works once, even when sign-up is closed.
    let invite: Value = admin
        .request(Method::POST, "/api/admin/invites")
        .send()
        .await
        .expect("invite")
        .json()
        .await
        .expect("json");
    let code = invite["code"].as_str().expect("code");
    assert_eq!(invite["link"], format!("/signup?invite={code}"));
    let body = json!({"username": "late", "password": PASSWORD, "invite": code});
    let used = late.json(Method::POST, "/api/auth/signup", &body).await;
    assert_eq!(used.status(), 200);
    let body = json!({"username": "later", "password": PASSWORD, "invite": code});
    let reused = Device::new(&server)
        .json(Method::POST, "/api/auth/signup", &body)
        .await;
    assert_eq!(reused.status(), 403, "single use");
    let invites: Value = admin
        .get("/api/admin/invites")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(invites["items"][0]["used"], true);
    server.shutdown().await;

    // Approval: the account waits until an admin approves it.
    let server = TestServer::start(|c| {
        accounts_mode(c);
        c.registration = Registration::Approval;
    })
    .await;
    let mut admin = Device::new(&server);
    assert_eq!(admin.sign_up("admin", PASSWORD).await.status(), 200);
    let mut bob = Device::new(&server);
    let pending = bob.sign_up("bob", PASSWORD).await;
    assert_eq!(pending.status(), 202);
    assert!(bob.cookie.is_empty(), "no session while pending");
    let waiting = bob.sign_in("bob", PASSWORD).await;
    assert_eq!(waiting.status(), 403);
    assert!(waiting.text().await.expect("body").contains("approval"));
    let bob_id = user_id_of(&admin, "bob").await;
    let approve = json!({"status": "active"});
    let path = format!("/api/admin/users/{bob_id}/status");
    assert_eq!(
        admin.json(Method::POST, &path, &approve).await.status(),
        204
    );
    assert_eq!(bob.sign_in("bob", PASSWORD).await.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_member_cannot_use_the_admin_endpoints() {
    let server = TestServer::start(accounts_mode).await;
    let (admin, member) = admin_and_member(&server).await;
    assert_eq!(member.get("/api/admin/users").await.status(), 403);
    assert_eq!(member.get("/admin").await.status(), 403);
    assert_eq!(
        member
            .request(Method::POST, "/api/admin/invites")
            .send()
            .await
            .expect("p")
            .status(),
        403
    );
    let admin_id = user_id_of(&admin, "admin").await;
    let path = format!("/api/admin/users/{admin_id}");
    assert_eq!(
        member
            .request(Method::DELETE, &path)
            .send()
            .await
            .expect("d")
            .status(),
        403
    );
    assert_eq!(admin.get("/admin").await.status(), 200);
    // Signed out, the pages send people to sign in.
    let page = Device::new(&server).get("/settings").await;
    assert_eq!(page.status(), 303);
    server.shutdown().await;
}

#[tokio::test]
async fn an_admin_disables_then_deletes_an_account_and_its_data() {
    let server = TestServer::start(accounts_mode).await;
    let (admin, mut member) = admin_and_member(&server).await;
    let mut socket = member.socket(&server).await;
    let id = socket.start_conversation("mine").await;
    socket.until_done(&id).await;
    let member_id = user_id_of(&admin, "member").await;

    let path = format!("/api/admin/users/{member_id}/status");
    let disable = json!({"status": "disabled"});
    assert_eq!(
        admin.json(Method::POST, &path, &disable).await.status(),
        204
    );
    assert_eq!(
        socket.closed().await,
        Some(1008),
        "disabling closes their sockets"
    );
    assert_eq!(member.get("/api/hello").await.status(), 401);
    let refused = member.sign_in("member", PASSWORD).await;
    assert_eq!(refused.status(), 403);
    // Nobody disables themselves.
    let admin_id = user_id_of(&admin, "admin").await;
    let own = format!("/api/admin/users/{admin_id}/status");
    assert_eq!(admin.json(Method::POST, &own, &disable).await.status(), 400);

    let path = format!("/api/admin/users/{member_id}");
    assert_eq!(
        admin
            .request(Method::DELETE, &path)
            .send()
            .await
            .expect("d")
            .status(),
        204
    );
    assert_eq!(member.sign_in("member", PASSWORD).await.status(), 401);
    let db = rusqlite::Connection::open(server.db_path()).expect("db");
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM conversations WHERE user_id = ?",
            [&member_id],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(left, 0, "their conversations are deleted with them");
    server.shutdown().await;
}

async fn send_and_answer(socket: &mut WsClient, text: &str) -> ServerFrame {
    socket
        .send(&ClientFrame::Send {
            client_msg_id: common::uuid().as_str().into(),
            conversation_id: None,
            text: text.into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    let answer = socket
        .until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
        .await;
    if let ServerFrame::Accepted {
        conversation_id, ..
    } = &answer
    {
        socket.until_done(conversation_id).await;
    }
    answer
}

#[tokio::test]
async fn quotas_refuse_with_a_clear_code_and_reset_the_next_day() {
    let server = TestServer::start(|c| {
        accounts_mode(c);
        c.limits.quota_messages_per_day = Some(2);
    })
    .await;
    let (admin, member) = admin_and_member(&server).await;
    let mut socket = member.socket(&server).await;
    for n in 0..2 {
        let answer = send_and_answer(&mut socket, "hi").await;
        assert!(
            matches!(answer, ServerFrame::Accepted { .. }),
            "message {n}: {answer:?}"
        );
    }
    match send_and_answer(&mut socket, "one too many").await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::QuotaExceeded);
            assert!(
                message.contains("quota of 2 messages is used up"),
                "{message}"
            );
        }
        other => panic!("expected quota_exceeded, got {other:?}"),
    }
    // Over HTTP the same refusal is 429 with the same code.
    let body = json!({"client_msg_id": "q-http", "conversation_id": null, "text": "hi"});
    let refused = member.json(Method::POST, "/api/chat", &body).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.json::<Value>().await.expect("json")["code"],
        "quota_exceeded"
    );

    // The admin sees the usage and raises this account's quota.
    let member_id = user_id_of(&admin, "member").await;
    let users: Value = admin
        .get("/api/admin/users")
        .await
        .json()
        .await
        .expect("users");
    let row = users["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|u| u["user_id"] == member_id.as_str())
        .expect("row")
        .clone();
    assert_eq!(row["messages_today"], 2);
    assert!(row["tokens_today"].as_u64().expect("tokens") > 0, "{row}");
    let path = format!("/api/admin/users/{member_id}/quota");
    let raise = json!({"messages": 3, "tokens": null});
    assert_eq!(admin.json(Method::PUT, &path, &raise).await.status(), 204);
    assert!(matches!(
        send_and_answer(&mut socket, "once more").await,
        ServerFrame::Accepted { .. }
    ));
    assert!(matches!(
        send_and_answer(&mut socket, "and again").await,
        ServerFrame::Error { .. }
    ));

    // A new day: what was used yesterday no longer counts.
    let db = rusqlite::Connection::open(server.db_path()).expect("db");
    db.execute("UPDATE usage SET day = date('now', '-1 day')", [])
        .expect("yesterday");
    let yesterday: String = db
        .query_row("SELECT date('now', '-1 day')", [], |r| r.get(0))
        .expect("date");
    assert!(matches!(
        send_and_answer(&mut socket, "a new day").await,
        ServerFrame::Accepted { .. }
    ));
    let usage: Value = admin
        .get("/api/admin/usage?days=2")
        .await
        .json()
        .await
        .expect("usage");
    let days: Vec<&str> = usage["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["username"] == "member")
        .map(|d| d["day"].as_str().expect("day"))
        .collect();
    assert_eq!(days.len(), 2, "today and yesterday: {days:?}");
    assert_eq!(days[1], yesterday);
    server.shutdown().await;
}

#[tokio::test]
async fn a_trusted_proxy_header_is_believed_only_from_trusted_addresses() {
    let untrusted = TestServer::start(|c| {
        accounts_mode(c);
        c.auth_trusted_header = "X-Forwarded-User".into();
    })
    .await;
    let claim = |server: &TestServer| {
        Device::new(server)
            .request(Method::GET, "/api/hello")
            .header("x-forwarded-user", "carol")
    };
    assert_eq!(claim(&untrusted).send().await.expect("hello").status(), 401);
    untrusted.shutdown().await;

    let trusted = TestServer::start(|c| {
        accounts_mode(c);
        c.auth_trusted_header = "X-Forwarded-User".into();
        c.trusted_proxies = "127.0.0.1".parse().expect("proxies");
    })
    .await;
    assert_eq!(claim(&trusted).send().await.expect("hello").status(), 200);
    let me: Value = Device::new(&trusted)
        .request(Method::GET, "/api/auth/me")
        .header("x-forwarded-user", "Carol")
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["account"]["username"], "carol", "made on first sight");
    // Without the header, nobody.
    assert_eq!(Device::new(&trusted).get("/api/hello").await.status(), 401);
    trusted.shutdown().await;
}

#[tokio::test]
async fn open_mode_is_unchanged_for_guests_and_a_stale_session_cookie_falls_back_to_a_guest() {
    let server = TestServer::start(|_| {}).await;
    let guest = Device::guest(&server).await;
    assert_eq!(guest.get("/api/hello").await.status(), 200);
    assert_eq!(guest.me().await["guest"], true);
    // A session cookie the server does not know: the page removes it and
    // hands out a guest identity.
    let stale = Device {
        cookie: format!("tether_session={}", "ab".repeat(32)),
        ..Device::new(&server)
    };
    let page = stale.get("/").await;
    assert_eq!(page.status(), 200);
    let cleared = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with("tether_session=;")));
    assert!(cleared);
    assert!(set_cookie(&page, "tether_id").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn the_forms_sign_in_and_out_without_javascript() {
    let server = TestServer::start(accounts_mode).await;
    let mut ann = Device::new(&server);
    assert_eq!(ann.sign_up("ann", PASSWORD).await.status(), 200);
    let mut browser = Device::new(&server);
    let wrong = browser
        .form(
            "/signin",
            &[("username", "ann"), ("password", "nope"), ("next", "/")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.expect("html");
    assert!(
        page.contains("wrong username or password"),
        "the page says why"
    );
    assert!(page.contains("value=\"ann\""), "and keeps the name typed");
    let ok = browser
        .form(
            "/signin",
            &[
                ("username", "ann"),
                ("password", PASSWORD),
                ("next", "/c/abc"),
            ],
        )
        .await;
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()[header::LOCATION], "/c/abc");
    browser.keep(&ok);
    // `next` never leaves the site.
    let mut elsewhere = Device::new(&server);
    let away = elsewhere
        .form(
            "/signin",
            &[
                ("username", "ann"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(away.headers()[header::LOCATION], "/");
    elsewhere.keep(&away);
    let settings = browser.get("/settings").await;
    assert_eq!(settings.status(), 200);
    let html = settings.text().await.expect("html");
    assert!(html.contains("(this device)"), "{html}");
    assert_eq!(html.matches("class=\"session-row\"").count(), 3);
    let out = browser.form("/signout", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(browser.get("/api/hello").await.status(), 401);
    // Markup in a name cannot reach a page: names are letters and digits.
    let mut mallory = Device::new(&server);
    assert_eq!(mallory.sign_up("<script>", PASSWORD).await.status(), 400);
    server.shutdown().await;
}

/// A software authenticator (one P-256 key), answering as a browser's
/// `navigator.credentials` would.
mod authenticator {
    use p256::ecdsa::{signature::Signer, SigningKey};
    use sha2::{Digest, Sha256};

    pub fn b64url(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn from_b64url(text: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url")
    }

    fn head(major: u8, n: usize) -> Vec<u8> {
        if n < 24 {
            vec![(major << 5) | n as u8]
        } else if n < 256 {
            vec![(major << 5) | 24, n as u8]
        } else {
            let mut v = vec![(major << 5) | 25];
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v
        }
    }
    fn bytes(b: &[u8]) -> Vec<u8> {
        [head(2, b.len()), b.to_vec()].concat()
    }
    fn text(t: &str) -> Vec<u8> {
        [head(3, t.len()), t.as_bytes().to_vec()].concat()
    }
    fn int(n: i64) -> Vec<u8> {
        if n >= 0 {
            head(0, n as usize)
        } else {
            head(1, (-1 - n) as usize)
        }
    }

    pub struct Authenticator {
        key: SigningKey,
        pub id: Vec<u8>,
        count: u32,
        /// The user handle stored with the credential.
        pub user_handle: Vec<u8>,
    }

    impl Authenticator {
        pub fn new(seed: u8) -> Self {
            let mut secret = [seed; 32];
            secret[0] = 1;
            Self {
                key: SigningKey::from_bytes(&secret.into()).expect("key"),
                id: vec![seed, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                count: 0,
                user_handle: Vec::new(),
            }
        }

        fn auth_data(&self, rp_id: &str, flags: u8) -> Vec<u8> {
            let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
            data.push(flags);
            data.extend_from_slice(&self.count.to_be_bytes());
            data
        }

        pub fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
            serde_json::json!({"type": kind, "challenge": challenge, "origin": origin})
                .to_string()
                .into_bytes()
        }

        /// `attestationObject` for `rp_id`.
        pub fn attestation(&self, rp_id: &str) -> Vec<u8> {
            let point = self.key.verifying_key().to_encoded_point(false);
            let cose = [
                head(5, 5),
                int(1),
                int(2),
                int(3),
                int(-7),
                int(-1),
                int(1),
                int(-2),
                bytes(point.x().expect("x")),
                int(-3),
                bytes(point.y().expect("y")),
            ]
            .concat();
            let mut auth = self.auth_data(rp_id, 0x41);
            auth.extend_from_slice(&[0u8; 16]);
            auth.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            auth.extend_from_slice(&self.id);
            auth.extend(cose);
            [
                head(5, 3),
                text("fmt"),
                text("none"),
                text("attStmt"),
                head(5, 0),
                text("authData"),
                bytes(&auth),
            ]
            .concat()
        }

        /// `(authenticatorData, signature)` over `client_data`.
        pub fn assert(&mut self, rp_id: &str, client_data: &[u8]) -> (Vec<u8>, Vec<u8>) {
            self.count += 1;
            let auth = self.auth_data(rp_id, 0x05);
            let mut signed = auth.clone();
            signed.extend_from_slice(&Sha256::digest(client_data));
            let signature: p256::ecdsa::Signature = self.key.sign(&signed);
            (auth, signature.to_der().as_bytes().to_vec())
        }
    }
}

/// Adds a passkey to the signed-in `device`'s account.
async fn add_passkey(device: &Device, key: &mut authenticator::Authenticator) -> reqwest::Response {
    use authenticator::{b64url, Authenticator};
    let start: Value = device
        .request(Method::POST, "/api/auth/passkeys/register/start")
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("options");
    let options = &start["publicKey"];
    assert_eq!(options["pubKeyCredParams"][0]["alg"], -7);
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    let rp_id = options["rp"]["id"].as_str().expect("rp id");
    key.user_handle = authenticator::from_b64url(options["user"]["id"].as_str().expect("user id"));
    let challenge = options["challenge"].as_str().expect("challenge");
    let client = Authenticator::client_data("webauthn.create", challenge, &device.origin);
    let body = json!({
        "token": start["token"],
        "name": "Test key",
        "id": b64url(&key.id),
        "client_data": b64url(&client),
        "attestation_object": b64url(&key.attestation(rp_id)),
    });
    device
        .json(Method::POST, "/api/auth/passkeys/register/finish", &body)
        .await
}

/// The body of a passkey sign-in with `key` (what the browser would send).
async fn passkey_assertion(
    device: &Device,
    key: &mut authenticator::Authenticator,
    origin_in_client_data: &str,
) -> Value {
    use authenticator::{b64url, Authenticator};
    let start: Value = device
        .request(Method::POST, "/api/auth/passkeys/signin/start")
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("options");
    let options = &start["publicKey"];
    assert_eq!(
        options["allowCredentials"],
        json!([]),
        "the authenticator names the account"
    );
    let rp_id = options["rpId"].as_str().expect("rp id");
    let challenge = options["challenge"].as_str().expect("challenge");
    let client = Authenticator::client_data("webauthn.get", challenge, origin_in_client_data);
    let (auth, signature) = key.assert(rp_id, &client);
    json!({
        "token": start["token"],
        "id": b64url(&key.id),
        "client_data": b64url(&client),
        "authenticator_data": b64url(&auth),
        "signature": b64url(&signature),
        "user_handle": b64url(&key.user_handle),
    })
}

#[tokio::test]
async fn a_passkey_added_in_settings_signs_in_on_another_device_without_a_password() {
    let server = TestServer::start(accounts_mode).await;
    let mut laptop = Device::new(&server);
    assert_eq!(laptop.sign_up("ann", PASSWORD).await.status(), 200);
    let mut key = authenticator::Authenticator::new(3);
    let added = add_passkey(&laptop, &mut key).await;
    assert_eq!(added.status(), 201);
    assert_eq!(
        added.json::<Value>().await.expect("json")["name"],
        "Test key"
    );
    let listed: Value = laptop
        .get("/api/auth/passkeys")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    // The same credential again is refused.
    assert_eq!(add_passkey(&laptop, &mut key).await.status(), 400);

    // Another device signs in with it: no username, no password.
    let mut phone = Device::new(&server);
    let body = passkey_assertion(&phone, &mut key, &phone.origin.clone()).await;
    let signed_in = phone
        .json(Method::POST, "/api/auth/passkeys/signin/finish", &body)
        .await;
    assert_eq!(signed_in.status(), 200);
    phone.keep(&signed_in);
    assert_eq!(phone.me().await["account"]["username"], "ann");
    let mut socket = phone.socket(&server).await;
    let id = socket.start_conversation("signed in with a passkey").await;
    socket.until_done(&id).await;
    // The same answer again: its challenge was used.
    let replay = Device::new(&server)
        .json(Method::POST, "/api/auth/passkeys/signin/finish", &body)
        .await;
    assert_eq!(replay.status(), 400);
    // An answer made for another site is refused.
    let mut stranger = Device::new(&server);
    let phished = passkey_assertion(&stranger, &mut key, "https://evil.example").await;
    let refused = stranger
        .json(Method::POST, "/api/auth/passkeys/signin/finish", &phished)
        .await;
    assert_eq!(refused.status(), 400);
    stranger.keep(&refused);
    assert!(stranger.cookie.is_empty());
    // A key not registered here is not known.
    let mut unknown = authenticator::Authenticator::new(5);
    unknown.user_handle = key.user_handle.clone();
    let body = passkey_assertion(&stranger, &mut unknown, &stranger.origin.clone()).await;
    let refused = stranger
        .json(Method::POST, "/api/auth/passkeys/signin/finish", &body)
        .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.expect("body").contains("not known"));

    // Removed, it signs nobody in.
    let path = format!("/api/auth/passkeys/{}", authenticator::b64url(&key.id));
    assert_eq!(
        laptop
            .request(Method::DELETE, &path)
            .send()
            .await
            .expect("d")
            .status(),
        204
    );
    let body = passkey_assertion(&stranger, &mut key, &stranger.origin.clone()).await;
    let refused = stranger
        .json(Method::POST, "/api/auth/passkeys/signin/finish", &body)
        .await;
    assert_eq!(refused.status(), 400);
    // Nobody adds a passkey without being signed in.
    let nobody = Device::new(&server);
    let start = nobody
        .request(Method::POST, "/api/auth/passkeys/register/start")
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn sign_ups_from_one_address_share_the_new_identity_budget() {
    let server = TestServer::start(|c| {
        accounts_mode(c);
        c.limits.identity_burst = 2;
        c.limits.identity_per_sec = 0.001;
    })
    .await;
    for n in 0..2 {
        let made = Device::new(&server)
            .sign_up(&format!("user{n}"), PASSWORD)
            .await;
        assert_eq!(made.status(), 200);
    }
    let refused = Device::new(&server).sign_up("user2", PASSWORD).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    assert!(refused
        .text()
        .await
        .expect("body")
        .contains("too many new accounts"));
    // Signing in is not a new identity: it is not limited so.
    assert_eq!(
        Device::new(&server)
            .sign_in("user0", PASSWORD)
            .await
            .status(),
        200
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_never_logs_passwords_session_tokens_or_invite_codes() {
    use tether_fake_upstream::{FakeConfig, FakeUpstream};
    const FIRST: &str = "first-password-never-logged";
    const WRONG: &str = "wrong-password-never-logged";
    const SECOND: &str = "second-password-never-logged";
    let fake = FakeUpstream::start(FakeConfig::default())
        .await
        .expect("fake upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tether = common::process::Tether::spawn_in(
        dir.path(),
        &fake.base_url(),
        &[("AUTH_MODE", "accounts"), ("RUST_LOG", "debug")],
    );
    let origin = tether.url("");
    let http = http();
    let post = |path: &str, cookie: &str, body: Value| {
        http.post(tether.url(path))
            .header("origin", &origin)
            .header("cookie", cookie)
            .json(&body)
            .send()
    };
    let made = post(
        "/api/auth/signup",
        "",
        json!({"username": "ann", "password": FIRST}),
    )
    .await
    .expect("sign up");
    let cookie = set_cookie(&made, "tether_session").expect("session");
    let wrong = post(
        "/api/auth/signin",
        "",
        json!({"username": "ann", "password": WRONG}),
    )
    .await
    .expect("wrong");
    assert_eq!(wrong.status(), 401);
    let change = json!({"current": FIRST, "new": SECOND});
    let changed = post("/api/auth/password", &cookie, change)
        .await
        .expect("change");
    assert_eq!(changed.status(), 200);
    let invite: Value = post("/api/admin/invites", &cookie, json!({}))
        .await
        .expect("invite")
        .json()
        .await
        .expect("json");
    let code = invite["code"].as_str().expect("code").to_owned();
    tether.terminate();
    assert_eq!(tether.exit().await.code(), Some(0));
    let log = tether.read_log().join("\n");
    assert!(
        log.contains("signed in") && log.contains("failed sign-in"),
        "{log}"
    );
    let token = cookie.trim_start_matches("tether_session=");
    for secret in [FIRST, WRONG, SECOND, token, code.as_str()] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}
