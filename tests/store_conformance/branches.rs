//! Swipes and branches: a conversation is a tree of which one path is
//! shown, read and prompted from. Run per backend by `conformance!`.

use tether::{
    protocol::{Alternatives, ConversationId, FinishReason, Message, MessageId, Role},
    server::store::{
        EditOutcome, NewUserMessage, ReplyEdit, ReplyRun, SendOutcome, Store, StoreError, Target,
    },
};

use crate::Subject;

fn run(token: &str) -> ReplyRun {
    ReplyRun {
        instance: "i".into(),
        token: token.into(),
    }
}

/// `text` sent by `u` (key `key`) to `target`, as an edit of `replaces`.
fn send(key: &str, target: Target, text: &str, replaces: Option<&MessageId>) -> NewUserMessage {
    NewUserMessage {
        user_id: "u".into(),
        client_msg_id: key.into(),
        target,
        text: text.into(),
        history: 40,
        run: run(key),
        replaces: replaces.cloned(),
    }
}

struct Sent {
    conversation: ConversationId,
    message: Message,
    reply: Message,
    history: Vec<Message>,
}

/// Stores a user message and finishes its reply with `answer`.
async fn exchange(s: &dyn Store, msg: NewUserMessage, answer: &str) -> Sent {
    let token = msg.run.token.clone();
    let SendOutcome::Stored {
        conversation,
        message,
        reply,
        history,
        ..
    } = s.add_user_message(msg).await.expect("stored")
    else {
        panic!("stored, not a duplicate");
    };
    s.finish_assistant(&reply.id, &token, answer, FinishReason::Stop, None)
        .await
        .expect("finished");
    Sent {
        conversation: conversation.id,
        message,
        reply,
        history,
    }
}

/// A new conversation "u1" answered "a1", then swiped: the second reply
/// (`second`, chosen) is returned with the first exchange.
async fn swiped(s: &dyn Store, second: &str) -> (Sent, Message) {
    let a = exchange(s, send("k1", new_conversation(), "u1", None), "a1").await;
    let swipe = s
        .start_assistant(&a.conversation, &run("r2"), Some(&a.reply.id))
        .await
        .expect("started");
    s.finish_assistant(&swipe.id, "r2", second, FinishReason::Stop, None)
        .await
        .expect("finished");
    (a, swipe)
}

/// The path shown: each message's text and alternatives.
async fn shown(
    s: &dyn Store,
    conversation: &ConversationId,
) -> Vec<(String, Option<Alternatives>)> {
    s.messages(conversation)
        .await
        .expect("messages")
        .into_iter()
        .map(|m| (m.content, m.alternatives))
        .collect()
}

fn at(index: u32, count: u32) -> Option<Alternatives> {
    Some(Alternatives { index, count })
}

fn new_conversation() -> Target {
    Target::New {
        persona: "p".into(),
        title: "t".into(),
        greeting: None,
        model: "m".into(),
    }
}

/// A regenerated reply replaces the last one on the path; the old one is
/// its alternative, can be chosen again, and the next message follows
/// whichever is chosen.
pub async fn a_regenerated_reply_keeps_the_one_it_replaces(subject: Subject) {
    let s = &*subject.store;
    let first = exchange(s, send("k1", new_conversation(), "hi", None), "one").await;
    let c = &first.conversation;
    let second = s
        .start_assistant(c, &run("r2"), Some(&first.reply.id))
        .await
        .expect("started");
    assert_eq!(
        second.alternatives,
        at(1, 2),
        "the new reply is the second of two"
    );
    s.finish_assistant(&second.id, "r2", "two", FinishReason::Stop, None)
        .await
        .expect("finished");
    assert_eq!(
        shown(s, c).await,
        vec![("hi".into(), None), ("two".into(), at(1, 2))]
    );
    s.select_alternative(c, &second.id, 0)
        .await
        .expect("chosen");
    assert_eq!(
        shown(s, c).await,
        vec![("hi".into(), None), ("one".into(), at(0, 2))]
    );
    // Choosing what is chosen changes nothing.
    s.select_alternative(c, &first.reply.id, 0)
        .await
        .expect("again");
    let next = exchange(
        s,
        send("k3", Target::Existing(c.clone()), "more", None),
        "three",
    )
    .await;
    let prompt: Vec<&str> = next.history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        prompt,
        ["hi", "one", "more"],
        "the prompt follows the chosen reply"
    );
    assert_eq!(
        shown(s, c).await,
        vec![
            ("hi".into(), None),
            ("one".into(), at(0, 2)),
            ("more".into(), None),
            ("three".into(), None),
        ]
    );
}

/// Editing an earlier user message starts a branch there; the earlier
/// branch is kept whole and comes back, as it was, when chosen again.
pub async fn an_edit_branches_and_the_earlier_branch_stays_whole(subject: Subject) {
    let s = &*subject.store;
    let a = exchange(s, send("k1", new_conversation(), "u1", None), "a1").await;
    let c = a.conversation.clone();
    let existing = || Target::Existing(c.clone());
    exchange(s, send("k2", existing(), "u2", None), "a2").await;
    let edit = exchange(
        s,
        send("k3", existing(), "u1 again", Some(&a.message.id)),
        "b1",
    )
    .await;
    assert_eq!(edit.message.alternatives, at(1, 2));
    let prompt: Vec<&str> = edit.history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        prompt,
        ["u1 again"],
        "nothing of the other branch reaches the prompt"
    );
    assert_eq!(
        shown(s, &c).await,
        vec![("u1 again".into(), at(1, 2)), ("b1".into(), None)]
    );
    s.select_alternative(&c, &edit.message.id, 0)
        .await
        .expect("back");
    assert_eq!(
        shown(s, &c).await,
        vec![
            ("u1".into(), at(0, 2)),
            ("a1".into(), None),
            ("u2".into(), None),
            ("a2".into(), None),
        ]
    );
    // Pages read the chosen path only.
    let page = s
        .messages_before(&c, None, 10)
        .await
        .expect("read")
        .expect("a page");
    let texts: Vec<&str> = page.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["u1", "a1", "u2", "a2"]);
    s.select_alternative(&c, &a.message.id, 1)
        .await
        .expect("forth");
    assert_eq!(
        shown(s, &c).await,
        vec![("u1 again".into(), at(1, 2)), ("b1".into(), None)]
    );
}

/// A swipe inside a branch is remembered when the branch is left and
/// chosen again.
pub async fn a_choice_inside_a_branch_is_remembered(subject: Subject) {
    let s = &*subject.store;
    let (a, _) = swiped(s, "a1 second").await;
    let c = a.conversation.clone();
    let edit = exchange(
        s,
        send(
            "k3",
            Target::Existing(c.clone()),
            "u1 edited",
            Some(&a.message.id),
        ),
        "b1",
    )
    .await;
    s.select_alternative(&c, &edit.message.id, 0)
        .await
        .expect("back");
    assert_eq!(
        shown(s, &c).await,
        vec![("u1".into(), at(0, 2)), ("a1 second".into(), at(1, 2))],
        "the second reply, chosen before the edit, is still the one shown"
    );
}

/// An assistant message's edit is a new alternative with the edited text;
/// its key stores it once; only the owner's messages can be edited.
pub async fn an_edited_reply_is_an_alternative_stored_once(subject: Subject) {
    let s = &*subject.store;
    let a = exchange(s, send("k1", new_conversation(), "u1", None), "a1").await;
    let c = a.conversation.clone();
    let edit = |user: &str, key: &str, text: &str| ReplyEdit {
        user_id: user.into(),
        client_msg_id: key.into(),
        conversation: c.clone(),
        of: a.reply.id.clone(),
        text: text.into(),
    };
    let EditOutcome::Stored(edited) = s
        .edit_reply(edit("u", "e1", "a1, better"))
        .await
        .expect("edit")
    else {
        panic!("stored");
    };
    assert_eq!(edited.role, Role::Assistant);
    assert_eq!(edited.finish_reason, Some(FinishReason::Stop));
    assert_eq!(edited.alternatives, at(1, 2));
    match s
        .edit_reply(edit("u", "e1", "a1, better"))
        .await
        .expect("again")
    {
        EditOutcome::Duplicate { message_id, .. } => assert_eq!(message_id, edited.id),
        EditOutcome::Stored(_) => panic!("a retried edit is stored once"),
    }
    assert!(matches!(
        s.edit_reply(edit("mallory", "e2", "mine")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        shown(s, &c).await,
        vec![("u1".into(), None), ("a1, better".into(), at(1, 2))]
    );
}

/// Choosing an alternative that does not exist, or of a message of
/// another conversation, is `NotFound` and changes nothing.
pub async fn choosing_what_does_not_exist_changes_nothing(subject: Subject) {
    let s = &*subject.store;
    let a = exchange(s, send("k1", new_conversation(), "u1", None), "a1").await;
    let b = exchange(s, send("k2", new_conversation(), "other", None), "b1").await;
    let before = shown(s, &a.conversation).await;
    assert!(matches!(
        s.select_alternative(&a.conversation, &a.reply.id, 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.select_alternative(&a.conversation, &b.reply.id, 0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.start_assistant(&a.conversation, &run("r9"), Some(&b.reply.id))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(shown(s, &a.conversation).await, before);
}

/// A conversation's whole tree reads back as it was stored by an import
/// (with the ids it was given), and the import shows its chosen path;
/// only the owner's conversations are listed and read.
pub async fn a_tree_imported_reads_back_the_same(subject: Subject) {
    let s = &*subject.store;
    let (a, _) = swiped(s, "a1 again").await;
    let user = "u".into();
    let mut tree = s
        .conversation_tree(&user, &a.conversation)
        .await
        .expect("tree");
    assert_eq!(tree.messages.len(), 3);
    assert_eq!(tree.messages[0].parent, None);
    assert_eq!(tree.messages[2].parent.as_ref(), Some(&a.message.id));
    assert!(!tree.messages[1].selected && tree.messages[2].selected);
    assert!(matches!(
        s.conversation_tree(&"mallory".into(), &a.conversation)
            .await,
        Err(StoreError::NotFound)
    ));

    // The same tree under fresh ids, as an import stores it.
    let fresh = |id: &MessageId| MessageId(format!("copy-{id}"));
    tree.conversation.id = ConversationId("copy".into());
    for m in &mut tree.messages {
        m.message.id = fresh(&m.message.id);
        m.parent = m.parent.as_ref().map(fresh);
    }
    let record = s
        .import_conversation(&"v".into(), tree.clone())
        .await
        .expect("imported");
    assert_eq!(record.user_id.as_str(), "v");
    let back = s
        .conversation_tree(&"v".into(), &record.id)
        .await
        .expect("read back");
    assert_eq!(back.messages, tree.messages);
    assert_eq!(
        shown(s, &record.id).await,
        vec![("u1".into(), None), ("a1 again".into(), at(1, 2))]
    );
    assert_eq!(
        s.conversation_ids(&"v".into()).await.expect("ids"),
        [record.id]
    );
    assert_eq!(
        s.conversation_ids(&user).await.expect("ids"),
        [a.conversation]
    );
}

/// Deleting a branch point takes everything after it on every branch; a
/// chosen alternative deleted gives its place to the one before it.
pub async fn deleting_a_branch_point_takes_what_follows_and_keeps_a_choice(subject: Subject) {
    let s = &*subject.store;
    let (a, swipe) = swiped(s, "a1 again").await;
    let c = a.conversation.clone();
    let third = s
        .start_assistant(&c, &run("r3"), Some(&swipe.id))
        .await
        .expect("started");
    s.finish_assistant(&third.id, "r3", "a1 third", FinishReason::Stop, None)
        .await
        .expect("finished");
    s.select_alternative(&c, &a.reply.id, 1)
        .await
        .expect("the second");
    exchange(s, send("k4", Target::Existing(c.clone()), "u2", None), "a2").await;
    assert_eq!(shown(s, &c).await.len(), 4);

    // The chosen one, with the branch after it: the one before is chosen.
    s.delete_message(&c, &swipe.id).await.expect("deleted");
    assert_eq!(
        shown(s, &c).await,
        vec![("u1".into(), None), ("a1".into(), at(0, 2))]
    );
    let tree = s.conversation_tree(&"u".into(), &c).await.expect("tree");
    assert_eq!(
        tree.messages.len(),
        3,
        "u2 and a2 went with their branch point"
    );
    // One not chosen: the choice stays.
    s.delete_message(&c, &third.id).await.expect("deleted");
    assert_eq!(
        shown(s, &c).await,
        vec![("u1".into(), None), ("a1".into(), None)]
    );
    assert!(matches!(
        s.delete_message(&c, &third.id).await,
        Err(StoreError::NotFound)
    ));
    // The first message: nothing is left to show, and the conversation goes on.
    s.delete_message(&c, &a.message.id).await.expect("deleted");
    assert_eq!(shown(s, &c).await, vec![]);
    let next = exchange(
        s,
        send("k5", Target::Existing(c.clone()), "again", None),
        "b",
    )
    .await;
    assert_eq!(next.history.len(), 1);
    assert_eq!(shown(s, &c).await.len(), 2);
}
