//! Companions over real HTTP and WebSocket: making, editing and deleting
//! them, character cards in and out (V2 JSON, V2 PNG, V3 PNG, made here by
//! the specs, not by Tether's code), bad cards, pictures, the limits, and a
//! conversation with a companion: its greeting first, its card (with
//! `{{char}}`/`{{user}}` and the lorebook) in the model's system prompt.

mod common;

use base64::Engine as _;
use common::{
    browser::{refusal, Browser},
    TestServer,
};
use serde_json::{json, Value};
use tether::protocol::{ClientFrame, Role, ServerFrame};

impl Browser {
    async fn list(&self) -> Vec<Value> {
        let response = self.get("/api/companions").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["items"].as_array().expect("items").clone()
    }

    async fn own(&self) -> Vec<Value> {
        self.list()
            .await
            .into_iter()
            .filter(|c| c["preset"] == false)
            .collect()
    }
}

// --- Cards made here, by the specs (PNG chunks written by hand). ---

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A 1×1 grey PNG (zlib stored block) with these text chunks.
fn png_with(texts: &[(&str, &str)]) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
    // zlib: header, stored block of [filter 0, grey 0x80], Adler-32.
    png.extend(chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81,
        ],
    ));
    for (key, text) in texts {
        let mut data = key.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(text.as_bytes());
        png.extend(chunk(b"tEXt", &data));
    }
    png.extend(chunk(b"IEND", &[]));
    png
}

/// The text chunks of a PNG Tether wrote (checked CRCs).
fn text_chunks(png: &[u8]) -> Vec<(String, String)> {
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G']), "a PNG");
    let mut rest = &png[8..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("len")) as usize;
        let kind = &rest[4..8];
        let data = &rest[8..8 + len];
        let crc = u32::from_be_bytes(rest[8 + len..12 + len].try_into().expect("crc"));
        assert_eq!(crc32(&rest[4..8 + len]), crc, "chunk CRC");
        if kind == b"tEXt" {
            let split = data.iter().position(|&b| b == 0).expect("keyword");
            out.push((
                String::from_utf8(data[..split].to_vec()).expect("key"),
                String::from_utf8(data[split + 1..].to_vec()).expect("text"),
            ));
        }
        rest = &rest[12 + len..];
    }
    out
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

fn unb64(text: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

/// A V2 card with everything the spec has, and fields of other tools.
fn v2_card() -> Value {
    json!({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Aria",
            "description": "{{char}} keeps the lighthouse and writes letters to {{user}}.",
            "personality": "calm, curious",
            "scenario": "A stormy night at the lighthouse.",
            "first_mes": "Welcome, {{user}}. I am {{char}}.",
            "mes_example": "<START>\n{{user}}: Hi\n{{char}}: The lamp is lit.",
            "creator_notes": "for the tests",
            "system_prompt": "",
            "post_history_instructions": "Stay {{char}}; {{user}} is listening. {{original}}",
            "alternate_greetings": ["Back again, {{user}}?", "The sea is loud tonight."],
            "tags": ["sea", "calm"],
            "creator": "tests",
            "character_version": "1.0",
            "extensions": {"talkativeness": "0.5", "depth_prompt": {"depth": 4, "prompt": "x"}},
            "character_book": {
                "name": "Lighthouse lore",
                "scan_depth": 4,
                "token_budget": 200,
                "recursive_scanning": false,
                "extensions": {},
                "entries": [
                    {"keys": ["storm"], "content": "{{char}} counts the seconds between lightning and thunder.",
                     "extensions": {"kept": true}, "enabled": true, "insertion_order": 1,
                     "case_sensitive": false, "id": 1, "comment": "storms"},
                    {"keys": ["ship"], "content": "The last ship passed in 1911.",
                     "extensions": {}, "enabled": true, "insertion_order": 2}
                ]
            }
        },
        "from_another_tool": {"kept": [1, 2, 3]}
    })
}

fn v3_card() -> Value {
    let mut card = v2_card();
    card["spec"] = "chara_card_v3".into();
    card["spec_version"] = "3.0".into();
    card["data"]["name"] = "Bea".into();
    card["data"]["nickname"] = "B".into();
    card["data"]["group_only_greetings"] = json!([]);
    card["data"]["assets"] =
        json!([{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]);
    card["data"]["creation_date"] = 1_700_000_000.into();
    card
}

#[tokio::test]
async fn making_editing_and_deleting_a_companion() {
    let server = TestServer::start(|_| {}).await;
    let me = Browser::new(&server).await;
    let presets = me.list().await;
    assert!(!presets.is_empty() && presets.iter().all(|c| c["preset"] == true));

    let draft = json!({"name": "Nova", "description": "A starship pilot.", "greeting": "Hi!",
                       "alternate_greetings": ["Yo", ""], "emoji": "🚀"});
    let made = me
        .json(reqwest::Method::POST, "/api/companions", &draft)
        .await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("json");
    let id = made["id"].as_str().expect("id").to_owned();
    assert_eq!(made["name"], "Nova");
    assert_eq!(made["emoji"], "🚀");
    assert_eq!(
        made["alternate_greetings"],
        json!(["Yo"]),
        "empty greetings dropped"
    );
    assert_eq!(me.own().await.len(), 1);

    let edited = me
        .json(
            reqwest::Method::PUT,
            &format!("/api/companions/{id}"),
            &json!({"name": "Nova Prime", "personality": "bold"}),
        )
        .await;
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.expect("json");
    assert_eq!(
        (edited["name"].as_str(), edited["personality"].as_str()),
        (Some("Nova Prime"), Some("bold"))
    );
    assert!(
        edited.get("emoji").is_none(),
        "an edit without an emoji removes it"
    );

    // Another user sees none of it, and cannot change it.
    let other = Browser::new(&server).await;
    assert!(other.own().await.is_empty());
    let (code, _) = refusal(other.get(&format!("/api/companions/{id}")).await, 404).await;
    assert_eq!(code, "not_found");
    refusal(
        other
            .json(
                reqwest::Method::PUT,
                &format!("/api/companions/{id}"),
                &draft,
            )
            .await,
        404,
    )
    .await;
    assert_eq!(
        other
            .request(reqwest::Method::DELETE, &format!("/api/companions/{id}"))
            .send()
            .await
            .expect("delete")
            .status(),
        404
    );

    // Changes need the page's origin; presets cannot change.
    let foreign = me
        .http
        .post(format!("{}/api/companions", me.base))
        .header("origin", "http://evil.example")
        .header("cookie", &me.cookie)
        .header("content-type", "application/json")
        .body(draft.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(foreign.status(), 403);
    let preset = presets[0]["id"].as_str().expect("preset id");
    let (_, message) = refusal(
        me.json(
            reqwest::Method::PUT,
            &format!("/api/companions/{preset}"),
            &draft,
        )
        .await,
        403,
    )
    .await;
    assert!(message.contains("built-in"), "{message}");

    let deleted = me
        .request(reqwest::Method::DELETE, &format!("/api/companions/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    assert!(me.own().await.is_empty());
    refusal(me.get(&format!("/api/companions/{id}")).await, 404).await;
}

#[tokio::test]
async fn drafts_are_held_to_the_limits() {
    let server = TestServer::start(|c| {
        c.limits.max_companion_field_chars = 50;
        c.limits.max_companions_per_user = 2;
    })
    .await;
    let me = Browser::new(&server).await;
    let post = |body: Value| {
        let me = &me;
        async move {
            me.json(reqwest::Method::POST, "/api/companions", &body)
                .await
        }
    };
    for (body, needle) in [
        (json!({"name": "  "}), "needs a name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (
            json!({"name": "A", "description": "d".repeat(51)}),
            "description is 51 characters; the limit is 50",
        ),
        (
            json!({"name": "A", "alternate_greetings": ["g".repeat(51)]}),
            "alternate greeting",
        ),
        (json!({"name": "A", "scenario": "nul\u{0}"}), "NUL"),
        (json!({"name": "A", "emoji": "🚀🚀🚀🚀🚀🚀🚀🚀🚀"}), "emoji"),
        (
            json!({"name": "A", "alternate_greetings": vec!["g"; 33]}),
            "alternate greetings",
        ),
        (json!({"name": 5}), "invalid companion"),
    ] {
        let (code, message) = refusal(post(body).await, 400).await;
        assert_eq!(code, "bad_request");
        assert!(
            message.contains(needle),
            "{message:?} should say {needle:?}"
        );
    }
    assert!(me.own().await.is_empty(), "nothing refused was stored");
    assert_eq!(post(json!({"name": "A"})).await.status(), 201);
    assert_eq!(post(json!({"name": "B"})).await.status(), 201);
    let (_, message) = refusal(post(json!({"name": "C"})).await, 409).await;
    assert!(message.contains("2 companions"), "{message}");
    assert_eq!(me.own().await.len(), 2);
}

#[tokio::test]
async fn cards_round_trip_as_v2_json_v2_png_and_v3_png() {
    let server = TestServer::start(|_| {}).await;
    let me = Browser::new(&server).await;
    let import = |bytes: Vec<u8>| {
        let me = &me;
        async move {
            let response = me
                .upload(reqwest::Method::POST, "/api/companions/import", bytes)
                .await;
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.expect("json")
        }
    };

    // V2 JSON: the fields show; the export is the card, unknown fields kept.
    let json_card = import(v2_card().to_string().into_bytes()).await;
    assert_eq!(json_card["name"], "Aria");
    assert_eq!(json_card["greeting"], "Welcome, {{user}}. I am {{char}}.");
    assert_eq!(json_card["lore_entries"], 2);
    assert!(
        json_card.get("avatar_url").is_none(),
        "a JSON card has no picture"
    );
    let id = json_card["id"].as_str().expect("id");
    let exported = me.get(&format!("/api/companions/{id}/card.json")).await;
    assert_eq!(exported.status(), 200);
    assert!(exported
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("Aria.json")));
    let exported: Value = exported.json().await.expect("json");
    assert_eq!(
        exported,
        v2_card(),
        "an untouched card comes back as it went in"
    );

    // An edit changes its field and nothing else.
    let mut draft: Value = json_card.clone();
    draft["personality"] = "stormy".into();
    let edited = me
        .json(
            reqwest::Method::PUT,
            &format!("/api/companions/{id}"),
            &draft,
        )
        .await;
    assert_eq!(edited.status(), 200);
    let exported: Value = me
        .get(&format!("/api/companions/{id}/card.json"))
        .await
        .json()
        .await
        .expect("json");
    let mut expected = v2_card();
    expected["data"]["personality"] = "stormy".into();
    assert_eq!(exported, expected);

    // V2 PNG: the image becomes the picture; the export carries `chara`.
    let png = png_with(&[("chara", &b64(&v2_card()))]);
    let png_card = import(png.clone()).await;
    let png_id = png_card["id"].as_str().expect("id");
    let avatar_url = png_card["avatar_url"]
        .as_str()
        .expect("a PNG card has a picture");
    let picture = me.get(avatar_url).await;
    assert_eq!(picture.status(), 200);
    assert_eq!(picture.headers()["content-type"], "image/png");
    assert_eq!(
        picture.bytes().await.expect("bytes").as_ref(),
        png.as_slice()
    );
    let exported = me.get(&format!("/api/companions/{png_id}/card.png")).await;
    assert_eq!(exported.headers()["content-type"], "image/png");
    let exported = exported.bytes().await.expect("png").to_vec();
    let chunks = text_chunks(&exported);
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    assert_eq!(chunks[0].0, "chara");
    assert_eq!(unb64(&chunks[0].1), v2_card());
    // … and comes back in as the same companion.
    let again = import(exported).await;
    assert_eq!(again["name"], png_card["name"]);
    assert_eq!(again["description"], png_card["description"]);

    // V3 PNG (with an older `chara` beside it): `ccv3` wins; the export
    // carries both, V3 fields (nickname, assets) kept.
    let png = png_with(&[("chara", &b64(&v2_card())), ("ccv3", &b64(&v3_card()))]);
    let v3 = import(png).await;
    assert_eq!(v3["name"], "Bea");
    let v3_id = v3["id"].as_str().expect("id");
    let exported = me
        .get(&format!("/api/companions/{v3_id}/card.png"))
        .await
        .bytes()
        .await
        .expect("png")
        .to_vec();
    let chunks = text_chunks(&exported);
    let keys: Vec<&str> = chunks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["chara", "ccv3"]);
    assert_eq!(unb64(&chunks[1].1), v3_card());
    let v2_copy = unb64(&chunks[0].1);
    assert_eq!(v2_copy["spec"], "chara_card_v2");
    assert_eq!(v2_copy["data"]["name"], "Bea");

    // A preset exports as a card too.
    let preset = me.list().await[0]["id"]
        .as_str()
        .expect("preset")
        .to_owned();
    let card: Value = me
        .get(&format!("/api/companions/{preset}/card.json"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(card["spec"], "chara_card_v3");
    assert!(card["data"]["system_prompt"]
        .as_str()
        .is_some_and(|p| !p.is_empty()));
}

#[tokio::test]
async fn bad_cards_are_refused_with_a_reason_and_change_nothing() {
    let server = TestServer::start(|c| c.limits.max_card_bytes = 64 * 1024).await;
    let me = Browser::new(&server).await;
    let huge = {
        let mut card = v2_card();
        card["data"]["description"] = "x".repeat(70 * 1024).into();
        card.to_string().into_bytes()
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"GIF89a not a card".to_vec(),
            400,
            "expected a PNG image or a JSON file",
        ),
        (png_with(&[]), 400, "no character card in it"),
        (
            png_with(&[("Comment", "hello")]),
            400,
            "no character card in it",
        ),
        (
            png_with(&[("chara", "%%% not base64 %%%")]),
            400,
            "not valid base64",
        ),
        (
            png_with(&[(
                "chara",
                &base64::engine::general_purpose::STANDARD.encode("{nope"),
            )]),
            400,
            "not valid JSON",
        ),
        (
            b"{\"spec\": \"chara_card_v2\"".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            json!({"spec": "chara_card_v9", "data": {"name": "x"}})
                .to_string()
                .into_bytes(),
            400,
            "unsupported card spec",
        ),
        (
            json!({"spec": "chara_card_v2", "data": {"name": ""}})
                .to_string()
                .into_bytes(),
            400,
            "no name",
        ),
        (
            {
                let mut png = png_with(&[("chara", &b64(&v2_card()))]);
                png.truncate(png.len() - 30);
                png
            },
            400,
            "damaged",
        ),
        (huge, 413, "limit is 65536 bytes"),
    ];
    for (bytes, status, needle) in cases {
        let response = me
            .upload(reqwest::Method::POST, "/api/companions/import", bytes)
            .await;
        let (_, message) = refusal(response, status).await;
        assert!(
            message.contains(needle),
            "{message:?} should say {needle:?}"
        );
    }
    assert!(me.own().await.is_empty(), "no bad card was stored");
}

#[tokio::test]
async fn pictures_are_known_by_their_bytes_capped_and_served_inert() {
    let server = TestServer::start(|c| c.limits.max_avatar_bytes = 1_000).await;
    let me = Browser::new(&server).await;
    let made: Value = me
        .json(
            reqwest::Method::POST,
            "/api/companions",
            &json!({"name": "Pic"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = made["id"].as_str().expect("id");
    let path = format!("/api/companions/{id}/avatar");
    refusal(me.get(&path).await, 404).await;

    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec();
    let (_, message) = refusal(me.upload(reqwest::Method::PUT, &path, svg).await, 400).await;
    assert!(message.contains("PNG, JPEG, GIF or WebP"), "{message}");
    let big = [b"GIF89a".as_slice(), &[0u8; 2_000]].concat();
    let (code, _) = refusal(me.upload(reqwest::Method::PUT, &path, big).await, 413).await;
    assert_eq!(code, "too_large");

    // A GIF sent as "text/html" is served as a GIF, inert.
    let gif = [b"GIF89a".as_slice(), &[1u8; 20]].concat();
    let set = me
        .request(reqwest::Method::PUT, &path)
        .header("content-type", "text/html")
        .body(gif.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(set.status(), 200);
    let set: Value = set.json().await.expect("json");
    let url = set["avatar_url"].as_str().expect("avatar_url").to_owned();
    let served = me.get(&url).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/gif");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert!(served.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("sandbox"));
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        gif.as_slice()
    );
    // Another user cannot see it.
    let other = Browser::new(&server).await;
    refusal(other.get(&url).await, 404).await;

    let removed = me
        .request(reqwest::Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 200);
    let removed: Value = removed.json().await.expect("json");
    assert!(removed.get("avatar_url").is_none());
    refusal(me.get(&path).await, 404).await;
}

#[tokio::test]
async fn a_chat_with_a_companion_starts_with_its_greeting_and_follows_its_card() {
    let server = TestServer::start(|_| {}).await;
    let me = Browser::new(&server).await;
    let card = me
        .upload(
            reqwest::Method::POST,
            "/api/companions/import",
            v2_card().to_string().into_bytes(),
        )
        .await;
    assert_eq!(card.status(), 201);
    let card: Value = card.json().await.expect("json");
    let id = card["id"].as_str().expect("id").to_owned();

    let mut client = server.connect(&me.cookie).await;
    let conversation = client
        .start_with(&ClientFrame::Send {
            client_msg_id: "c-1".into(),
            conversation_id: None,
            text: "Is a storm coming?".into(),
            persona: Some(id.clone()),
            greeting: Some(1),
            model: None,
        })
        .await;
    client.until_done(&conversation).await;
    let messages = client.snapshot(&conversation).await;
    let shown: Vec<(Role, &str)> = messages
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(
        shown[0],
        (Role::Assistant, "Back again, User?"),
        "the chosen greeting, filled in"
    );
    assert_eq!(shown[1], (Role::User, "Is a storm coming?"));
    assert_eq!(shown.len(), 3);

    // The model saw the card as the system prompt, the greeting, then the
    // message; the lorebook entry "storm" calls up, and not "ship".
    let sent = server
        .stats()
        .last_messages
        .lock()
        .expect("lock")
        .clone()
        .expect("a request");
    let system = sent[0]["content"].as_str().expect("system prompt");
    assert_eq!(sent[0]["role"], "system");
    assert!(
        system.contains("Aria keeps the lighthouse and writes letters to User."),
        "{system}"
    );
    assert!(
        system.contains("Aria's personality: calm, curious"),
        "{system}"
    );
    assert!(
        system.contains("Scenario: A stormy night at the lighthouse."),
        "{system}"
    );
    assert!(
        system.contains("User: Hi\nAria: The lamp is lit."),
        "{system}"
    );
    assert!(
        system.contains("Aria counts the seconds between lightning and thunder."),
        "{system}"
    );
    assert!(!system.contains("1911"), "{system}");
    assert!(!system.contains("{{"), "{system}");
    assert_eq!(sent[1]["role"], "assistant");
    assert_eq!(sent[1]["content"], "Back again, User?");
    assert_eq!(sent[2]["content"], "Is a storm coming?");
    // The card's post-history instructions come after the history.
    assert_eq!(sent[3]["role"], "system");
    assert_eq!(sent[3]["content"], "Stay Aria; User is listening.");
    assert_eq!(sent.as_array().map(Vec::len), Some(4));

    // The conversation is listed with its companion.
    let list = client
        .conversations(ClientFrame::ListConversations { query: None })
        .await;
    assert_eq!(list[0].persona, id);

    // A companion deleted later: its conversations go on with the default prompt.
    me.request(reqwest::Method::DELETE, &format!("/api/companions/{id}"))
        .send()
        .await
        .expect("delete");
    client
        .send(&ClientFrame::Send {
            client_msg_id: "c-2".into(),
            conversation_id: Some(conversation.clone()),
            text: "Still there?".into(),
            persona: None,
            greeting: None,
            model: None,
        })
        .await;
    client.until_done(&conversation).await;
    let sent = server
        .stats()
        .last_messages
        .lock()
        .expect("lock")
        .clone()
        .expect("a request");
    assert!(sent[0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("sweet AI Girlfriend")));

    // An unknown companion is refused, not guessed.
    client
        .send(&ClientFrame::Send {
            client_msg_id: "c-3".into(),
            conversation_id: None,
            text: "hello".into(),
            persona: Some("nobody".into()),
            greeting: None,
            model: None,
        })
        .await;
    match client
        .until(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Accepted { .. }))
        .await
    {
        ServerFrame::Error { message, .. } => {
            assert!(message.contains("unknown companion"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
}
