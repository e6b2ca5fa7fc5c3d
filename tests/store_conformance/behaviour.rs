//! The behaviours every store has, one `async fn` each, run per backend by
//! `conformance!` in `store_conformance.rs`.

use std::{sync::Arc, time::Duration};

use tether::{
    protocol::{ConversationId, FinishReason, Message, MessageId, Role, Usage, UserId},
    server::store::{
        ConversationRecord, MessagePage, NewUserMessage, ReplyRun, SendOutcome, Store, StoreError,
        Target,
    },
};

use crate::Subject;

/// A new conversation with persona `p`, titled `t`.
fn new_conversation() -> Target {
    Target::New {
        persona: "p".into(),
        title: "t".into(),
        greeting: None,
        model: "m".into(),
    }
}

fn new_msg(user: &str, key: &str, target: Target) -> NewUserMessage {
    NewUserMessage {
        user_id: user.into(),
        client_msg_id: key.into(),
        target,
        text: "hello".into(),
        history: 40,
        run: run("r"),
        replaces: None,
    }
}

/// A run of instance `i` with token `token`.
fn run(token: &str) -> ReplyRun {
    ReplyRun {
        instance: "i".into(),
        token: token.into(),
    }
}

/// What a send must have stored.
fn stored(outcome: SendOutcome) -> (ConversationRecord, Message, Message) {
    match outcome {
        SendOutcome::Stored {
            conversation,
            message,
            reply,
            ..
        } => (conversation, message, reply),
        SendOutcome::Duplicate { .. } => panic!("stored, not a duplicate"),
    }
}

/// A new conversation of user `u` with its first message and the reply's
/// empty message.
async fn stored_with_reply(s: &dyn Store) -> (ConversationRecord, Message) {
    let (conversation, _, reply) = stored(
        s.add_user_message(new_msg("u", "k", new_conversation()))
            .await
            .expect("stored"),
    );
    (conversation, reply)
}

/// A conversation of `u` whose first reply finished: free for a new one.
async fn idle_conversation(s: &dyn Store) -> ConversationRecord {
    let (conversation, reply) = stored_with_reply(s).await;
    s.finish_assistant(&reply.id, "r", "done", FinishReason::Stop, None)
        .await
        .expect("finish");
    conversation
}

async fn messages(s: &dyn Store, conversation: &ConversationId) -> Vec<Message> {
    s.messages(conversation).await.expect("messages")
}

pub async fn same_client_msg_id_is_stored_once(subject: Subject) {
    let s = &*subject.store;
    let (conversation, message, _) = stored(
        s.add_user_message(new_msg("u", "k1", new_conversation()))
            .await
            .expect("stored"),
    );
    match s
        .add_user_message(new_msg("u", "k1", new_conversation()))
        .await
        .expect("answered")
    {
        SendOutcome::Duplicate {
            conversation_id,
            message_id,
        } => {
            assert_eq!(conversation_id, conversation.id);
            assert_eq!(message_id, message.id);
        }
        SendOutcome::Stored { .. } => panic!("duplicate was stored twice"),
    }
    assert_eq!(
        messages(s, &conversation.id).await.len(),
        2,
        "one user message and its reply's message, once"
    );
    assert_eq!(
        s.find_client_message(&"u".into(), &"k1".into())
            .await
            .expect("lookup"),
        Some((conversation.id.clone(), message.id.clone()))
    );
    assert_eq!(
        s.find_client_message(&"someone else".into(), &"k1".into())
            .await
            .expect("lookup"),
        None,
        "keys are per user"
    );
}

pub async fn concurrent_duplicates_from_two_instances_store_one_message(subject: Subject) {
    let other = subject.another_instance().await;
    let conversation = idle_conversation(&*subject.store).await;
    let send = |s: Arc<dyn Store>, instance: &str| {
        let mut msg = new_msg("u", "same", Target::Existing(conversation.id.clone()));
        msg.run = ReplyRun::new(instance);
        tokio::spawn(async move { s.add_user_message(msg).await })
    };
    let a = send(subject.store.clone(), "a");
    let b = send(other, "b");
    let outcomes = [
        a.await.expect("task").expect("answered"),
        b.await.expect("task").expect("answered"),
    ];
    let stored_ids: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            SendOutcome::Stored { message, .. } => Some(message.id.clone()),
            SendOutcome::Duplicate { .. } => None,
        })
        .collect();
    assert_eq!(stored_ids.len(), 1, "exactly one stored: {outcomes:?}");
    let duplicate = outcomes
        .iter()
        .find_map(|o| match o {
            SendOutcome::Duplicate { message_id, .. } => Some(message_id.clone()),
            SendOutcome::Stored { .. } => None,
        })
        .expect("the other is a duplicate");
    assert_eq!(
        duplicate, stored_ids[0],
        "the duplicate names the stored one"
    );
    assert_eq!(
        messages(&*subject.store, &conversation.id).await.len(),
        4,
        "the first exchange, then one user message and one reply"
    );
}

pub async fn a_send_to_another_users_conversation_is_not_found(subject: Subject) {
    let s = &*subject.store;
    let (conversation, _, _) = stored(
        s.add_user_message(new_msg("alice", "k", new_conversation()))
            .await
            .expect("stored"),
    );
    let bob: UserId = "bob".into();
    assert!(matches!(
        s.conversation(&bob, &conversation.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.add_user_message(new_msg(
            "bob",
            "k2",
            Target::Existing(conversation.id.clone())
        ))
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.find_client_message(&bob, &"k2".into())
            .await
            .expect("lookup")
            .is_none(),
        "the refused send left no key"
    );
    assert!(s
        .list_conversations(&bob, None)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        s.conversation(&"alice".into(), &conversation.id)
            .await
            .expect("the owner's"),
        conversation
    );
}

pub async fn a_refused_send_stores_nothing(subject: Subject) {
    let s = &*subject.store;
    let (conversation, _) = stored_with_reply(s).await;
    // A reply of another instance runs: the send is refused as a whole.
    let mut msg = new_msg("u", "k2", Target::Existing(conversation.id.clone()));
    msg.run = ReplyRun::new("other");
    assert!(matches!(
        s.add_user_message(msg).await,
        Err(StoreError::Busy)
    ));
    assert_eq!(messages(s, &conversation.id).await.len(), 2);
    assert!(s
        .find_client_message(&"u".into(), &"k2".into())
        .await
        .expect("lookup")
        .is_none());
    let unchanged = s
        .conversation(&"u".into(), &conversation.id)
        .await
        .expect("conversation");
    assert_eq!(unchanged.updated_at, conversation.updated_at, "not touched");
}

pub async fn messages_are_listed_oldest_first(subject: Subject) {
    let s = &*subject.store;
    let mut target = new_conversation();
    let mut expected = Vec::new();
    for n in 0..5 {
        let mut msg = new_msg("u", &format!("k{n}"), target.clone());
        msg.text = format!("m{n}");
        let (conversation, message, reply) = stored(s.add_user_message(msg).await.expect("stored"));
        s.finish_assistant(&reply.id, "r", &format!("r{n}"), FinishReason::Stop, None)
            .await
            .expect("finish");
        expected.extend([message.id, reply.id]);
        target = Target::Existing(conversation.id);
    }
    let Target::Existing(id) = target else {
        unreachable!()
    };
    let listed = messages(s, &id).await;
    let ids: Vec<_> = listed.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, expected);
    let texts: Vec<_> = listed.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts,
        ["m0", "r0", "m1", "r1", "m2", "r2", "m3", "r3", "m4", "r4"]
    );
    for message in &listed {
        assert_eq!(message.created_at.len(), 24, "{}", message.created_at);
        assert!(message.created_at.ends_with('Z'));
    }
}

pub async fn conversations_are_listed_most_recently_active_first_at_most_200(subject: Subject) {
    let s = &*subject.store;
    let mut first = None;
    for n in 0..201 {
        let mut msg = new_msg("u", &format!("k{n}"), new_conversation());
        msg.run = run(&format!("r{n}"));
        let (conversation, _, _) = stored(s.add_user_message(msg).await.expect("stored"));
        first.get_or_insert(conversation.id);
    }
    let first = first.expect("one");
    let listed = s.list_conversations(&"u".into(), None).await.expect("list");
    assert_eq!(listed.len(), 200, "at most 200");
    assert!(
        !listed.iter().any(|c| c.id == first),
        "the least recently active is the one left out"
    );
    assert!(listed
        .windows(2)
        .all(|pair| pair[0].updated_at >= pair[1].updated_at));
    // A new message makes the oldest the most recently active.
    let mut again = new_msg("u", "again", Target::Existing(first.clone()));
    again.run = run("r0");
    s.add_user_message(again).await.expect("stored");
    let listed = s.list_conversations(&"u".into(), None).await.expect("list");
    let touched = listed.iter().find(|c| c.id == first).expect("listed again");
    assert_eq!(
        touched.updated_at, listed[0].updated_at,
        "the newest activity (ties in one millisecond go by creation)"
    );
}

pub async fn search_finds_titles_and_message_text_of_the_user_only(subject: Subject) {
    let s = &*subject.store;
    let new = |title: &str| Target::New {
        persona: "p".into(),
        title: title.into(),
        greeting: None,
        model: "m".into(),
    };
    let mut msg = new_msg("alice", "k1", new("Beach trip"));
    msg.text = "let's plan".into();
    s.add_user_message(msg).await.expect("stored");
    let mut msg = new_msg("alice", "k2", new("Work"));
    msg.text = "the sea was 100% calm_today \\o/".into();
    s.add_user_message(msg).await.expect("stored");
    let mut msg = new_msg("bob", "k3", new("Beach for bob"));
    msg.text = "sea".into();
    s.add_user_message(msg).await.expect("stored");
    let alice: UserId = "alice".into();
    let titles = |v: Vec<ConversationRecord>| v.into_iter().map(|c| c.title).collect::<Vec<_>>();
    let search = |q: &'static str| {
        let alice = alice.clone();
        async move { titles(s.list_conversations(&alice, Some(q)).await.expect("search")) }
    };
    assert_eq!(
        titles(s.list_conversations(&alice, None).await.expect("list")).len(),
        2
    );
    assert_eq!(search("beach").await, ["Beach trip"], "case-insensitive");
    assert_eq!(search("SEA").await, ["Work"], "message text");
    assert_eq!(search("100%").await, ["Work"]);
    assert!(search("0%c").await.is_empty(), "% is literal");
    assert_eq!(search("calm_today").await, ["Work"]);
    assert!(search("calm_t_day").await.is_empty(), "_ is literal");
    assert_eq!(search("\\o/").await, ["Work"], "\\ is literal");
    assert_eq!(search("  ").await.len(), 2, "a blank query lists all");
}

pub async fn a_send_returns_the_newest_history_with_text_oldest_first(subject: Subject) {
    let s = &*subject.store;
    let mut target = new_conversation();
    let mut last_history = Vec::new();
    for n in 0..4 {
        let mut msg = new_msg("u", &format!("k{n}"), target.clone());
        msg.text = format!("m{n}");
        msg.history = 3;
        let SendOutcome::Stored {
            conversation,
            reply,
            history,
            ..
        } = s.add_user_message(msg).await.expect("stored")
        else {
            panic!("stored")
        };
        // Every other reply has text; the others stay empty (failed).
        let text = if n % 2 == 0 {
            format!("r{n}")
        } else {
            String::new()
        };
        s.finish_assistant(&reply.id, "r", &text, FinishReason::Stop, None)
            .await
            .expect("finished");
        target = Target::Existing(conversation.id);
        last_history = history;
    }
    let texts: Vec<_> = last_history.iter().map(|m| m.content.as_str()).collect();
    // m0 r0 m1 (empty) m2 r2 m3: the newest three with text.
    assert_eq!(texts, ["m2", "r2", "m3"]);
}

pub async fn renaming_and_deleting_take_the_owner(subject: Subject) {
    let s = &*subject.store;
    let (conversation, _) = stored_with_reply(s).await;
    let (owner, bob): (UserId, UserId) = ("u".into(), "bob".into());
    assert!(matches!(
        s.rename_conversation(&bob, &conversation.id, "mine now")
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_conversation(&bob, &conversation.id).await,
        Err(StoreError::NotFound)
    ));
    s.rename_conversation(&owner, &conversation.id, "Renamed")
        .await
        .expect("renamed");
    assert_eq!(
        s.conversation(&owner, &conversation.id)
            .await
            .expect("there")
            .title,
        "Renamed"
    );
    s.delete_conversation(&owner, &conversation.id)
        .await
        .expect("deleted");
    assert!(matches!(
        s.conversation(&owner, &conversation.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_conversation(&owner, &conversation.id).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn deleting_a_conversation_deletes_its_messages_and_keys(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    s.delete_conversation(&"u".into(), &conversation.id)
        .await
        .expect("deleted");
    assert!(messages(s, &conversation.id).await.is_empty());
    assert!(s
        .find_client_message(&"u".into(), &"k".into())
        .await
        .expect("lookup")
        .is_none());
    assert!(
        matches!(
            s.finish_assistant(&reply.id, "r", "late", FinishReason::Stop, None)
                .await,
            Err(StoreError::NotFound)
        ),
        "a reply of a deleted conversation is not found"
    );
    // The key is free again: the same client_msg_id makes a new conversation.
    let (again, _, _) = stored(
        s.add_user_message(new_msg("u", "k", new_conversation()))
            .await
            .expect("stored"),
    );
    assert_ne!(again.id, conversation.id);
}

pub async fn a_regenerate_key_is_recorded_once(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    let user: UserId = "u".into();
    assert!(s
        .record_client_message(&user, &"regen".into(), &conversation.id, &reply.id)
        .await
        .expect("recorded"));
    assert!(!s
        .record_client_message(&user, &"regen".into(), &conversation.id, &reply.id)
        .await
        .expect("answered"));
    assert_eq!(
        s.find_client_message(&user, &"regen".into())
            .await
            .expect("lookup"),
        Some((conversation.id.clone(), reply.id.clone()))
    );
}

pub async fn checkpoints_keep_partial_text_and_never_overwrite_a_finished_reply(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    s.checkpoint_assistant(&reply.id, "r", "Hel")
        .await
        .expect("cp");
    s.checkpoint_assistant(&reply.id, "r", "Hello, wo")
        .await
        .expect("cp");
    let partial = &messages(s, &conversation.id).await[1];
    assert_eq!(partial.content, "Hello, wo");
    assert_eq!(partial.finish_reason, None, "still streaming");

    assert_eq!(s.recover_interrupted().await.expect("recover"), 1);
    let recovered = &messages(s, &conversation.id).await[1];
    assert_eq!(recovered.content, "Hello, wo", "the checkpoint survives");
    assert_eq!(recovered.finish_reason, Some(FinishReason::Error));

    assert!(matches!(
        s.checkpoint_assistant(&reply.id, "r", "late").await,
        Err(StoreError::Fenced)
    ));
    let kept = &messages(s, &conversation.id).await[1];
    assert_eq!(
        kept.content, "Hello, wo",
        "a finished reply is not overwritten"
    );
    assert!(matches!(
        s.checkpoint_assistant(&"no-such-message".into(), "r", "x")
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn a_finished_reply_keeps_its_usage_and_touches_its_conversation(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    let usage = Usage {
        prompt_tokens: 12,
        completion_tokens: 34,
    };
    s.finish_assistant(&reply.id, "r", "Hi!", FinishReason::Length, Some(usage))
        .await
        .expect("finish");
    let finished = &messages(s, &conversation.id).await[1];
    assert_eq!(finished.content, "Hi!");
    assert_eq!(finished.finish_reason, Some(FinishReason::Length));
    let touched = s
        .conversation(&"u".into(), &conversation.id)
        .await
        .expect("conversation");
    assert!(touched.updated_at >= conversation.updated_at);
    assert!(
        matches!(
            s.finish_assistant(&reply.id, "r", "again", FinishReason::Stop, None)
                .await,
            Err(StoreError::Fenced)
        ),
        "finished once"
    );
    assert_eq!(messages(s, &conversation.id).await[1].content, "Hi!");
}

pub async fn a_reopened_reply_keeps_its_text_and_takes_checkpoints_again(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    s.finish_assistant(&reply.id, "r", "Hello, wo", FinishReason::Error, None)
        .await
        .expect("finish");
    assert!(
        matches!(
            s.reopen_assistant(&reply.id, FinishReason::Length, &run("r2"))
                .await,
            Err(StoreError::NotFound)
        ),
        "only from the finish reason it has"
    );
    s.reopen_assistant(&reply.id, FinishReason::Error, &run("r2"))
        .await
        .expect("reopen");
    let reopened = &messages(s, &conversation.id).await[1];
    assert_eq!(reopened.content, "Hello, wo");
    assert_eq!(reopened.finish_reason, None);
    assert!(matches!(
        s.checkpoint_assistant(&reply.id, "r", "stale run").await,
        Err(StoreError::Fenced)
    ));
    s.checkpoint_assistant(&reply.id, "r2", "Hello, world")
        .await
        .expect("cp");
    assert_eq!(s.recover_interrupted().await.expect("recover"), 1);
    let recovered = &messages(s, &conversation.id).await[1];
    assert_eq!(recovered.content, "Hello, world");
    assert_eq!(recovered.finish_reason, Some(FinishReason::Error));
    let user_message = &messages(s, &conversation.id).await[0];
    assert!(
        matches!(
            s.reopen_assistant(&user_message.id, FinishReason::Error, &run("r3"))
                .await,
            Err(StoreError::NotFound)
        ),
        "never a user message"
    );
}

pub async fn interrupted_assistant_messages_are_recovered_as_errors(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    assert_eq!(s.recover_interrupted().await.expect("recovered"), 1);
    let listed = messages(s, &conversation.id).await;
    assert_eq!(listed[1].id, reply.id);
    assert_eq!(listed[1].finish_reason, Some(FinishReason::Error));
    assert_eq!(s.recover_interrupted().await.expect("again"), 0);
}

pub async fn one_unfinished_reply_per_conversation_and_only_its_run_writes_it(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    let other = ReplyRun {
        instance: "other".into(),
        token: "o".into(),
    };
    assert!(
        matches!(
            s.start_assistant(&conversation.id, &other, None).await,
            Err(StoreError::Busy)
        ),
        "another instance's reply is unfinished"
    );
    assert!(matches!(
        s.finish_assistant(&reply.id, "o", "x", FinishReason::Stop, None)
            .await,
        Err(StoreError::Fenced)
    ));
    // The same instance's leftover (its final write failed) is closed.
    let again = s
        .start_assistant(&conversation.id, &run("r4"), None)
        .await
        .expect("own leftover closed");
    let listed = messages(s, &conversation.id).await;
    assert_eq!(listed[1].finish_reason, Some(FinishReason::Error));
    assert_eq!(listed[2].id, again.id);
    // Reopening a finished reply while another runs is busy too.
    assert!(matches!(
        s.reopen_assistant(&reply.id, FinishReason::Error, &other)
            .await,
        Err(StoreError::Busy)
    ));
    assert_eq!(
        messages(s, &conversation.id).await[1].finish_reason,
        Some(FinishReason::Error),
        "the refused reopen changed nothing"
    );
}

pub async fn two_instances_starting_replies_at_once_get_one_busy(subject: Subject) {
    let other = subject.another_instance().await;
    let conversation = idle_conversation(&*subject.store).await;
    let start = |s: Arc<dyn Store>, instance: &str| {
        let (id, run) = (conversation.id.clone(), ReplyRun::new(instance));
        tokio::spawn(async move { s.start_assistant(&id, &run, None).await })
    };
    let a = start(subject.store.clone(), "a");
    let b = start(other, "b");
    let results = [a.await.expect("task"), b.await.expect("task")];
    let started = results.iter().filter(|r| r.is_ok()).count();
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Busy)))
        .count();
    assert_eq!((started, busy), (1, 1), "{results:?}");
    let unfinished = messages(&*subject.store, &conversation.id)
        .await
        .into_iter()
        .filter(|m| m.role == Role::Assistant && m.finish_reason.is_none())
        .count();
    assert_eq!(unfinished, 1);
}

pub async fn orphans_are_the_replies_of_silent_instances_and_are_recovered_once(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    s.checkpoint_assistant(&reply.id, "r", "Hel")
        .await
        .expect("cp");
    // A second conversation whose reply runs on a live instance.
    let mut alive = new_msg("u", "k2", new_conversation());
    alive.run = ReplyRun::new("alive");
    stored(s.add_user_message(alive).await.expect("stored"));
    s.heartbeat("alive").await.expect("heartbeat");
    s.heartbeat("alive").await.expect("heartbeat again");
    let orphans = s
        .orphaned_replies(Duration::from_secs(60))
        .await
        .expect("orphans");
    assert_eq!(
        orphans.len(),
        1,
        "only the never-seen instance's: {orphans:?}"
    );
    assert_eq!(orphans[0].message_id, reply.id);
    assert_eq!(orphans[0].conversation_id, conversation.id);
    assert_eq!(orphans[0].run, "r");
    assert_eq!(orphans[0].content, "Hel");
    s.heartbeat("i").await.expect("heartbeat");
    assert!(
        s.orphaned_replies(Duration::from_secs(60))
            .await
            .expect("orphans")
            .is_empty(),
        "its instance is alive"
    );
    assert!(s
        .recover_reply(&reply.id, "r", "Hello")
        .await
        .expect("recover"));
    assert!(
        !s.recover_reply(&reply.id, "r", "Hello")
            .await
            .expect("again"),
        "recovered once"
    );
    let recovered = &messages(s, &conversation.id).await[1];
    assert_eq!(recovered.content, "Hello");
    assert_eq!(recovered.finish_reason, Some(FinishReason::Error));
}

pub async fn writes_of_a_recovered_run_are_fenced(subject: Subject) {
    let s = &*subject.store;
    let (conversation, reply) = stored_with_reply(s).await;
    s.checkpoint_assistant(&reply.id, "r", "Hel")
        .await
        .expect("cp");
    let other = subject.another_instance().await;
    assert!(other
        .recover_reply(&reply.id, "r", "Hel")
        .await
        .expect("recovered by another instance"));
    assert!(matches!(
        s.checkpoint_assistant(&reply.id, "r", "Hello, w").await,
        Err(StoreError::Fenced)
    ));
    assert!(matches!(
        s.finish_assistant(&reply.id, "r", "Hello, world", FinishReason::Stop, None)
            .await,
        Err(StoreError::Fenced)
    ));
    let kept = &messages(s, &conversation.id).await[1];
    assert_eq!(kept.content, "Hel", "exactly what was recovered");
    assert_eq!(kept.finish_reason, Some(FinishReason::Error));
    // Regenerating at once: the conversation is free for a new reply.
    s.start_assistant(&conversation.id, &ReplyRun::new("other"), None)
        .await
        .expect("not busy");
}

pub async fn the_first_shared_setting_wins(subject: Subject) {
    let s = &*subject.store;
    assert_eq!(s.shared_setting("k", "a").await.expect("set"), "a");
    assert_eq!(s.shared_setting("k", "b").await.expect("kept"), "a");
    assert_eq!(s.shared_setting("k2", "b").await.expect("set"), "b");
}

pub async fn two_instances_proposing_a_shared_setting_at_once_agree(subject: Subject) {
    let other = subject.another_instance().await;
    let propose = |s: Arc<dyn Store>, value: &'static str| {
        tokio::spawn(async move { s.shared_setting("session_secret", value).await })
    };
    let a = propose(subject.store.clone(), "from a");
    let b = propose(other, "from b");
    let (a, b) = (
        a.await.expect("task").expect("a"),
        b.await.expect("task").expect("b"),
    );
    assert_eq!(a, b, "both see the first writer's value");
    assert!(a == "from a" || a == "from b", "{a}");
    assert_eq!(
        subject
            .store
            .shared_setting("session_secret", "later")
            .await
            .expect("kept"),
        a
    );
}

pub async fn ping_answers(subject: Subject) {
    subject.store.ping().await.expect("the database answers");
}

/// A conversation of `u` with `pairs` exchanges (user, then its finished
/// reply), sent with the keys `<key>-<n>`; its message ids, oldest first.
async fn long_conversation(
    s: &dyn Store,
    key: &str,
    pairs: usize,
) -> (ConversationId, Vec<MessageId>) {
    let mut target = new_conversation();
    let mut ids = Vec::new();
    for n in 0..pairs {
        let mut msg = new_msg("u", &format!("{key}-{n}"), target.clone());
        msg.text = format!("m{n}");
        let (conversation, message, reply) = stored(s.add_user_message(msg).await.expect("stored"));
        s.finish_assistant(&reply.id, "r", &format!("r{n}"), FinishReason::Stop, None)
            .await
            .expect("finish");
        ids.extend([message.id, reply.id]);
        target = Target::Existing(conversation.id);
    }
    let Target::Existing(id) = target else {
        unreachable!("at least one exchange")
    };
    (id, ids)
}

fn ids_of(page: &MessagePage) -> Vec<MessageId> {
    page.messages.iter().map(|m| m.id.clone()).collect()
}

pub async fn pages_before_a_cursor_walk_back_to_the_start_without_gaps(subject: Subject) {
    let s = &*subject.store;
    let (conversation, all) = long_conversation(s, "long", 12).await;
    let newest = s
        .messages_before(&conversation, None, 5)
        .await
        .expect("read")
        .expect("no cursor: the newest page");
    assert_eq!(ids_of(&newest), all[19..], "the newest five, oldest first");
    assert!(newest.has_more);
    let texts: Vec<_> = newest.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["r9", "m10", "r10", "m11", "r11"]);
    // Walk back to the start, five at a time: every message once, in order.
    let mut seen = ids_of(&newest);
    let mut page = newest;
    while page.has_more {
        let before = page.messages[0].id.clone();
        page = s
            .messages_before(&conversation, Some(&before), 5)
            .await
            .expect("read")
            .expect("a cursor of this conversation");
        assert!(!page.messages.is_empty());
        let mut ids = ids_of(&page);
        ids.extend(seen);
        seen = ids;
    }
    assert_eq!(seen, all, "no gap, no repeat, back to the first message");
    // Idempotent: the same cursor, the same page.
    let again = s
        .messages_before(&conversation, Some(&all[4]), 3)
        .await
        .expect("read")
        .expect("page");
    assert_eq!(ids_of(&again), all[1..4]);
    assert!(again.has_more);
    let first = s
        .messages_before(&conversation, Some(&all[3]), 3)
        .await
        .expect("read")
        .expect("page");
    assert_eq!(ids_of(&first), all[0..3]);
    assert!(!first.has_more, "exactly the rest: nothing older");
    let nothing = s
        .messages_before(&conversation, Some(&all[0]), 3)
        .await
        .expect("read")
        .expect("page");
    assert!(nothing.messages.is_empty() && !nothing.has_more);
    let whole = s
        .messages_before(&conversation, None, 100)
        .await
        .expect("read")
        .expect("page");
    assert_eq!(ids_of(&whole), all);
    assert!(!whole.has_more);
}

pub async fn a_cursor_of_another_conversation_is_no_cursor(subject: Subject) {
    let s = &*subject.store;
    let (conversation, _) = long_conversation(s, "one", 2).await;
    let (other, other_ids) = long_conversation(s, "two", 2).await;
    assert_ne!(conversation, other);
    for cursor in [other_ids[2].clone(), MessageId::from("no-such-message")] {
        let page = s
            .messages_before(&conversation, Some(&cursor), 10)
            .await
            .expect("read");
        assert_eq!(page, None, "{cursor}");
    }
    let unknown = s
        .messages_before(&ConversationId::from("no-such-conversation"), None, 10)
        .await
        .expect("read")
        .expect("no cursor to check");
    assert!(unknown.messages.is_empty() && !unknown.has_more);
}
