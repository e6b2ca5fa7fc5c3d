//! Streaming replies and the protocol's guarantees, over real sockets with the
//! fake upstream speaking OpenAI's SSE format.

mod common;

use std::time::Duration;

use common::{delta_text, done_of, uuid, TestServer};
use tether::protocol::{ClientFrame, ErrorCode, FinishReason, Role, ServerFrame};
use tether_fake_upstream::reply_tokens;

fn send(
    conversation: Option<&tether::protocol::ConversationId>,
    text: &str,
    id: &str,
) -> ClientFrame {
    ClientFrame::Send {
        client_msg_id: id.into(),
        conversation_id: conversation.cloned(),
        text: text.into(),
        persona: None,
        greeting: None,
        model: None,
    }
}

#[tokio::test]
async fn send_streams_contiguous_deltas_equal_to_the_upstream_reply() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let id = uuid();
    client.send(&send(None, "hello there", &id)).await;
    let accepted = client.next().await;
    let ServerFrame::Accepted {
        client_msg_id,
        conversation_id,
        duplicate,
        ..
    } = accepted
    else {
        panic!("accepted first, got {accepted:?}")
    };
    assert_eq!(client_msg_id.as_str(), id);
    assert!(!duplicate);
    let frames = client.until_done(&conversation_id).await;
    let expected: String = reply_tokens("hello there").concat();
    assert_eq!(delta_text(&frames), expected);
    assert!(
        frames
            .iter()
            .filter(|f| matches!(f, ServerFrame::Delta { .. }))
            .count()
            > 2,
        "streamed token by token"
    );
    match done_of(&frames) {
        ServerFrame::Done {
            finish_reason,
            usage,
            ttft_ms,
            total_ms,
            ..
        } => {
            assert_eq!(*finish_reason, FinishReason::Stop);
            assert_eq!(
                usage.map(|u| u.completion_tokens),
                Some(reply_tokens("hello there").len() as u32)
            );
            let ttft = ttft_ms.expect("ttft measured");
            assert!(ttft > 0.0 && ttft <= *total_ms);
        }
        _ => unreachable!(),
    }
    // The user message is announced as a `message` too.
    assert!(frames.iter().any(|f| matches!(f, ServerFrame::Message { message, .. } if message.role == Role::User && message.content == "hello there")));
}

/// Sends `text` as a new conversation and reads its reply: checks the text
/// is exact and stored whole, and returns how many deltas carried it.
async fn deltas_of_reply(text: &str) -> usize {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    client.send(&send(None, text, &uuid())).await;
    let ServerFrame::Accepted {
        conversation_id, ..
    } = client.next().await
    else {
        panic!("accepted first")
    };
    let frames = client.until_done(&conversation_id).await;
    let expected = reply_tokens(text).concat();
    assert_eq!(delta_text(&frames), expected);
    assert_eq!(
        client
            .snapshot(&conversation_id)
            .await
            .last()
            .map(|m| m.content.clone()),
        Some(expected),
        "stored whole"
    );
    frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Delta { .. }))
        .count()
}

#[tokio::test]
async fn a_burst_of_tokens_goes_out_in_fewer_deltas_with_the_same_text() {
    // 200 tokens arrive in one write: a handful of deltas, not 200.
    let deltas = deltas_of_reply("[[burst]] [[tokens:200]] go").await;
    assert!(deltas <= 20, "{deltas} deltas for one burst of 200 tokens");
}

#[tokio::test]
async fn tokens_already_received_in_separate_chunks_share_a_delta() {
    // The upstream writes 200 tokens back to back, each its own HTTP chunk
    // and SSE event (a fast model). The HTTP client hands them over one at a
    // time; the reply still joins what has already arrived.
    let deltas = deltas_of_reply("[[delay:0]] [[tokens:200]] go").await;
    assert!(
        deltas <= 20,
        "{deltas} deltas for 200 tokens sent back to back"
    );
}

#[tokio::test]
async fn reply_is_stored_and_snapshot_shows_history() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("remember me").await;
    client.until_done(&conversation).await;
    client
        .send(&ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        })
        .await;
    match client.next().await {
        ServerFrame::Snapshot {
            messages,
            streaming,
            ..
        } => {
            assert!(streaming.is_none());
            assert_eq!(messages.len(), 2);
            assert_eq!(messages[0].content, "remember me");
            assert_eq!(messages[1].content, reply_tokens("remember me").concat());
            assert_eq!(messages[1].finish_reason, Some(FinishReason::Stop));
        }
        other => panic!("expected snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn duplicate_client_msg_id_reaches_the_upstream_once() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let id = uuid();
    client.send(&send(None, "once please", &id)).await;
    let ServerFrame::Accepted {
        conversation_id,
        message_id,
        ..
    } = client.next().await
    else {
        panic!("accepted")
    };
    client.until_done(&conversation_id).await;
    // The same frame again (a client retry after a reconnect, say), also from another socket.
    client.send(&send(None, "once please", &id)).await;
    let mut other_tab = server.connect(&client.cookie).await;
    other_tab.send(&send(None, "once please", &id)).await;
    for socket in [&mut client, &mut other_tab] {
        match socket
            .until(|f| matches!(f, ServerFrame::Accepted { .. }))
            .await
        {
            ServerFrame::Accepted {
                duplicate,
                conversation_id: c,
                message_id: m,
                ..
            } => {
                assert!(duplicate);
                assert_eq!(c, conversation_id);
                assert_eq!(m, message_id);
            }
            _ => unreachable!(),
        }
    }
    // A ping round trip proves no reply was started in between.
    client.send(&ClientFrame::Ping { nonce: 9.into() }).await;
    let pong = client
        .until(|f| matches!(f, ServerFrame::Pong { .. } | ServerFrame::Delta { .. }))
        .await;
    assert!(
        matches!(pong, ServerFrame::Pong { .. }),
        "no new reply streamed"
    );
    assert_eq!(server.stats().requests(), 1);
}

#[tokio::test]
async fn another_users_conversation_is_not_found() {
    let server = TestServer::start(|_| {}).await;
    let mut alice = server.user().await;
    let mut bob = server.user().await;
    let conversation = alice.start_conversation("private").await;
    for frame in [
        ClientFrame::Subscribe {
            conversation_id: conversation.clone(),
        },
        send(Some(&conversation), "let me in", &uuid()),
        ClientFrame::Stop {
            conversation_id: conversation.clone(),
        },
        ClientFrame::Regenerate {
            conversation_id: conversation.clone(),
            client_msg_id: uuid().as_str().into(),
        },
    ] {
        bob.send(&frame).await;
        match bob.next().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotFound, "{frame:?}"),
            other => panic!("expected not_found for {frame:?}, got {other:?}"),
        }
    }
    // Alice's reply was not affected (bob's stop did nothing).
    let frames = alice.until_done(&conversation).await;
    assert_eq!(delta_text(&frames), reply_tokens("private").concat());
    assert!(matches!(
        done_of(&frames),
        ServerFrame::Done {
            finish_reason: FinishReason::Stop,
            ..
        }
    ));
}

#[tokio::test]
async fn two_sockets_of_one_user_both_see_the_stream() {
    let server = TestServer::start(|_| {}).await;
    let mut tab1 = server.user().await;
    let mut tab2 = server.connect(&tab1.cookie).await;
    let conversation = tab1.start_conversation("first").await;
    tab1.until_done(&conversation).await;
    tab2.send(&ClientFrame::Subscribe {
        conversation_id: conversation.clone(),
    })
    .await;
    // (Told of the new conversation first: a `changed` notice.)
    tab2.until(|f| matches!(f, ServerFrame::Snapshot { .. }))
        .await;
    tab1.send(&send(Some(&conversation), "[[long]] second", &uuid()))
        .await;
    let f1 = tab1.until_done(&conversation).await;
    let f2 = tab2.until_done(&conversation).await;
    let expected = reply_tokens("[[long]] second").concat();
    assert_eq!(delta_text(&f1), expected);
    assert_eq!(delta_text(&f2), expected);
    assert!(
        f2.iter().any(|f| matches!(f, ServerFrame::Message { message, .. } if message.content == "[[long]] second")),
        "the other tab sees the user message"
    );
}

#[tokio::test]
async fn resume_after_a_mid_stream_disconnect_yields_exact_text() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let text = "[[long]] [[delay:20]] tell me a story";
    let conversation = client.start_conversation(text).await;
    // Read a few deltas, then vanish.
    let mut seen = 0;
    while seen < 5 {
        if let ServerFrame::Delta { .. } = client.next().await {
            seen += 1;
        }
    }
    let cookie = client.cookie.clone();
    drop(client);
    let mut back = server.connect(&cookie).await;
    back.send(&ClientFrame::Subscribe {
        conversation_id: conversation.clone(),
    })
    .await;
    let ServerFrame::Snapshot {
        streaming: Some(streaming),
        ..
    } = back.next().await
    else {
        panic!("snapshot with the reply in progress")
    };
    assert!(
        streaming.next_index >= 5,
        "the text so far is in the snapshot"
    );
    let mut text_so_far = streaming.message.content.clone();
    let mut expected_index = streaming.next_index;
    let frames = back.until_done(&conversation).await;
    for frame in &frames {
        if let ServerFrame::Delta { index, text, .. } = frame {
            assert_eq!(*index, expected_index, "no gap, no repeat");
            expected_index += 1;
            text_so_far.push_str(text);
        }
    }
    assert_eq!(text_so_far, reply_tokens(text).concat());
}

#[tokio::test]
async fn a_reply_completes_and_is_stored_with_no_socket_connected() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let text = "[[long]] [[delay:10]] while I'm away";
    let conversation = client.start_conversation(text).await;
    let cookie = client.cookie.clone();
    drop(client);
    // The fake counts the stream as completed only if it ran to [DONE].
    let stats = server.fake.stats.clone();
    tokio::time::timeout(Duration::from_secs(10), stats.wait_completed(1))
        .await
        .expect("the upstream stream runs to its end without any socket");
    assert_eq!(stats.aborted(), 0);
    // Once stored (right after the upstream ends), a new socket sees the whole reply.
    let mut back = server.connect(&cookie).await;
    let stored = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            back.send(&ClientFrame::Subscribe {
                conversation_id: conversation.clone(),
            })
            .await;
            if let ServerFrame::Snapshot {
                messages,
                streaming: None,
                ..
            } = back.next().await
            {
                return messages;
            }
        }
    })
    .await
    .expect("stored");
    assert_eq!(stored[1].content, reply_tokens(text).concat());
    assert_eq!(stored[1].finish_reason, Some(FinishReason::Stop));
}

#[tokio::test]
async fn stop_aborts_the_upstream_request_and_keeps_the_partial_text() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client
        .start_conversation("[[long]] [[delay:30]] go on")
        .await;
    let mut partial = String::new();
    while partial.split_whitespace().count() < 3 {
        if let ServerFrame::Delta { text, .. } = client.next().await {
            partial.push_str(&text);
        }
    }
    client
        .send(&ClientFrame::Stop {
            conversation_id: conversation.clone(),
        })
        .await;
    let frames = client.until_done(&conversation).await;
    let ServerFrame::Done { finish_reason, .. } = done_of(&frames) else {
        unreachable!()
    };
    assert_eq!(*finish_reason, FinishReason::Stopped);
    tokio::time::timeout(Duration::from_secs(5), server.stats().wait_aborted(1))
        .await
        .expect("the fake saw its stream dropped");
    partial.push_str(&delta_text_any(&frames));
    let messages = client.snapshot(&conversation).await;
    assert_eq!(messages[1].content, partial, "the partial text is stored");
    assert_eq!(messages[1].finish_reason, Some(FinishReason::Stopped));
    assert!(messages[1].content.len() < reply_tokens("[[long]]").concat().len());
}

/// Delta text without index checks (for frames that start mid-stream).
fn delta_text_any(frames: &[ServerFrame]) -> String {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Delta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn second_send_while_streaming_is_busy() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("[[long]] [[delay:20]] one").await;
    let id = uuid();
    client.send(&send(Some(&conversation), "two", &id)).await;
    match client
        .until(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error {
            code,
            client_msg_id,
            ..
        } => {
            assert_eq!(code, ErrorCode::Busy);
            assert_eq!(client_msg_id.map(|c| c.0), Some(id));
        }
        _ => unreachable!(),
    }
    client.until_done(&conversation).await;
    // Different conversations run concurrently.
    let mut other = server.connect(&client.cookie).await;
    let a = client.start_conversation("[[delay:20]] a").await;
    let b = other.start_conversation("[[delay:20]] b").await;
    assert_ne!(a, b);
    client.until_done(&a).await;
    other.until_done(&b).await;
}

#[tokio::test]
async fn regenerate_replaces_the_last_reply() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("again").await;
    let first = client.until_done(&conversation).await;
    let ServerFrame::Done {
        message_id: first_id,
        ..
    } = done_of(&first).clone()
    else {
        unreachable!()
    };
    client
        .send(&ClientFrame::Regenerate {
            conversation_id: conversation.clone(),
            client_msg_id: uuid().as_str().into(),
        })
        .await;
    assert!(matches!(
        client.next().await,
        ServerFrame::Accepted {
            duplicate: false,
            ..
        }
    ));
    let frames = client.until_done(&conversation).await;
    let ServerFrame::Snapshot {
        messages,
        streaming: Some(_),
        ..
    } = &frames[0]
    else {
        panic!("views are reset with a snapshot first, got {:?}", frames[0])
    };
    assert_eq!(messages.len(), 1, "the old reply is gone");
    assert_eq!(delta_text(&frames), reply_tokens("again").concat());
    let ServerFrame::Done { message_id, .. } = done_of(&frames) else {
        unreachable!()
    };
    assert_ne!(*message_id, first_id);
    let messages = client.snapshot(&conversation).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].id, *message_id);
    assert_eq!(server.stats().requests(), 2);
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_nonce() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    client
        .send(&ClientFrame::Ping {
            nonce: "n-1".into(),
        })
        .await;
    assert_eq!(
        client.next().await,
        ServerFrame::Pong {
            nonce: "n-1".into()
        }
    );
}

#[tokio::test]
async fn the_model_sees_the_persona_and_a_trimmed_history() {
    let server = TestServer::start(|c| c.limits.history_messages = 3).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("one").await;
    client.until_done(&conversation).await;
    for text in ["two", "three"] {
        client.send(&send(Some(&conversation), text, &uuid())).await;
        client.until_done(&conversation).await;
    }
    let messages = server
        .stats()
        .last_messages
        .lock()
        .expect("lock")
        .clone()
        .expect("a request was seen");
    let messages = messages.as_array().expect("array");
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"]
        .as_str()
        .expect("text")
        .contains("sweet AI Girlfriend"));
    let rest: Vec<&str> = messages[1..]
        .iter()
        .map(|m| m["content"].as_str().expect("text"))
        .collect();
    assert_eq!(rest.len(), 3, "history window of 3");
    assert_eq!(rest[2], "three");
    assert_eq!(rest[0], "two");
}

/// The prompt of a conversation that stays open comes from its prompt
/// window in memory, not from the store: it must hold exactly what the
/// store would return, each finished reply included, in order.
#[tokio::test]
async fn a_live_conversations_prompt_holds_every_message_and_reply_in_order() {
    let server = TestServer::start(|c| c.limits.history_messages = 4).await;
    let mut client = server.user().await;
    let conversation = client.start_conversation("one").await;
    client.until_done(&conversation).await;
    for text in ["two", "three"] {
        client.send(&send(Some(&conversation), text, &uuid())).await;
        client.until_done(&conversation).await;
    }
    let messages = server
        .stats()
        .last_messages
        .lock()
        .expect("lock")
        .clone()
        .expect("a request was seen");
    let said: Vec<(String, String)> = messages.as_array().expect("array")[1..]
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().expect("text").to_owned();
            (text("role"), text("content"))
        })
        .collect();
    let turn = |role: &str, text: &str| (role.to_owned(), text.to_owned());
    assert_eq!(
        said,
        [
            turn("assistant", "You said: one"),
            turn("user", "two"),
            turn("assistant", "You said: two"),
            turn("user", "three"),
        ],
        "the newest 4 messages, replies included"
    );
}

#[tokio::test]
async fn a_persona_can_be_chosen_for_a_new_conversation_and_unknown_ones_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let mut client = server.user().await;
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: None,
            text: "hi coach".into(),
            persona: Some("coach".into()),
            greeting: None,
            model: None,
        })
        .await;
    let ServerFrame::Accepted {
        conversation_id, ..
    } = client.next().await
    else {
        panic!("accepted")
    };
    client.until_done(&conversation_id).await;
    let system = server
        .stats()
        .last_messages
        .lock()
        .expect("lock")
        .clone()
        .expect("seen")[0]["content"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(system.contains("coach"), "{system}");
    client
        .send(&ClientFrame::Send {
            client_msg_id: uuid().as_str().into(),
            conversation_id: None,
            text: "hi".into(),
            persona: Some("nobody".into()),
            greeting: None,
            model: None,
        })
        .await;
    assert!(matches!(
        client.next().await,
        ServerFrame::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
}

#[tokio::test]
async fn hundred_concurrent_users_get_only_their_own_replies() {
    let server = TestServer::start(|_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut client = server.user().await;
        tasks.push(tokio::spawn(async move {
            let text = format!("user {i} secret {}", uuid());
            let conversation = client.start_conversation(&text).await;
            let frames = client.until_done(&conversation).await;
            for frame in &frames {
                if let Some(c) = frame.conversation_id() {
                    assert_eq!(*c, conversation, "only my conversation's frames");
                }
            }
            assert_eq!(delta_text(&frames), reply_tokens(&text).concat());
        }));
    }
    for task in tasks {
        task.await.expect("user task");
    }
    assert_eq!(server.stats().requests(), 100);
}

#[tokio::test]
async fn upstream_concurrency_is_capped_and_extra_replies_wait_in_line() {
    let server = TestServer::start(|c| c.limits.max_concurrent_upstream = 2).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let mut client = server.user().await;
        tasks.push(tokio::spawn(async move {
            let text = format!("[[delay:15]] queued {i}");
            let conversation = client.start_conversation(&text).await;
            let frames = client.until_done(&conversation).await;
            assert_eq!(delta_text(&frames), reply_tokens(&text).concat());
        }));
    }
    for task in tasks {
        task.await.expect("user task");
    }
    let stats = server.stats();
    assert_eq!(stats.requests(), 6, "every reply ran");
    assert_eq!(
        stats
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "never more than the cap at once"
    );
}

#[tokio::test]
async fn conversations_are_listed_searched_renamed_and_deleted_per_user() {
    let server = TestServer::start(|_| {}).await;
    let mut alice = server.user().await;
    let mut bob = server.user().await;
    let trip = alice.start_conversation("Plan a beach trip").await;
    alice.until_done(&trip).await;
    let work = alice
        .start_conversation("Work worries [[long]] [[delay:20]]")
        .await;
    let theirs = bob.start_conversation("bob's beach").await;
    bob.until_done(&theirs).await;

    let items = alice
        .conversations(ClientFrame::ListConversations { query: None })
        .await;
    let ids: Vec<_> = items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        ids,
        vec![work.clone(), trip.clone()],
        "newest first, only mine"
    );

    let items = alice
        .conversations(ClientFrame::ListConversations {
            query: Some("beach".into()),
        })
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, trip, "matched by message text");

    let items = alice
        .conversations(ClientFrame::RenameConversation {
            conversation_id: trip.clone(),
            title: "  Summer  ".into(),
        })
        .await;
    assert!(items.iter().any(|c| c.id == trip && c.title == "Summer"));

    // Bob can neither rename nor delete Alice's conversation.
    for frame in [
        ClientFrame::RenameConversation {
            conversation_id: trip.clone(),
            title: "x".into(),
        },
        ClientFrame::DeleteConversation {
            conversation_id: trip.clone(),
        },
    ] {
        bob.send(&frame).await;
        assert!(matches!(
            bob.next().await,
            ServerFrame::Error {
                code: ErrorCode::NotFound,
                ..
            }
        ));
    }

    // Deleting a conversation whose reply is streaming stops it and removes it.
    let items = alice
        .conversations(ClientFrame::DeleteConversation {
            conversation_id: work.clone(),
        })
        .await;
    assert_eq!(
        items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![trip.clone()]
    );
    tokio::time::timeout(Duration::from_secs(5), server.stats().wait_aborted(1))
        .await
        .expect("the deleted conversation's upstream request was dropped");
    alice
        .send(&ClientFrame::Subscribe {
            conversation_id: work,
        })
        .await;
    assert!(matches!(
        alice
            .until(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Snapshot { .. }))
            .await,
        ServerFrame::Error {
            code: ErrorCode::NotFound,
            ..
        }
    ));
    alice
        .send(&ClientFrame::RenameConversation {
            conversation_id: trip,
            title: "   ".into(),
        })
        .await;
    assert!(matches!(
        alice
            .until(|f| matches!(f, ServerFrame::Error { .. }))
            .await,
        ServerFrame::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
}

#[tokio::test]
async fn a_socket_follows_at_most_the_cap_dropping_the_least_recently_used() {
    let server = TestServer::start(|c| c.limits.max_subscriptions_per_socket = 2).await;
    let mut tab = server.user().await;
    let mut started = Vec::new();
    for text in ["one", "two", "three"] {
        let conversation = tab.start_conversation(text).await;
        tab.until_done(&conversation).await;
        started.push(conversation);
    }
    let [first, second, third] = &started[..] else {
        unreachable!()
    };
    // Another tab of the same user answers in the first and in the third.
    let mut other = server.connect(&tab.cookie).await;
    for conversation in [first, third] {
        other
            .send(&ClientFrame::Send {
                client_msg_id: common::uuid().as_str().into(),
                conversation_id: Some(conversation.clone()),
                text: "more".into(),
                persona: None,
                greeting: None,
                model: None,
            })
            .await;
        other.until_done(conversation).await;
    }
    // The first tab no longer follows the first conversation (dropped when
    // it started the third), and still follows the third.
    let frames = tab.until_done(third).await;
    assert!(
        frames.iter().all(|f| f.conversation_id() != Some(first)),
        "the least recently used conversation is no longer followed: {frames:?}"
    );
    // Subscribing again is never refused: it drops the least recently used (the second).
    let messages = tab.snapshot(first).await;
    assert_eq!(messages.len(), 4, "the first conversation, answered twice");
    for conversation in [second, first] {
        other
            .send(&ClientFrame::Send {
                client_msg_id: common::uuid().as_str().into(),
                conversation_id: Some(conversation.clone()),
                text: "and more".into(),
                persona: None,
                greeting: None,
                model: None,
            })
            .await;
        other.until_done(conversation).await;
    }
    let frames = tab.until_done(first).await;
    assert!(
        frames.iter().all(|f| f.conversation_id() != Some(second)),
        "the second conversation is no longer followed: {frames:?}"
    );
    server.shutdown().await;
}
