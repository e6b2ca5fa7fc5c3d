//! Server-rendered pages: a conversation's history is in the HTML of
//! `/c/:id` for its owner only, and `/api/session` identifies a client-only
//! (Trunk) page.

mod common;

use common::TestServer;

async fn page(server: &TestServer, path: &str, cookie: Option<&str>) -> (u16, String) {
    let (status, _, body) = raw_page(server, path, "identity", cookie).await;
    (status, String::from_utf8(body).expect("utf-8"))
}

/// `GET path` with `Accept-Encoding: encoding`: the status, its
/// `Content-Encoding` and the body as sent.
async fn raw_page(
    server: &TestServer,
    path: &str,
    encoding: &str,
    cookie: Option<&str>,
) -> (u16, Option<String>, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("http://{}{path}", server.addr))
        .header("accept-encoding", encoding);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    let coding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        status,
        coding,
        response.bytes().await.expect("body").to_vec(),
    )
}

#[tokio::test]
async fn a_conversation_page_renders_its_history_for_its_owner_only() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut alice = server.connect(&cookie).await;
    let id = alice.start_conversation("the <b>harbour</b> at dusk").await;
    alice.until_done(&id).await;

    let (status, html) = page(&server, &format!("/c/{id}"), Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("You said: the"),
        "the reply is in the HTML: {html}"
    );
    assert!(
        html.contains("data-role=\"user\""),
        "the user's message is rendered"
    );
    assert!(
        !html.contains("<b>harbour</b>"),
        "user text is escaped, never markup"
    );

    let stranger = server.cookie().await;
    let (status, html) = page(&server, &format!("/c/{id}"), Some(&stranger)).await;
    assert_eq!(status, 200);
    assert!(!html.contains("You said: the"), "another user sees nothing");
    let (_, html) = page(&server, &format!("/c/{id}"), None).await;
    assert!(!html.contains("You said: the"), "no cookie, no history");
    let (status, _) = page(&server, "/c/not-a-conversation", Some(&cookie)).await;
    assert_eq!(status, 200, "an unknown id renders an empty chat");
}

#[tokio::test]
async fn api_session_issues_an_identity_cookie_once() {
    let server = TestServer::start(|_| {}).await;
    let response = reqwest::get(format!("http://{}/api/session", server.addr))
        .await
        .expect("GET /api/session");
    assert_eq!(response.status().as_u16(), 200);
    let set = response
        .headers()
        .get("set-cookie")
        .expect("cookie issued")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        set.starts_with("tether_id=") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("pair").to_owned();
    let again = reqwest::Client::new()
        .get(format!("http://{}/api/session", server.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET again");
    assert!(
        again.headers().get("set-cookie").is_none(),
        "kept, not replaced"
    );
    let body: serde_json::Value = again.json().await.expect("json");
    assert_eq!(body["identified"], true);
    // The cookie works on the socket.
    server.connect(&cookie).await;
}

#[tokio::test]
async fn pages_go_out_compressed_to_browsers_that_accept_it() {
    use std::io::Read as _;
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut alice = server.connect(&cookie).await;
    // A page well above the size from which pages are compressed: the
    // message and its echoed reply, each in the markup and in the data the
    // page hydrates from.
    let long = format!("the harbour at dusk {}", "and the gulls again ".repeat(300));
    let id = alice.start_conversation(&long).await;
    alice.until_done(&id).await;
    let path = format!("/c/{id}");

    let (status, coding, plain) = raw_page(&server, &path, "identity", Some(&cookie)).await;
    assert_eq!((status, coding), (200, None), "no coding unless asked");
    assert!(
        plain.len() > 2 * usize::from(tether::server::pages::COMPRESS_FROM),
        "a large page: {} bytes",
        plain.len()
    );
    let html = String::from_utf8(plain.clone()).expect("utf-8");
    assert!(html.contains("You said: the harbour"), "{html}");

    // What Chromium asks for: brotli first.
    let (status, coding, body) =
        raw_page(&server, &path, "gzip, deflate, br, zstd", Some(&cookie)).await;
    assert_eq!((status, coding.as_deref()), (200, Some("br")));
    let mut unpacked = Vec::new();
    brotli_decompressor::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut unpacked)
        .expect("brotli");
    assert!(
        body.len() * 4 < plain.len(),
        "{} bytes of brotli for {} of page",
        body.len(),
        plain.len()
    );
    let unpacked = String::from_utf8(unpacked).expect("utf-8");
    assert!(unpacked.contains("You said: the harbour"), "the same page");

    let (_, coding, body) = raw_page(&server, &path, "gzip", Some(&cookie)).await;
    assert_eq!(coding.as_deref(), Some("gzip"));
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut unpacked)
        .expect("gzip");
    assert!(unpacked.contains("You said: the harbour"), "the same page");

    // A small page (a new visitor's) arrives in TCP's first window either
    // way: it goes out as it is, with its length.
    let (status, coding, small) = raw_page(&server, "/", "gzip, br", None).await;
    assert_eq!((status, coding), (200, None));
    assert!(
        small.len() < usize::from(tether::server::pages::COMPRESS_FROM),
        "{} bytes",
        small.len()
    );
    assert!(String::from_utf8(small).expect("utf-8").contains("</html>"));

    // Not the API: its answers are small, and the event streams must
    // flush each frame as it is written.
    let (status, coding, _) = raw_page(&server, "/api/session", "br, gzip", Some(&cookie)).await;
    assert_eq!((status, coding), (200, None));
}

#[tokio::test]
async fn a_page_goes_out_whole_with_its_length() {
    let server = TestServer::start(|_| {}).await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/", server.addr))
        .send()
        .await
        .expect("GET /");
    assert_eq!(response.status().as_u16(), 200);
    let length: usize = response
        .headers()
        .get("content-length")
        .expect("a page has its length")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    assert!(
        response.headers().get("transfer-encoding").is_none(),
        "not chunked"
    );
    let body = response.bytes().await.expect("body");
    assert_eq!(body.len(), length);
}
