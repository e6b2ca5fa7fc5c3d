//! Account storage ([`AccountStore`](tether::server::store::AccountStore)),
//! the same on every store (run by `conformance!`): accounts and their
//! roles, invites spent once, sessions (one per device) and their
//! rotation, passwords, status and quotas, a guest's data claimed by an
//! account, deleting a user with everything of theirs, daily usage, and
//! two instances signing up at once.
//!
//! Users are 32-hex-digit ids as the server issues them; secrets are
//! stand-ins for the hashes `server::accounts` makes (the store never looks
//! inside them). Timestamps are RFC 3339 with milliseconds and compare as
//! text.

use std::sync::Arc;

use tether::{
    protocol::{ClientMsgId, ConversationId, MessageId, UserId},
    server::store::{
        AccountRecord, AccountRole, AccountStatus, CompanionRecord, Created, InviteRecord,
        NewAccount, NewUserMessage, PasskeyRecord, ReplyRun, SendOutcome, SessionRecord, Store,
        StoreError, Target, UsageDay,
    },
};

use crate::Subject;

/// User `n`: a 32-hex-digit id.
fn user(n: u32) -> UserId {
    UserId(format!("{n:032x}"))
}

/// A stand-in for the SHA-256 (hex) of a token or invite code `n`.
fn sha(n: u32) -> String {
    format!("{n:064x}")
}

/// Midnight UTC of January `day`, 2026, as the store keeps time.
fn jan(day: u32) -> String {
    format!("2026-01-{day:02}T00:00:00.000Z")
}

/// An active member `username` (lower-cased) created at `at`.
fn account(user: &UserId, username: &str, at: &str) -> AccountRecord {
    AccountRecord {
        user_id: user.clone(),
        username: username.into(),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${username}")),
        role: AccountRole::Member,
        status: AccountStatus::Active,
        quota_messages: None,
        quota_tokens: None,
        created_at: at.into(),
    }
}

/// Creates `record` as the server does (the first account is the admin).
async fn create(s: &dyn Store, record: &AccountRecord, invite: Option<String>) -> Created {
    s.create_account(NewAccount {
        record: record.clone(),
        invite,
        first_is_admin: true,
    })
    .await
    .expect("create_account answers")
}

/// A session of `user` with token `token`, created and last seen at `at`.
fn session(token: u32, public_id: &str, user: &UserId, at: &str) -> SessionRecord {
    SessionRecord {
        token_hash: sha(token),
        public_id: public_id.into(),
        user_id: user.clone(),
        device: "Firefox on Linux".into(),
        created_at: at.into(),
        last_seen: at.into(),
    }
}

fn invite(public_id: &str, by: &UserId, created_at: &str, expires_at: &str) -> InviteRecord {
    InviteRecord {
        public_id: public_id.into(),
        created_by: by.clone(),
        created_at: created_at.into(),
        expires_at: expires_at.into(),
        used_by: None,
        used_at: None,
    }
}

fn companion(id: &str, user: &UserId) -> CompanionRecord {
    CompanionRecord {
        id: id.into(),
        user_id: user.clone(),
        card: format!(r#"{{"spec":"chara_card_v3","data":{{"name":"{id}"}}}}"#),
        emoji: None,
        avatar_type: None,
        created_at: jan(1),
        updated_at: jan(1),
    }
}

/// Sends a first message with key `key` as `user` into a new conversation;
/// the conversation and the message.
async fn new_conversation(s: &dyn Store, user: &UserId, key: &str) -> (ConversationId, MessageId) {
    let outcome = s
        .add_user_message(NewUserMessage {
            user_id: user.clone(),
            client_msg_id: key.into(),
            target: Target::New {
                persona: "p".into(),
                title: format!("about {key}"),
                greeting: None,
                model: "m".into(),
            },
            text: "hello".into(),
            history: 0,
            run: ReplyRun::new("i"),
            replaces: None,
        })
        .await
        .expect("stored");
    match outcome {
        SendOutcome::Stored {
            conversation,
            message,
            ..
        } => (conversation.id, message.id),
        SendOutcome::Duplicate { .. } => panic!("a new key is stored, not a duplicate"),
    }
}

async fn conversation_ids(s: &dyn Store, user: &UserId) -> Vec<ConversationId> {
    let mut ids: Vec<_> = s
        .list_conversations(user, None)
        .await
        .expect("list conversations")
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

async fn companion_ids(s: &dyn Store, user: &UserId) -> Vec<String> {
    let mut ids: Vec<_> = s
        .list_companions(user)
        .await
        .expect("list companions")
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

async fn session_ids(s: &dyn Store, user: &UserId) -> Vec<String> {
    s.list_sessions(user)
        .await
        .expect("list sessions")
        .into_iter()
        .map(|r| r.public_id)
        .collect()
}

async fn has_session(s: &dyn Store, token: u32) -> bool {
    s.session(&sha(token)).await.expect("session").is_some()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

pub async fn the_first_account_is_the_admin_and_usernames_are_unique(s: Subject) {
    let s = &*s.store;
    let (alice, bob, carol, mallory) = (user(1), user(2), user(3), user(4));
    assert_eq!(s.account_count().await.expect("count"), 0);
    assert!(s.list_accounts().await.expect("list").is_empty());

    // Alice is first (though created "later" than Bob, below): the admin,
    // whatever role her record asks for.
    let alice_record = account(&alice, "alice", &jan(2));
    assert_eq!(
        create(s, &alice_record, None).await,
        Created::Account(AccountRole::Admin)
    );
    let stored = s.account(&alice).await.expect("read").expect("alice");
    assert_eq!(
        stored,
        AccountRecord {
            role: AccountRole::Admin,
            ..alice_record.clone()
        }
    );

    // Later accounts get the role of their record.
    let mut bob_record = account(&bob, "bob", &jan(1));
    bob_record.quota_messages = Some(20);
    bob_record.status = AccountStatus::Pending;
    assert_eq!(
        create(s, &bob_record, None).await,
        Created::Account(AccountRole::Member)
    );
    assert_eq!(
        s.account(&bob).await.expect("read").as_ref(),
        Some(&bob_record)
    );
    let mut carol_record = account(&carol, "carol", &jan(3));
    carol_record.role = AccountRole::Admin;
    carol_record.password_hash = None;
    assert_eq!(
        create(s, &carol_record, None).await,
        Created::Account(AccountRole::Admin)
    );
    assert_eq!(
        s.account(&carol).await.expect("read").as_ref(),
        Some(&carol_record)
    );

    // A taken username stores nothing for the newcomer.
    assert_eq!(
        create(s, &account(&mallory, "alice", &jan(4)), None).await,
        Created::UsernameTaken
    );
    assert_eq!(s.account(&mallory).await.expect("read"), None);
    let by_name = s
        .account_by_username("alice")
        .await
        .expect("read")
        .expect("alice");
    assert_eq!(by_name.user_id, alice);
    assert_eq!(by_name.password_hash, alice_record.password_hash);
    assert_eq!(
        s.account_by_username("bob")
            .await
            .expect("read")
            .map(|a| a.user_id),
        Some(bob.clone())
    );
    assert_eq!(s.account_by_username("dave").await.expect("read"), None);
    assert_eq!(s.account(&user(99)).await.expect("read"), None);

    let names: Vec<String> = s
        .list_accounts()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["bob", "alice", "carol"], "oldest first");
    assert_eq!(s.account_count().await.expect("count"), 3);
}

pub async fn an_invite_signs_up_one_account_before_it_expires(s: Subject) {
    let s = &*s.store;
    let admin = user(1);
    assert_eq!(
        create(s, &account(&admin, "admin", &jan(1)), None).await,
        Created::Account(AccountRole::Admin)
    );
    s.create_invite(&sha(101), &invite("i1", &admin, &jan(1), &jan(8)))
        .await
        .expect("i1");
    // Expired on the 3rd, before anybody below signs up (the 5th).
    s.create_invite(&sha(102), &invite("i2", &admin, &jan(2), &jan(3)))
        .await
        .expect("i2");
    s.create_invite(&sha(103), &invite("i3", &admin, &jan(4), &jan(11)))
        .await
        .expect("i3");
    let listed = s.list_invites().await.expect("list");
    assert_eq!(
        listed,
        [
            invite("i3", &admin, &jan(4), &jan(11)),
            invite("i2", &admin, &jan(2), &jan(3)),
            invite("i1", &admin, &jan(1), &jan(8)),
        ],
        "newest first, none used"
    );

    let (bob, carol, dave) = (user(2), user(3), user(4));
    assert_eq!(
        create(s, &account(&bob, "bob", &jan(5)), Some(sha(101))).await,
        Created::Account(AccountRole::Member)
    );
    assert_eq!(
        s.account(&bob).await.expect("read").map(|a| a.username),
        Some("bob".into())
    );

    // Used, expired, unknown: refused, and nothing of the newcomer stored.
    for code in [sha(101), sha(102), sha(999)] {
        assert_eq!(
            create(s, &account(&carol, "carol", &jan(5)), Some(code)).await,
            Created::InviteInvalid
        );
    }
    assert_eq!(s.account(&carol).await.expect("read"), None);
    assert_eq!(s.account_by_username("carol").await.expect("read"), None);
    assert_eq!(s.account_count().await.expect("count"), 2);
    // Not even a users row: usage of a user without one is not kept.
    s.add_usage(&carol, "2026-01-05", 1, 1)
        .await
        .expect("add usage");
    assert_eq!(
        s.usage_on(&carol, "2026-01-05").await.expect("usage"),
        (0, 0)
    );

    // A taken username does not spend the invite it came with.
    assert_eq!(
        create(s, &account(&dave, "bob", &jan(6)), Some(sha(103))).await,
        Created::UsernameTaken
    );
    assert_eq!(
        create(s, &account(&dave, "dave", &jan(7)), Some(sha(103))).await,
        Created::Account(AccountRole::Member)
    );

    let used: Vec<(String, Option<UserId>, Option<String>)> = s
        .list_invites()
        .await
        .expect("list")
        .into_iter()
        .map(|i| (i.public_id, i.used_by, i.used_at))
        .collect();
    assert_eq!(
        used,
        [
            (String::from("i3"), Some(dave), Some(jan(7))),
            (String::from("i2"), None, None),
            (String::from("i1"), Some(bob), Some(jan(5))),
        ]
    );
}

pub async fn sessions_are_found_by_token_rotated_and_signed_out(s: Subject) {
    let s = &*s.store;
    let (alice, bob) = (user(1), user(2));
    create(s, &account(&alice, "alice", &jan(1)), None).await;
    create(s, &account(&bob, "bob", &jan(1)), None).await;
    let first = session(1, "p1", &alice, &jan(2));
    s.create_session(&first, None).await.expect("p1");
    s.create_session(&session(2, "p2", &alice, &jan(3)), None)
        .await
        .expect("p2");
    s.create_session(&session(3, "p3", &bob, &jan(3)), None)
        .await
        .expect("p3");

    let (found, owner) = s.session(&sha(1)).await.expect("read").expect("p1");
    assert_eq!(found, first);
    assert_eq!(
        (owner.user_id, owner.username.as_str()),
        (alice.clone(), "alice")
    );
    assert_eq!(
        s.session(&sha(3))
            .await
            .expect("read")
            .map(|(_, a)| a.user_id),
        Some(bob.clone())
    );
    assert!(!has_session(s, 42).await, "an unknown token is no session");

    assert_eq!(
        session_ids(s, &alice).await,
        ["p2", "p1"],
        "newest seen first"
    );
    s.touch_session(&sha(1), &jan(4)).await.expect("touch");
    let (touched, _) = s.session(&sha(1)).await.expect("read").expect("p1");
    assert_eq!(
        (touched.created_at, touched.last_seen),
        (jan(2), jan(4)),
        "only last_seen moves"
    );
    assert_eq!(session_ids(s, &alice).await, ["p1", "p2"]);

    // Signing in again rotates the token: the old one signs nobody in.
    s.create_session(&session(4, "p4", &alice, &jan(5)), Some(&sha(1)))
        .await
        .expect("p4");
    assert!(!has_session(s, 1).await, "the replaced token is gone");
    assert!(has_session(s, 4).await);
    assert_eq!(session_ids(s, &alice).await, ["p4", "p2"]);

    // By public id: only the user's own.
    assert_eq!(
        s.delete_sessions(&alice, Some("p3"), None)
            .await
            .expect("delete"),
        Vec::<String>::new(),
        "bob's session is not alice's to end"
    );
    assert!(has_session(s, 3).await);
    assert_eq!(
        s.delete_sessions(&alice, Some("p2"), None)
            .await
            .expect("delete"),
        ["p2"]
    );
    assert!(!has_session(s, 2).await);
    assert!(has_session(s, 4).await);

    // Everywhere else: all of the user's but the one kept.
    s.create_session(&session(5, "p5", &alice, &jan(6)), None)
        .await
        .expect("p5");
    s.create_session(&session(6, "p6", &alice, &jan(6)), None)
        .await
        .expect("p6");
    assert_eq!(
        sorted(
            s.delete_sessions(&alice, None, Some(&sha(4)))
                .await
                .expect("delete")
        ),
        ["p5", "p6"]
    );
    assert_eq!(session_ids(s, &alice).await, ["p4"]);
    assert_eq!(
        session_ids(s, &bob).await,
        ["p3"],
        "other users keep theirs"
    );
}

pub async fn a_new_password_signs_out_the_other_sessions(s: Subject) {
    let s = &*s.store;
    let (alice, bob, guest) = (user(1), user(2), user(3));
    create(s, &account(&alice, "alice", &jan(1)), None).await;
    create(s, &account(&bob, "bob", &jan(1)), None).await;
    for (token, id) in [(1, "p1"), (2, "p2"), (3, "p3")] {
        s.create_session(&session(token, id, &alice, &jan(2)), None)
            .await
            .expect("session");
    }
    s.create_session(&session(9, "b1", &bob, &jan(2)), None)
        .await
        .expect("bob's session");

    assert_eq!(
        sorted(
            s.set_password(&alice, "new-hash", Some(&sha(2)))
                .await
                .expect("set")
        ),
        ["p1", "p3"]
    );
    assert_eq!(
        s.account(&alice)
            .await
            .expect("read")
            .and_then(|a| a.password_hash),
        Some("new-hash".into())
    );
    let (_, owner) = s.session(&sha(2)).await.expect("read").expect("kept");
    assert_eq!(owner.password_hash.as_deref(), Some("new-hash"));
    assert!(!has_session(s, 1).await);
    assert!(!has_session(s, 3).await);
    assert!(has_session(s, 9).await, "bob stays signed in");
    assert_eq!(
        s.account(&bob)
            .await
            .expect("read")
            .and_then(|a| a.password_hash),
        account(&bob, "bob", "").password_hash
    );

    // Without one to keep (an admin's reset): every session goes.
    assert_eq!(
        s.set_password(&alice, "newer-hash", None)
            .await
            .expect("set"),
        ["p2"]
    );
    assert!(session_ids(s, &alice).await.is_empty());

    // A guest (a users row, no account) and a stranger have no password.
    s.create_companion(&companion("g", &guest), None, 10)
        .await
        .expect("guest's companion");
    for nobody in [&guest, &user(99)] {
        assert!(matches!(
            s.set_password(nobody, "h", None).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(s.account(nobody).await.expect("read"), None);
    }
}

pub async fn status_and_quotas_are_set_per_account(s: Subject) {
    let s = &*s.store;
    let (alice, bob, guest) = (user(1), user(2), user(3));
    create(s, &account(&alice, "alice", &jan(1)), None).await;
    create(s, &account(&bob, "bob", &jan(1)), None).await;
    s.create_session(&session(1, "p1", &alice, &jan(2)), None)
        .await
        .expect("session");

    for status in [
        AccountStatus::Disabled,
        AccountStatus::Pending,
        AccountStatus::Active,
        AccountStatus::Disabled,
    ] {
        s.set_account_status(&alice, status).await.expect("status");
        assert_eq!(
            s.account(&alice).await.expect("read").map(|a| a.status),
            Some(status)
        );
    }
    let (_, owner) = s.session(&sha(1)).await.expect("read").expect("session");
    assert_eq!(
        owner.status,
        AccountStatus::Disabled,
        "a session reads its account's status now"
    );

    let quotas = |a: Option<AccountRecord>| a.map(|a| (a.quota_messages, a.quota_tokens));
    s.set_quota(&alice, Some(100), Some(50_000))
        .await
        .expect("quota");
    assert_eq!(
        quotas(s.account(&alice).await.expect("read")),
        Some((Some(100), Some(50_000)))
    );
    s.set_quota(&alice, None, Some(7)).await.expect("quota");
    assert_eq!(
        quotas(s.account(&alice).await.expect("read")),
        Some((None, Some(7)))
    );
    s.set_quota(&alice, Some(0), None).await.expect("quota");
    assert_eq!(
        quotas(s.account(&alice).await.expect("read")),
        Some((Some(0), None)),
        "zero is a limit, not the default"
    );

    let untouched = s.account(&bob).await.expect("read").expect("bob");
    assert_eq!(untouched, account(&bob, "bob", &jan(1)));

    s.create_companion(&companion("g", &guest), None, 10)
        .await
        .expect("guest's companion");
    for nobody in [&guest, &user(99)] {
        assert!(matches!(
            s.set_account_status(nobody, AccountStatus::Active).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.set_quota(nobody, Some(1), Some(1)).await,
            Err(StoreError::NotFound)
        ));
    }
}

pub async fn an_account_claims_what_its_guest_made_once(s: Subject) {
    let s = &*s.store;
    let (alice, bob, guest) = (user(1), user(2), user(3));
    create(s, &account(&alice, "alice", &jan(1)), None).await;
    create(s, &account(&bob, "bob", &jan(1)), None).await;
    let (own, own_message) = new_conversation(s, &alice, "shared").await;
    s.create_companion(&companion("alice's", &alice), None, 10)
        .await
        .expect("alice's companion");

    // The guest: two conversations and a companion. One of its keys is one
    // Alice used too (keys are random, but the store must not fail on it).
    let (first, first_message) = new_conversation(s, &guest, "k1").await;
    let (second, _) = new_conversation(s, &guest, "shared").await;
    s.create_companion(&companion("guest's", &guest), None, 10)
        .await
        .expect("guest's companion");

    assert_eq!(s.claim_guest(&guest, &alice).await.expect("claim"), 2);
    let mut expected = vec![own.clone(), first.clone(), second.clone()];
    expected.sort();
    assert_eq!(conversation_ids(s, &alice).await, expected);
    assert_eq!(companion_ids(s, &alice).await, ["alice's", "guest's"]);
    assert!(conversation_ids(s, &guest).await.is_empty());
    assert!(companion_ids(s, &guest).await.is_empty());
    assert_eq!(
        s.conversation(&alice, &first)
            .await
            .expect("alice's now")
            .title,
        "about k1"
    );
    assert!(matches!(
        s.conversation(&guest, &first).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.messages(&first).await.expect("messages")[0].content,
        "hello",
        "the messages came along"
    );
    s.companion(&alice, "guest's")
        .await
        .expect("the companion is alice's");

    // Idempotency keys follow; where both had one, the account's stays.
    let key = |k: &str| ClientMsgId::from(k);
    assert_eq!(
        s.find_client_message(&alice, &key("k1"))
            .await
            .expect("lookup"),
        Some((first.clone(), first_message))
    );
    assert_eq!(
        s.find_client_message(&alice, &key("shared"))
            .await
            .expect("lookup"),
        Some((own, own_message))
    );
    assert_eq!(
        s.find_client_message(&guest, &key("k1"))
            .await
            .expect("lookup"),
        None
    );
    // The guest itself is gone.
    assert!(matches!(
        s.delete_user(&guest).await,
        Err(StoreError::NotFound)
    ));

    // Again: nothing left to move.
    assert_eq!(s.claim_guest(&guest, &alice).await.expect("claim"), 0);
    assert_eq!(conversation_ids(s, &alice).await, expected);

    // An account is nobody's guest.
    let (bobs, _) = new_conversation(s, &bob, "b1").await;
    s.create_companion(&companion("bob's", &bob), None, 10)
        .await
        .expect("bob's companion");
    assert_eq!(s.claim_guest(&bob, &alice).await.expect("claim"), 0);
    assert_eq!(conversation_ids(s, &bob).await, [bobs]);
    assert_eq!(companion_ids(s, &bob).await, ["bob's"]);
    assert_eq!(conversation_ids(s, &alice).await, expected);
    assert_eq!(companion_ids(s, &alice).await, ["alice's", "guest's"]);
    assert!(s.account(&bob).await.expect("read").is_some());
}

pub async fn deleting_a_user_deletes_everything_of_theirs(s: Subject) {
    let s = &*s.store;
    let (alice, bob, guest) = (user(1), user(2), user(3));
    create(s, &account(&alice, "alice", &jan(1)), None).await;
    create(s, &account(&bob, "bob", &jan(1)), None).await;
    let mut theirs = Vec::new();
    for (n, who) in [(1, &alice), (2, &bob)] {
        s.create_session(&session(n, &format!("p{n}"), who, &jan(2)), None)
            .await
            .expect("session");
        let (conversation, _) = new_conversation(s, who, "k").await;
        s.create_companion(&companion(&format!("c{n}"), who), None, 10)
            .await
            .expect("companion");
        s.add_usage(who, "2026-01-02", 1, 10).await.expect("usage");
        theirs.push(conversation);
    }
    let (alices, bobs) = (theirs[0].clone(), theirs[1].clone());

    s.delete_user(&alice).await.expect("delete");
    assert_eq!(s.account(&alice).await.expect("read"), None);
    assert_eq!(s.account_by_username("alice").await.expect("read"), None);
    assert_eq!(s.account_count().await.expect("count"), 1);
    assert!(!has_session(s, 1).await);
    assert!(session_ids(s, &alice).await.is_empty());
    assert!(conversation_ids(s, &alice).await.is_empty());
    assert!(matches!(
        s.conversation(&alice, &alices).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.messages(&alices).await.map(|m| m.len()).unwrap_or(0) == 0,
        "the messages went with it"
    );
    assert!(companion_ids(s, &alice).await.is_empty());
    assert!(matches!(
        s.companion(&alice, "c1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.find_client_message(&alice, &"k".into())
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        s.usage_on(&alice, "2026-01-02").await.expect("usage"),
        (0, 0)
    );

    // Bob keeps everything.
    assert!(s.account(&bob).await.expect("read").is_some());
    assert!(has_session(s, 2).await);
    assert_eq!(conversation_ids(s, &bob).await, [bobs]);
    assert_eq!(companion_ids(s, &bob).await, ["c2"]);
    assert_eq!(
        s.usage_on(&bob, "2026-01-02").await.expect("usage"),
        (1, 10)
    );

    // A guest is a user too.
    let (guests, _) = new_conversation(s, &guest, "g").await;
    s.delete_user(&guest).await.expect("delete the guest");
    assert!(conversation_ids(s, &guest).await.is_empty());
    assert!(matches!(
        s.conversation(&guest, &guests).await,
        Err(StoreError::NotFound)
    ));

    for gone in [&alice, &guest, &user(99)] {
        assert!(matches!(
            s.delete_user(gone).await,
            Err(StoreError::NotFound)
        ));
    }
}

pub async fn usage_adds_up_per_user_and_day(s: Subject) {
    let s = &*s.store;
    let (alice, guest, stranger) = (user(1), user(2), user(99));
    create(s, &account(&alice, "alice", &jan(1)), None).await;
    s.create_companion(&companion("g", &guest), None, 10)
        .await
        .expect("the guest's users row");

    assert_eq!(
        s.usage_on(&alice, "2026-01-01").await.expect("usage"),
        (0, 0)
    );
    s.add_usage(&alice, "2026-01-01", 1, 100)
        .await
        .expect("add");
    s.add_usage(&alice, "2026-01-01", 2, 50).await.expect("add");
    assert_eq!(
        s.usage_on(&alice, "2026-01-01").await.expect("usage"),
        (3, 150)
    );
    assert_eq!(
        s.usage_on(&alice, "2026-01-02").await.expect("usage"),
        (0, 0),
        "per day"
    );
    s.add_usage(&alice, "2026-01-02", 1, 10).await.expect("add");
    s.add_usage(&alice, "2025-12-31", 9, 9).await.expect("add");
    s.add_usage(&guest, "2026-01-02", 5, 500)
        .await
        .expect("add");
    assert_eq!(
        s.usage_on(&guest, "2026-01-01").await.expect("usage"),
        (0, 0),
        "per user"
    );

    // A user the store does not know: nothing kept, no error.
    s.add_usage(&stranger, "2026-01-02", 1, 1)
        .await
        .expect("no error");
    assert_eq!(
        s.usage_on(&stranger, "2026-01-02").await.expect("usage"),
        (0, 0)
    );

    let listed = s.usage_since("2026-01-01").await.expect("usage since");
    let days: Vec<&str> = listed.iter().map(|u| u.day.as_str()).collect();
    assert_eq!(
        days,
        ["2026-01-02", "2026-01-02", "2026-01-01"],
        "newest day first, none before the day asked"
    );
    let mut rows = listed.clone();
    rows.sort_by(|a, b| (&b.day, &a.user_id).cmp(&(&a.day, &b.user_id)));
    let row = |user: &UserId, username: Option<&str>, day: &str, messages, tokens| UsageDay {
        user_id: user.clone(),
        username: username.map(str::to_owned),
        day: day.into(),
        messages,
        tokens,
    };
    assert_eq!(
        rows,
        [
            row(&alice, Some("alice"), "2026-01-02", 1, 10),
            row(&guest, None, "2026-01-02", 5, 500),
            row(&alice, Some("alice"), "2026-01-01", 3, 150),
        ]
    );
    assert!(s
        .usage_since("2026-01-03")
        .await
        .expect("usage since")
        .is_empty());
}

pub async fn two_instances_signing_up_at_once_make_one_admin_and_spend_an_invite_once(
    subject: Subject,
) {
    let other = subject.another_instance().await;
    let sign_up = |s: Arc<dyn Store>, record: AccountRecord, invite: Option<String>| {
        tokio::spawn(async move { create(&*s, &record, invite).await })
    };

    // Both the first: one of them is the admin.
    let (alice, bob) = (user(1), user(2));
    let a = sign_up(
        subject.store.clone(),
        account(&alice, "alice", &jan(1)),
        None,
    );
    let b = sign_up(other.clone(), account(&bob, "bob", &jan(1)), None);
    let mut roles = [a.await.expect("task"), b.await.expect("task")];
    roles.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        roles,
        [
            Created::Account(AccountRole::Admin),
            Created::Account(AccountRole::Member)
        ]
    );
    let admins = subject
        .store
        .list_accounts()
        .await
        .expect("list")
        .into_iter()
        .filter(|a| a.role == AccountRole::Admin)
        .count();
    assert_eq!(admins, 1);

    // The same invite from both: one account.
    for round in 0..5 {
        let code = sha(100 + round);
        let public_id = format!("i{round}");
        subject
            .store
            .create_invite(&code, &invite(&public_id, &alice, &jan(1), &jan(9)))
            .await
            .expect("invite");
        let (x, y) = (user(10 + 2 * round), user(11 + 2 * round));
        let a = sign_up(
            subject.store.clone(),
            account(&x, &format!("x{round}"), &jan(2)),
            Some(code.clone()),
        );
        let b = sign_up(
            other.clone(),
            account(&y, &format!("y{round}"), &jan(2)),
            Some(code),
        );
        let outcomes = [a.await.expect("task"), b.await.expect("task")];
        let created = outcomes
            .iter()
            .filter(|c| **c == Created::Account(AccountRole::Member))
            .count();
        let refused = outcomes
            .iter()
            .filter(|c| **c == Created::InviteInvalid)
            .count();
        assert_eq!((created, refused), (1, 1), "{outcomes:?}");
        let used_by = subject
            .store
            .list_invites()
            .await
            .expect("list")
            .into_iter()
            .find(|i| i.public_id == public_id)
            .and_then(|i| i.used_by)
            .expect("used");
        let winner = if outcomes[0] == Created::InviteInvalid {
            &y
        } else {
            &x
        };
        assert_eq!(&used_by, winner, "spent by the account it made");
    }
    assert_eq!(subject.store.account_count().await.expect("count"), 7);
}

fn passkey(id: &str, user: &UserId, at: &str) -> PasskeyRecord {
    PasskeyRecord {
        credential_id: id.into(),
        user_id: user.clone(),
        public_key: vec![4; 65],
        sign_count: 0,
        name: format!("key {id}"),
        created_at: at.into(),
        last_used: None,
    }
}

pub async fn passkeys_belong_to_their_account_and_go_with_it(s: Subject) {
    let s = s.store;
    let (ann, bob) = (user(1), user(2));
    assert!(matches!(
        create(&*s, &account(&ann, "ann", &jan(1)), None).await,
        Created::Account(_)
    ));
    assert!(matches!(
        create(&*s, &account(&bob, "bob", &jan(1)), None).await,
        Created::Account(_)
    ));
    assert!(s
        .add_passkey(&passkey("k2", &ann, &jan(3)))
        .await
        .expect("add"));
    assert!(s
        .add_passkey(&passkey("k1", &ann, &jan(2)))
        .await
        .expect("add"));
    assert!(
        !s.add_passkey(&passkey("k1", &bob, &jan(4)))
            .await
            .expect("add"),
        "a credential id is stored once, whoever asks"
    );
    let listed: Vec<String> = s
        .passkeys(&ann)
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.credential_id)
        .collect();
    assert_eq!(listed, vec!["k1", "k2"], "oldest first");
    assert!(s.passkeys(&bob).await.expect("list").is_empty());

    let (found, owner) = s.passkey("k1").await.expect("read").expect("found");
    assert_eq!(found.public_key, vec![4; 65]);
    assert_eq!(owner.username, "ann");
    assert_eq!(s.passkey("nope").await.expect("read"), None);

    s.passkey_used("k1", 7, &jan(5)).await.expect("used");
    let (used, _) = s.passkey("k1").await.expect("read").expect("found");
    assert_eq!(
        (used.sign_count, used.last_used.as_deref()),
        (7, Some(jan(5).as_str()))
    );

    assert!(
        matches!(
            s.delete_passkey(&bob, "k1").await,
            Err(StoreError::NotFound)
        ),
        "not bob's"
    );
    s.delete_passkey(&ann, "k1").await.expect("delete");
    assert_eq!(s.passkey("k1").await.expect("read"), None);
    s.delete_user(&ann).await.expect("delete ann");
    assert_eq!(
        s.passkey("k2").await.expect("read"),
        None,
        "gone with the account"
    );
}
