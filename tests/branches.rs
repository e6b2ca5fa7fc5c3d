//! Swipes and branches over a real socket: `regenerate` keeps the replaced
//! reply as an alternative, `select_alternative` and `edit` change the path
//! shown, every open tab is shown the change as a `snapshot`, retries never
//! double anything, and nothing changes while a reply streams.

mod common;

use common::{done_of, uuid, TestServer, WsClient};
use tether::protocol::{
    Alternatives, ClientFrame, ConversationId, ErrorCode, Message, MessageId, Role, ServerFrame,
};

fn at(index: u32, count: u32) -> Option<Alternatives> {
    Some(Alternatives { index, count })
}

/// The id of the reply a `done` among `frames` ended.
fn done_id(frames: &[ServerFrame]) -> MessageId {
    match done_of(frames) {
        ServerFrame::Done { message_id, .. } => message_id.clone(),
        _ => unreachable!(),
    }
}

/// The next snapshot of `conversation` the client reads.
async fn next_snapshot(client: &mut WsClient, conversation: &ConversationId) -> Vec<Message> {
    match client
        .until(|f| matches!(f, ServerFrame::Snapshot { conversation_id, .. } if conversation_id == conversation))
        .await
    {
        ServerFrame::Snapshot { messages, .. } => messages,
        _ => unreachable!(),
    }
}

/// The next error the client reads.
async fn next_error(client: &mut WsClient) -> (ErrorCode, String) {
    match client
        .until(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, message, .. } => (code, message),
        _ => unreachable!(),
    }
}

async fn regenerate(client: &mut WsClient, conversation: &ConversationId) -> Vec<ServerFrame> {
    client
        .send(&ClientFrame::Regenerate {
            conversation_id: conversation.clone(),
            client_msg_id: uuid().as_str().into(),
        })
        .await;
    client.until_done(conversation).await
}

async fn select(
    client: &mut WsClient,
    conversation: &ConversationId,
    message: &MessageId,
    index: u32,
) {
    client
        .send(&ClientFrame::SelectAlternative {
            conversation_id: conversation.clone(),
            message_id: message.clone(),
            index,
        })
        .await;
}

fn texts(messages: &[Message]) -> Vec<(&str, Option<Alternatives>)> {
    messages
        .iter()
        .map(|m| (m.content.as_str(), m.alternatives))
        .collect()
}

#[tokio::test]
async fn swipes_are_kept_chosen_and_shown_in_every_tab() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut tab = server.connect(&cookie).await;
    let mut other_tab = server.connect(&cookie).await;
    let conversation = tab.start_conversation("swipe").await;
    let first = done_id(&tab.until_done(&conversation).await);
    other_tab.snapshot(&conversation).await;

    for _ in 0..2 {
        regenerate(&mut tab, &conversation).await;
    }
    let messages = tab.snapshot(&conversation).await;
    assert_eq!(messages.len(), 2, "one reply shown: {messages:?}");
    assert_eq!(
        messages[1].alternatives,
        at(2, 3),
        "the newest of three replies"
    );
    // The other tab followed every swipe as it streamed.
    let shown = next_snapshot(&mut other_tab, &conversation).await;
    assert_eq!(
        shown.len(),
        1,
        "a swipe first shows the path without the replaced reply"
    );

    select(&mut tab, &conversation, &messages[1].id, 0).await;
    for client in [&mut tab, &mut other_tab] {
        let messages = loop {
            let messages = next_snapshot(client, &conversation).await;
            if messages.last().is_some_and(|m| m.id == first) {
                break messages;
            }
        };
        assert_eq!(messages[1].alternatives, at(0, 3));
    }
    // Chosen, stored: a new connection sees the same.
    let mut later = server.connect(&cookie).await;
    let messages = later.snapshot(&conversation).await;
    assert_eq!(messages[1].id, first);
    assert_eq!(server.stats().requests(), 3);
}

#[tokio::test]
async fn an_edit_streams_a_new_branch_and_the_old_one_stays_reachable() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("first").await;
    client.until_done(&conversation).await;
    client.send_text_to(&conversation, "second").await;
    client.until_done(&conversation).await;
    let before = client.snapshot(&conversation).await;
    assert_eq!(before.len(), 4);

    let key = uuid();
    let edit = ClientFrame::Edit {
        conversation_id: conversation.clone(),
        client_msg_id: key.as_str().into(),
        message_id: before[0].id.clone(),
        text: "first, edited".into(),
    };
    client.send(&edit).await;
    let frames = client.until_done(&conversation).await;
    let Some(ServerFrame::Accepted {
        message_id: edited,
        duplicate: false,
        ..
    }) = frames
        .iter()
        .find(|f| matches!(f, ServerFrame::Accepted { .. }))
        .cloned()
    else {
        panic!("an edit is accepted: {frames:?}")
    };
    let Some(ServerFrame::Snapshot {
        messages,
        streaming: Some(streaming),
        ..
    }) = frames
        .iter()
        .find(|f| matches!(f, ServerFrame::Snapshot { .. }))
    else {
        panic!("views are shown the new branch with its reply streaming: {frames:?}")
    };
    assert_eq!(texts(messages), [("first, edited", at(1, 2))]);
    assert_eq!(messages[0].id, edited);
    assert_eq!(streaming.message.role, Role::Assistant);
    let after = client.snapshot(&conversation).await;
    assert_eq!(
        texts(&after),
        [
            ("first, edited", at(1, 2)),
            ("You said: first, edited", None)
        ]
    );

    // A retried edit is answered as before and stores nothing.
    client.send(&edit).await;
    let again = client
        .until(|f| matches!(f, ServerFrame::Accepted { .. }))
        .await;
    assert!(
        matches!(&again, ServerFrame::Accepted { duplicate: true, message_id, .. } if *message_id == edited),
        "{again:?}"
    );
    assert_eq!(
        client.snapshot(&conversation).await[0].alternatives,
        at(1, 2)
    );

    // The earlier branch comes back whole.
    select(&mut client, &conversation, &edited, 0).await;
    let back = next_snapshot(&mut client, &conversation).await;
    assert_eq!(
        back.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        before.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(back[0].alternatives, at(0, 2));
    assert_eq!(server.stats().requests(), 3);
}

#[tokio::test]
async fn an_edited_reply_is_stored_as_an_alternative_without_asking_the_model() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut tab = server.connect(&cookie).await;
    let mut other_tab = server.connect(&cookie).await;
    let conversation = tab.start_conversation("hello").await;
    let reply = done_id(&tab.until_done(&conversation).await);
    other_tab.snapshot(&conversation).await;
    tab.send(&ClientFrame::Edit {
        conversation_id: conversation.clone(),
        client_msg_id: uuid().as_str().into(),
        message_id: reply.clone(),
        text: "Hello! *Better* said.".into(),
    })
    .await;
    let accepted = tab
        .until(|f| matches!(f, ServerFrame::Accepted { .. }))
        .await;
    assert!(matches!(
        accepted,
        ServerFrame::Accepted {
            duplicate: false,
            ..
        }
    ));
    let shown = next_snapshot(&mut other_tab, &conversation).await;
    assert_eq!(
        texts(&shown),
        [("hello", None), ("Hello! *Better* said.", at(1, 2))]
    );
    assert_eq!(server.stats().requests(), 1, "no reply was asked for");
}

#[tokio::test]
async fn nothing_changes_the_path_while_a_reply_streams() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("hi").await;
    let first = done_id(&client.until_done(&conversation).await);
    let user_message = client.snapshot(&conversation).await[0].id.clone();
    client.send_text_to(&conversation, "[[stall:1]] wait").await;
    client
        .until(|f| matches!(f, ServerFrame::Delta { .. }))
        .await;
    select(&mut client, &conversation, &first, 0).await;
    assert_eq!(next_error(&mut client).await.0, ErrorCode::Busy);
    client
        .send(&ClientFrame::Edit {
            conversation_id: conversation.clone(),
            client_msg_id: uuid().as_str().into(),
            message_id: user_message,
            text: "changed".into(),
        })
        .await;
    assert_eq!(next_error(&mut client).await.0, ErrorCode::Busy);
    client
        .send(&ClientFrame::Stop {
            conversation_id: conversation.clone(),
        })
        .await;
    client.until_done(&conversation).await;
    assert_eq!(client.snapshot(&conversation).await.len(), 4);
}

#[tokio::test]
async fn a_swipe_in_progress_survives_a_reconnect() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut client = server.connect(&cookie).await;
    let conversation = client
        .start_conversation("[[delay:20]] [[long]] story")
        .await;
    client.until_done(&conversation).await;
    client
        .send(&ClientFrame::Regenerate {
            conversation_id: conversation.clone(),
            client_msg_id: uuid().as_str().into(),
        })
        .await;
    client
        .until(|f| matches!(f, ServerFrame::Delta { .. }))
        .await;
    drop(client);
    let mut again = server.connect(&cookie).await;
    again
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
    match again
        .until(|f| matches!(f, ServerFrame::Snapshot { .. }))
        .await
    {
        ServerFrame::Snapshot {
            streaming: Some(streaming),
            messages,
            ..
        } => {
            assert_eq!(messages.len(), 1);
            assert_eq!(streaming.message.alternatives, at(1, 2));
        }
        other => panic!("the swipe still streams: {other:?}"),
    }
    again.until_done(&conversation).await;
    let messages = again.snapshot(&conversation).await;
    assert_eq!(messages[1].alternatives, at(1, 2));
    assert!(
        messages[1].content.ends_with("word60"),
        "{}",
        messages[1].content
    );
}

#[tokio::test]
async fn two_tabs_swiping_at_once_make_one_new_reply() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut a = server.connect(&cookie).await;
    let mut b = server.connect(&cookie).await;
    let conversation = a.start_conversation("[[delay:20]] twice").await;
    a.until_done(&conversation).await;
    for tab in [&mut a, &mut b] {
        tab.send(&ClientFrame::Regenerate {
            conversation_id: conversation.clone(),
            client_msg_id: uuid().as_str().into(),
        })
        .await;
    }
    let answers = [
        a.until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
            .await,
        b.until(|f| matches!(f, ServerFrame::Accepted { .. } | ServerFrame::Error { .. }))
            .await,
    ];
    let busy = answers
        .iter()
        .filter(|f| {
            matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::Busy,
                    ..
                }
            )
        })
        .count();
    assert_eq!(busy, 1, "one swipe runs, the other is busy: {answers:?}");
    let winner = if matches!(answers[0], ServerFrame::Accepted { .. }) {
        &mut a
    } else {
        &mut b
    };
    winner.until_done(&conversation).await;
    let messages = winner.snapshot(&conversation).await;
    assert_eq!(messages[1].alternatives, at(1, 2));
}

#[tokio::test]
async fn bad_branch_frames_are_refused_with_a_reason() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("hi").await;
    let reply = done_id(&client.until_done(&conversation).await);
    select(&mut client, &conversation, &reply, 7).await;
    let (code, message) = next_error(&mut client).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("no alternative 7"), "{message}");
    let edit = |message_id: &str, text: &str| ClientFrame::Edit {
        conversation_id: conversation.clone(),
        client_msg_id: uuid().as_str().into(),
        message_id: message_id.into(),
        text: text.into(),
    };
    client.send(&edit("nope", "x")).await;
    let (code, message) = next_error(&mut client).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("not shown"), "{message}");
    client.send(&edit(reply.as_str(), "  ")).await;
    assert_eq!(next_error(&mut client).await.0, ErrorCode::BadRequest);
    // Somebody else's conversation does not exist for them.
    let mut stranger = server.user().await;
    select(&mut stranger, &conversation, &reply, 0).await;
    assert_eq!(next_error(&mut stranger).await.0, ErrorCode::NotFound);
    stranger.send(&edit(reply.as_str(), "mine")).await;
    assert_eq!(next_error(&mut stranger).await.0, ErrorCode::NotFound);
    assert_eq!(client.snapshot(&conversation).await[1].id, reply);
}

#[tokio::test]
async fn deleting_a_swipe_shows_the_one_before_in_every_tab() {
    let server = TestServer::start(|_| {}).await;
    let cookie = server.cookie().await;
    let mut tab = server.connect(&cookie).await;
    let mut other_tab = server.connect(&cookie).await;
    let conversation = tab.start_conversation("delete me").await;
    let first = done_id(&tab.until_done(&conversation).await);
    let second = done_id(&regenerate(&mut tab, &conversation).await);
    other_tab.snapshot(&conversation).await;
    tab.send(&ClientFrame::DeleteMessage {
        conversation_id: conversation.clone(),
        message_id: second.clone(),
    })
    .await;
    for client in [&mut tab, &mut other_tab] {
        let shown = next_snapshot(client, &conversation).await;
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[1].id, first);
        assert_eq!(shown[1].alternatives, None, "the only reply left");
    }
    // Gone for good: deleting it again is refused.
    tab.send(&ClientFrame::DeleteMessage {
        conversation_id: conversation.clone(),
        message_id: second,
    })
    .await;
    let (code, message) = next_error(&mut tab).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(
        message.contains("not a message of this conversation"),
        "{message}"
    );
}
