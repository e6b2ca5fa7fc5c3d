//! Long conversations (issue 18): a `snapshot` carries the newest
//! `HISTORY_WINDOW` messages and says whether older ones exist; `history`
//! (WebSocket, `POST /api/frame`) and `GET /api/conversations/{id}/messages`
//! (HTTP) page back to the first message. Over real sockets, with a small
//! window so that a few exchanges make a long conversation.

mod common;

use common::{uuid, TestServer, WsClient};
use tether::protocol::{
    ClientFrame, ConversationId, ErrorCode, Message, MessageId, Role, ServerFrame,
};
use tether_fake_upstream::reply_tokens;

/// Messages a snapshot carries in these tests.
const WINDOW: usize = 4;
/// Most messages of one page in these tests.
const PAGE_MAX: usize = 5;

async fn server() -> TestServer {
    TestServer::start(|config| {
        config.limits.history_window = WINDOW;
        config.limits.history_page_max = PAGE_MAX;
    })
    .await
}

/// A conversation of `exchanges` answered messages `m0`, `m1`, …; its id.
async fn long_conversation(client: &mut WsClient, exchanges: usize) -> ConversationId {
    let id = client.start_conversation("m0").await;
    client.until_done(&id).await;
    for n in 1..exchanges {
        client
            .send(&ClientFrame::Send {
                client_msg_id: uuid().as_str().into(),
                conversation_id: Some(id.clone()),
                text: format!("m{n}"),
                persona: None,
                greeting: None,
                model: None,
            })
            .await;
        client.until_done(&id).await;
    }
    id
}

/// What the conversation of [`long_conversation`] holds, oldest first.
fn expected_texts(exchanges: usize) -> Vec<String> {
    (0..exchanges)
        .flat_map(|n| {
            let text = format!("m{n}");
            let reply = reply_tokens(&text).concat();
            [text, reply]
        })
        .collect()
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.content.clone()).collect()
}

/// A socket's `history` request and its answer (`history_page` or `error`).
async fn ask_page(
    client: &mut WsClient,
    conversation: &ConversationId,
    before: Option<&MessageId>,
    limit: Option<u32>,
) -> ServerFrame {
    client
        .send(&ClientFrame::History {
            conversation_id: conversation.clone(),
            before: before.cloned(),
            limit,
        })
        .await;
    client
        .until(|f| {
            matches!(
                f,
                ServerFrame::HistoryPage { .. } | ServerFrame::Error { .. }
            )
        })
        .await
}

/// A page's messages and `has_more`; panics on anything else.
fn page_of(frame: ServerFrame, before: Option<&MessageId>) -> (Vec<Message>, bool) {
    match frame {
        ServerFrame::HistoryPage {
            before: answered,
            messages,
            has_more,
            ..
        } => {
            assert_eq!(answered.as_ref(), before, "the page names its cursor");
            (messages, has_more)
        }
        other => panic!("expected a history page, got {other:?}"),
    }
}

/// A subscription's snapshot: its messages, `has_more` and whether a
/// reply streams.
async fn subscribe(
    client: &mut WsClient,
    conversation: &ConversationId,
) -> (
    Vec<Message>,
    bool,
    Option<tether::protocol::StreamingMessage>,
) {
    client
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
    match client
        .until(|f| matches!(f, ServerFrame::Snapshot { .. }))
        .await
    {
        ServerFrame::Snapshot {
            messages,
            has_more,
            streaming,
            ..
        } => (messages, has_more, streaming),
        _ => unreachable!(),
    }
}

/// `GET /api/conversations/{id}/messages?<query>` with `cookie`: status and JSON body.
async fn http_page(
    server: &TestServer,
    cookie: &str,
    conversation: &ConversationId,
    query: &str,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/api/conversations/{conversation}/messages?{query}",
            server.addr
        ))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET messages");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn a_snapshot_carries_the_window_and_pages_reach_the_first_message_without_gaps() {
    let server = server().await;
    let mut client = server.user().await;
    let id = long_conversation(&mut client, 7).await;
    let all = expected_texts(7);

    let (window, has_more, streaming) = subscribe(&mut client, &id).await;
    assert!(streaming.is_none());
    assert_eq!(texts(&window), all[all.len() - WINDOW..], "the newest four");
    assert!(has_more, "older messages exist");

    // Page back with a limit above the cap: clamped to PAGE_MAX, never an error.
    let mut shown = window;
    let mut pages = 0;
    loop {
        let before = shown[0].id.clone();
        let (page, more) = page_of(
            ask_page(&mut client, &id, Some(&before), Some(1_000)).await,
            Some(&before),
        );
        assert!(page.len() <= PAGE_MAX, "{} messages", page.len());
        assert!(!page.is_empty());
        pages += 1;
        shown.splice(0..0, page);
        if !more {
            break;
        }
        assert_eq!(
            shown.len() - WINDOW,
            pages * PAGE_MAX,
            "full pages until the last"
        );
    }
    assert_eq!(texts(&shown), all, "every message once, in order");
    assert_eq!(pages, 2, "10 older messages, 5 a page");
    assert_eq!(shown[0].role, Role::User);

    // Idempotent: the same cursor answers the same page.
    let cursor = shown[6].id.clone();
    let first = page_of(
        ask_page(&mut client, &id, Some(&cursor), Some(3)).await,
        Some(&cursor),
    );
    let again = page_of(
        ask_page(&mut client, &id, Some(&cursor), Some(3)).await,
        Some(&cursor),
    );
    assert_eq!(first, again);
    assert_eq!(first.0, shown[3..6]);
    // No cursor: the newest page; no limit: the window's size.
    let (newest, more) = page_of(ask_page(&mut client, &id, None, None).await, None);
    assert_eq!(newest, shown[shown.len() - WINDOW..]);
    assert!(more);
}

#[tokio::test]
async fn the_http_transport_pages_exactly_as_the_socket() {
    let server = server().await;
    let cookie = server.cookie().await;
    let mut client = server.connect(&cookie).await;
    let id = long_conversation(&mut client, 4).await;
    let all = expected_texts(4);

    // The events endpoint's snapshot carries the same window.
    let events = reqwest::Client::new()
        .get(format!(
            "http://{}/api/conversations/{id}/events",
            server.addr
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET events")
        .text()
        .await
        .expect("the stream ends after the snapshot: no reply runs");
    let data = events
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a snapshot event");
    let snapshot: ServerFrame = serde_json::from_str(data).expect("a frame");
    let ServerFrame::Snapshot {
        messages, has_more, ..
    } = snapshot
    else {
        panic!("expected the snapshot, got {snapshot:?}");
    };
    assert_eq!(texts(&messages), all[all.len() - WINDOW..]);
    assert!(has_more);

    let mut shown = messages;
    loop {
        let before = shown[0].id.clone();
        let (status, body) =
            http_page(&server, &cookie, &id, &format!("before={before}&limit=3")).await;
        assert_eq!(status, 200, "{body}");
        let frame: ServerFrame = serde_json::from_value(body).expect("a history_page frame");
        // The socket answers the same cursor with the same page.
        let on_socket = ask_page(&mut client, &id, Some(&before), Some(3)).await;
        assert_eq!(frame, on_socket);
        let (page, more) = page_of(frame, Some(&before));
        shown.splice(0..0, page);
        if !more {
            break;
        }
    }
    assert_eq!(texts(&shown), all);

    // `POST /api/frame` takes the frame too.
    let body = ClientFrame::History {
        conversation_id: id.clone(),
        before: Some(shown[2].id.clone()),
        limit: Some(2),
    };
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/frame", server.addr))
        .header("cookie", &cookie)
        .header("origin", server.origin())
        .header("content-type", "application/json")
        .body(body.to_json())
        .send()
        .await
        .expect("POST /api/frame");
    assert_eq!(response.status(), 200);
    let frame: ServerFrame = response.json().await.expect("a frame");
    let (page, more) = page_of(frame, Some(&shown[2].id));
    assert_eq!(page, shown[0..2]);
    assert!(!more);
}

#[tokio::test]
async fn someone_elses_conversation_is_not_found_on_both_transports() {
    let server = server().await;
    let mut alice = server.user().await;
    let id = long_conversation(&mut alice, 3).await;
    let (window, _, _) = subscribe(&mut alice, &id).await;

    let stranger_cookie = server.cookie().await;
    let mut stranger = server.connect(&stranger_cookie).await;
    for before in [None, Some(&window[0].id)] {
        match ask_page(&mut stranger, &id, before, None).await {
            ServerFrame::Error {
                code,
                conversation_id,
                ..
            } => {
                assert_eq!(code, ErrorCode::NotFound);
                assert_eq!(conversation_id.as_ref(), Some(&id));
            }
            other => panic!("expected not_found, got {other:?}"),
        }
    }
    let (status, body) = http_page(&server, &stranger_cookie, &id, "limit=2").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    let (status, _) = http_page(&server, &stranger_cookie, &"nope".into(), "").await;
    assert_eq!(status, 404);
    // Without a cookie there is nobody to show it to.
    let status = reqwest::get(format!(
        "http://{}/api/conversations/{id}/messages",
        server.addr
    ))
    .await
    .expect("GET")
    .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_a_clear_bad_request() {
    let server = server().await;
    let cookie = server.cookie().await;
    let mut client = server.connect(&cookie).await;
    let id = long_conversation(&mut client, 3).await;
    let other = long_conversation(&mut client, 1).await;
    let (elsewhere, _, _) = subscribe(&mut client, &other).await;

    let cases: [(Option<MessageId>, Option<u32>, &str); 3] = [
        (None, Some(0), "limit must be at least 1 message"),
        (Some("no-such-message".into()), None, "unknown cursor"),
        (Some(elsewhere[0].id.clone()), Some(2), "unknown cursor"),
    ];
    for (before, limit, reason) in cases {
        match ask_page(&mut client, &id, before.as_ref(), limit).await {
            ServerFrame::Error {
                code,
                message,
                conversation_id,
                ..
            } => {
                assert_eq!(code, ErrorCode::BadRequest, "{message}");
                assert!(message.starts_with(reason), "{message}");
                assert_eq!(conversation_id.as_ref(), Some(&id));
            }
            other => panic!("expected bad_request, got {other:?}"),
        }
        let query = match (&before, limit) {
            (Some(b), Some(l)) => format!("before={b}&limit={l}"),
            (Some(b), None) => format!("before={b}"),
            (None, Some(l)) => format!("limit={l}"),
            (None, None) => String::new(),
        };
        let (status, body) = http_page(&server, &cookie, &id, &query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["type"], "error");
        assert_eq!(body["code"], "bad_request");
        let message = body["message"].as_str().expect("a reason");
        assert!(message.starts_with(reason), "{message}");
    }
    for limit in ["ten", "-1", "99999999999"] {
        let (status, body) = http_page(&server, &cookie, &id, &format!("limit={limit}")).await;
        assert_eq!(status, 400, "{limit}");
        let message = body["message"].as_str().expect("a reason");
        assert!(
            message.starts_with("limit must be a whole number"),
            "{message}"
        );
    }
    // The socket is still usable.
    let (page, _) = page_of(ask_page(&mut client, &id, None, Some(1)).await, None);
    assert_eq!(page.len(), 1);
}

#[tokio::test]
async fn a_reply_streaming_while_paging_stays_exact_and_out_of_the_pages() {
    let server = server().await;
    let cookie = server.cookie().await;
    let mut writer = server.connect(&cookie).await;
    let id = long_conversation(&mut writer, 5).await;
    let stored = expected_texts(5);
    let prompt = "[[long]] [[delay:20]]";
    writer
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: Some(id.clone()),
            text: prompt.into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    // The reply has begun streaming once its first delta is out.
    writer
        .until(|f| matches!(f, ServerFrame::Delta { .. }))
        .await;

    let mut reader = server.connect(&cookie).await;
    let (window, has_more, streaming) = subscribe(&mut reader, &id).await;
    let streaming = streaming.expect("the reply in progress");
    assert!(has_more);
    assert_eq!(window.len(), WINDOW, "the window is stored messages only");
    assert!(window.iter().all(|m| m.id != streaming.message.id));
    assert_eq!(window.last().map(|m| m.content.as_str()), Some(prompt));

    // Page back while the deltas arrive on the same socket.
    let mut text = streaming.message.content.clone();
    let mut next = streaming.next_index;
    let mut shown = window;
    let mut asking = Some(shown[0].id.clone());
    reader
        .send(&ClientFrame::History {
            conversation_id: id.clone(),
            before: asking.clone(),
            limit: Some(2),
        })
        .await;
    loop {
        match reader.next().await {
            ServerFrame::Delta { index, text: t, .. } => {
                assert_eq!(index, next, "deltas stay contiguous while paging");
                next += 1;
                text.push_str(&t);
            }
            ServerFrame::HistoryPage {
                before,
                messages,
                has_more,
                ..
            } => {
                assert_eq!(before, asking);
                assert!(messages.iter().all(|m| m.id != streaming.message.id));
                shown.splice(0..0, messages);
                asking = has_more.then(|| shown[0].id.clone());
                if let Some(before) = &asking {
                    reader
                        .send(&ClientFrame::History {
                            conversation_id: id.clone(),
                            before: Some(before.clone()),
                            limit: Some(2),
                        })
                        .await;
                }
            }
            ServerFrame::Done { message_id, .. } => {
                assert_eq!(message_id, streaming.message.id);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Pages not finished when the reply ended come after it.
    while let Some(before) = asking.clone() {
        let (page, more) = page_of(
            ask_page(&mut reader, &id, Some(&before), Some(2)).await,
            Some(&before),
        );
        shown.splice(0..0, page);
        asking = more.then(|| shown[0].id.clone());
    }
    let mut expected = stored;
    expected.push(prompt.to_owned());
    assert_eq!(texts(&shown), expected, "no gap, no repeat");
    assert_eq!(text, reply_tokens(prompt).concat(), "the exact reply");
    let (after, _, _) = subscribe(&mut reader, &id).await;
    assert_eq!(after.last().map(|m| m.content.clone()), Some(text));
}

#[tokio::test]
async fn a_regenerate_snapshot_and_the_page_of_c_id_carry_the_window_only() {
    let server = server().await;
    let cookie = server.cookie().await;
    let mut client = server.connect(&cookie).await;
    let id = long_conversation(&mut client, 5).await;
    let all = expected_texts(5);

    client
        .send(&ClientFrame::Regenerate {
            conversation_id: id.clone(),
            client_msg_id: uuid().as_str().into(),
        })
        .await;
    let (messages, has_more) = match client
        .until(|f| matches!(f, ServerFrame::Snapshot { .. }))
        .await
    {
        ServerFrame::Snapshot {
            messages,
            has_more,
            streaming: Some(_),
            ..
        } => (messages, has_more),
        other => panic!("expected the regenerate snapshot, got {other:?}"),
    };
    assert_eq!(texts(&messages), all[all.len() - 1 - WINDOW..all.len() - 1]);
    assert!(has_more);
    client.until_done(&id).await;

    let html = reqwest::Client::new()
        .get(format!("http://{}/c/{id}", server.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET /c/:id")
        .text()
        .await
        .expect("body");
    assert_eq!(
        html.matches("<article").count(),
        WINDOW,
        "only the window is rendered"
    );
    assert!(html.contains("You said: m4"), "the newest reply is there");
    assert!(!html.contains("You said: m0"), "the oldest is not");
}
