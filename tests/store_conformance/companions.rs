//! Companion storage, the same on every store (run by `conformance!`).

use tether::{
    protocol::{FinishReason, Role, UserId},
    server::store::{
        Avatar, CompanionRecord, NewUserMessage, ReplyRun, SendOutcome, StoreError, Target,
    },
};

use crate::Subject;

fn record(id: &str, user: &str, at: &str) -> CompanionRecord {
    CompanionRecord {
        id: id.into(),
        user_id: UserId(user.into()),
        card: format!(r#"{{"spec":"chara_card_v3","data":{{"name":"{id}"}}}}"#),
        emoji: Some("🌊".into()),
        avatar_type: None,
        created_at: at.into(),
        updated_at: at.into(),
    }
}

fn png(byte: u8) -> Avatar {
    Avatar {
        content_type: "image/png".into(),
        bytes: vec![0x89, b'P', b'N', b'G', byte],
    }
}

pub async fn companions_belong_to_their_owner_newest_change_first(s: Subject) {
    let s = s.store;
    let (u, other) = (UserId("u".into()), UserId("v".into()));
    assert!(s
        .create_companion(&record("a", "u", "2026-01-01T00:00:00.000Z"), None, 10)
        .await
        .expect("a"));
    assert!(s
        .create_companion(&record("b", "u", "2026-01-02T00:00:00.000Z"), None, 10)
        .await
        .expect("b"));
    assert!(s
        .create_companion(&record("c", "v", "2026-01-03T00:00:00.000Z"), None, 10)
        .await
        .expect("c"));
    let ids = |list: Vec<CompanionRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_companions(&u).await.expect("list")), ["b", "a"]);
    s.update_companion(&u, "a", r#"{"x":1}"#, None, "2026-01-05T00:00:00.000Z")
        .await
        .expect("update");
    assert_eq!(ids(s.list_companions(&u).await.expect("list")), ["a", "b"]);
    let a = s.companion(&u, "a").await.expect("a");
    assert_eq!((a.card.as_str(), a.emoji), (r#"{"x":1}"#, None));
    // Another user's companion does not exist for this one.
    assert!(matches!(
        s.companion(&other, "a").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_companion(&other, "a", "{}", None, "t").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_companion(&other, "a").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_companion_avatar(&other, "a", Some(png(1)), "t").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.companion_avatar(&other, "a").await,
        Err(StoreError::NotFound)
    ));
    s.delete_companion(&u, "a").await.expect("delete");
    assert_eq!(ids(s.list_companions(&u).await.expect("list")), ["b"]);
    assert_eq!(ids(s.list_companions(&other).await.expect("list")), ["c"]);
}

pub async fn a_user_keeps_at_most_the_limit_of_companions(s: Subject) {
    let s = s.store;
    let at = "2026-01-01T00:00:00.000Z";
    assert!(s
        .create_companion(&record("a", "u", at), None, 2)
        .await
        .expect("a"));
    assert!(s
        .create_companion(&record("b", "u", at), None, 2)
        .await
        .expect("b"));
    assert!(!s
        .create_companion(&record("c", "u", at), None, 2)
        .await
        .expect("c refused"));
    assert!(s
        .create_companion(&record("d", "v", at), None, 2)
        .await
        .expect("other user"));
    assert_eq!(
        s.list_companions(&UserId("u".into()))
            .await
            .expect("list")
            .len(),
        2
    );
}

pub async fn a_picture_is_stored_replaced_and_removed_with_its_companion(s: Subject) {
    let s = s.store;
    let u = UserId("u".into());
    let mut with_picture = record("a", "u", "2026-01-01T00:00:00.000Z");
    with_picture.avatar_type = Some("image/png".into());
    assert!(s
        .create_companion(&with_picture, Some(png(1)), 10)
        .await
        .expect("a"));
    assert_eq!(
        s.companion_avatar(&u, "a").await.expect("read"),
        Some(png(1))
    );
    let mut gif = png(2);
    gif.content_type = "image/gif".into();
    s.set_companion_avatar(&u, "a", Some(gif.clone()), "2026-01-02T00:00:00.000Z")
        .await
        .expect("replace");
    assert_eq!(s.companion_avatar(&u, "a").await.expect("read"), Some(gif));
    let a = s.companion(&u, "a").await.expect("a");
    assert_eq!(
        (a.avatar_type.as_deref(), a.updated_at.as_str()),
        (Some("image/gif"), "2026-01-02T00:00:00.000Z")
    );
    s.set_companion_avatar(&u, "a", None, "2026-01-03T00:00:00.000Z")
        .await
        .expect("remove");
    assert_eq!(s.companion_avatar(&u, "a").await.expect("read"), None);
    assert_eq!(s.companion(&u, "a").await.expect("a").avatar_type, None);
    s.set_companion_avatar(&u, "a", Some(png(3)), "t")
        .await
        .expect("again");
    s.delete_companion(&u, "a").await.expect("delete");
    assert!(matches!(
        s.companion_avatar(&u, "a").await,
        Err(StoreError::NotFound)
    ));
}

pub async fn a_new_conversation_starts_with_its_greeting(s: Subject) {
    let s = s.store;
    let outcome = s
        .add_user_message(NewUserMessage {
            user_id: "u".into(),
            client_msg_id: "k".into(),
            target: Target::New {
                persona: "aria".into(),
                title: "t".into(),
                greeting: Some("Hello, User.".into()),
                model: "m".into(),
            },
            text: "hi".into(),
            history: 40,
            run: ReplyRun {
                instance: "i".into(),
                token: "r".into(),
            },
            replaces: None,
        })
        .await
        .expect("stored");
    let SendOutcome::Stored {
        conversation,
        greeting: Some(greeting),
        history,
        ..
    } = outcome
    else {
        panic!("stored with a greeting")
    };
    assert_eq!(conversation.persona, "aria");
    assert_eq!(
        (
            greeting.role,
            greeting.content.as_str(),
            greeting.finish_reason
        ),
        (Role::Assistant, "Hello, User.", Some(FinishReason::Stop))
    );
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["Hello, User.", "hi"], "the prompt's history has it");
    let stored = s.messages(&conversation.id).await.expect("messages");
    assert_eq!(stored[0].id, greeting.id);
    assert_eq!(stored[1].content, "hi");
}
