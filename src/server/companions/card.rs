//! Character cards, the community's format for companions: Character Card
//! V2 (`"spec": "chara_card_v2"`) and V3 (`"chara_card_v3"`), as JSON or
//! inside a PNG image (a `tEXt` chunk: `chara` holds the V2 card, `ccv3`
//! the V3 card, each base64 of the JSON). V1 cards (the fields at the top
//! level, no `spec`) are read as V2.
//!
//! [`Card::read`] keeps the whole card as it came ([`Card::raw`]);
//! [`Card::to_json`] writes Tether's fields back into it, so unknown fields,
//! `extensions` and the `character_book` survive a round trip. Fields are
//! read leniently (a `null` or a number where text belongs is empty text):
//! cards in the wild are written by many tools.

use base64::Engine as _;
use serde_json::{Map, Value};
use thiserror::Error;

use super::{
    lore::{CharacterBook, LoreEntry},
    png,
};

/// Why a card was refused. Nothing is stored when reading fails.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum CardError {
    #[error("the card is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not a character card: expected a PNG image or a JSON file")]
    NotACard,
    #[error("the PNG image is damaged: {0}")]
    BadPng(&'static str),
    #[error("the PNG image has no character card in it (no `chara` or `ccv3` text chunk)")]
    NoCard,
    #[error("the card's text in the PNG is not valid base64")]
    BadBase64,
    #[error("the card is not valid JSON: {0}")]
    BadJson(String),
    #[error("unsupported card spec {0:?}: expected chara_card_v2 or chara_card_v3")]
    UnknownSpec(String),
    #[error("the card has no name")]
    NoName,
}

/// Which version of the format a card is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    V2,
    V3,
}

impl Spec {
    fn name(self) -> &'static str {
        match self {
            Spec::V2 => "chara_card_v2",
            Spec::V3 => "chara_card_v3",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Spec::V2 => "2.0",
            Spec::V3 => "3.0",
        }
    }
}

/// The fields of a card that Tether shows, edits and puts into prompts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CardFields {
    pub name: String,
    pub description: String,
    pub personality: String,
    pub scenario: String,
    /// The greeting: the first message of a new chat.
    pub first_mes: String,
    pub alternate_greetings: Vec<String>,
    /// Example dialogue (`<START>`-separated, as the community writes it).
    pub mes_example: String,
    /// Replaces the default system prompt when not empty (`{{original}}`
    /// stands for the default).
    pub system_prompt: String,
    pub post_history_instructions: String,
    pub creator_notes: String,
    pub tags: Vec<String>,
}

/// A card read from a file, or made from a companion for export.
#[derive(Clone, Debug, PartialEq)]
pub struct Card {
    pub spec: Spec,
    pub fields: CardFields,
    /// The lorebook (`character_book`), if the card has one.
    pub book: Option<CharacterBook>,
    /// The whole card as read, or a new skeleton.
    raw: Value,
}

/// The text fields [`CardFields`] maps, by their name in `data`.
const TEXT_FIELDS: [&str; 9] = [
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "system_prompt",
    "post_history_instructions",
    "creator_notes",
];

impl Card {
    /// Reads a card from the bytes of an uploaded file: a PNG with the card
    /// in a text chunk (`ccv3` preferred over `chara`), or JSON. `limit` caps
    /// the file's size.
    pub fn read(bytes: &[u8], limit: usize) -> Result<Card, CardError> {
        if bytes.len() > limit {
            return Err(CardError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        if bytes.starts_with(&png::SIGNATURE) {
            let chunks = png::text_chunks(bytes).map_err(CardError::BadPng)?;
            let encoded = chunks
                .iter()
                .find(|(key, _)| key == "ccv3")
                .or_else(|| chunks.iter().find(|(key, _)| key == "chara"))
                .map(|(_, text)| text)
                .ok_or(CardError::NoCard)?;
            let json = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| CardError::BadBase64)?;
            return Card::from_json_bytes(&json);
        }
        let text = trim_bom(bytes);
        if text.first() == Some(&b'{') {
            return Card::from_json_bytes(text);
        }
        Err(CardError::NotACard)
    }

    fn from_json_bytes(json: &[u8]) -> Result<Card, CardError> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| CardError::BadJson(e.to_string()))?;
        Card::from_value(value)
    }

    /// A card from its JSON value (V1, V2 or V3).
    pub fn from_value(value: Value) -> Result<Card, CardError> {
        let Value::Object(mut top) = value else {
            return Err(CardError::BadJson("the card is not a JSON object".into()));
        };
        let spec = match top.get("spec").and_then(Value::as_str) {
            Some("chara_card_v2") => Spec::V2,
            Some("chara_card_v3") => Spec::V3,
            Some(other) => return Err(CardError::UnknownSpec(other.chars().take(64).collect())),
            // V1: the fields at the top level. Read as V2, keeping them.
            None if top.contains_key("name") => {
                let data = Value::Object(std::mem::take(&mut top));
                top.insert("data".into(), data);
                Spec::V2
            }
            None => return Err(CardError::UnknownSpec(String::new())),
        };
        let data = match top.get("data") {
            Some(Value::Object(data)) => data,
            _ => return Err(CardError::BadJson("the card has no `data` object".into())),
        };
        let fields = CardFields {
            name: text(data, "name"),
            description: text(data, "description"),
            personality: text(data, "personality"),
            scenario: text(data, "scenario"),
            first_mes: text(data, "first_mes"),
            alternate_greetings: texts(data, "alternate_greetings"),
            mes_example: text(data, "mes_example"),
            system_prompt: text(data, "system_prompt"),
            post_history_instructions: text(data, "post_history_instructions"),
            creator_notes: text(data, "creator_notes"),
            tags: texts(data, "tags"),
        };
        if fields.name.trim().is_empty() {
            return Err(CardError::NoName);
        }
        let book = data.get("character_book").and_then(read_book);
        Ok(Card {
            spec,
            fields,
            book,
            raw: Value::Object(top),
        })
    }

    /// A new V3 card for a companion made in Tether.
    pub fn new(fields: CardFields) -> Card {
        let raw = serde_json::json!({
            "spec": Spec::V3.name(),
            "spec_version": Spec::V3.version(),
            "data": {
                "creator": "",
                "character_version": "",
                "extensions": {},
                "group_only_greetings": [],
            },
        });
        Card {
            spec: Spec::V3,
            fields,
            book: None,
            raw,
        }
    }

    /// The card as it came in, Tether's fields not yet written back.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The card as JSON of its own spec, with Tether's fields written into
    /// `data` and everything else as it was read.
    pub fn to_json(&self) -> Value {
        self.with_spec(self.spec)
    }

    /// The card as JSON of `spec` (a V3 card written as V2 for the `chara`
    /// chunk older readers look for).
    fn with_spec(&self, spec: Spec) -> Value {
        let mut card = self.raw.clone();
        let Value::Object(top) = &mut card else {
            unreachable!("a card's raw value is always an object")
        };
        top.insert("spec".into(), spec.name().into());
        top.insert("spec_version".into(), spec.version().into());
        let data = top
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        let Value::Object(data) = data else {
            unreachable!("just made an object")
        };
        let f = &self.fields;
        for (key, value) in TEXT_FIELDS.iter().zip([
            &f.name,
            &f.description,
            &f.personality,
            &f.scenario,
            &f.first_mes,
            &f.mes_example,
            &f.system_prompt,
            &f.post_history_instructions,
            &f.creator_notes,
        ]) {
            data.insert((*key).into(), value.as_str().into());
        }
        data.insert(
            "alternate_greetings".into(),
            f.alternate_greetings.clone().into(),
        );
        data.insert("tags".into(), f.tags.clone().into());
        for (key, empty) in [
            ("creator", Value::from("")),
            ("character_version", Value::from("")),
            ("extensions", Value::Object(Map::new())),
        ] {
            data.entry(key).or_insert(empty);
        }
        if spec == Spec::V3 {
            data.entry("group_only_greetings")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        card
    }

    /// The card inside a PNG: `image` (a PNG, its own card chunks removed)
    /// or, when there is none or it is not a PNG, a plain square. A V3 card
    /// is written twice, `ccv3` and (as V2) `chara`, as the V3 spec asks.
    pub fn to_png(&self, image: Option<&[u8]>) -> Vec<u8> {
        let encode = |value: &Value| {
            base64::engine::general_purpose::STANDARD.encode(value.to_string().as_bytes())
        };
        let mut chunks = vec![("chara", encode(&self.with_spec(Spec::V2)))];
        if self.spec == Spec::V3 {
            chunks.push(("ccv3", encode(&self.to_json())));
        }
        let base = match image {
            Some(image) if png::text_chunks(image).is_ok() => image.to_vec(),
            _ => png::placeholder(),
        };
        png::with_text_chunks(&base, &["chara", "ccv3"], &chunks)
    }
}

/// The bytes without a UTF-8 byte order mark and leading white space.
fn trim_bom(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// `data[key]` as text: strings as they are, numbers and booleans written
/// out, anything else (null, missing, arrays, objects) empty.
fn text(data: &Map<String, Value>, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => String::new(),
    }
}

/// `data[key]` as a list of non-empty texts.
fn texts(data: &Map<String, Value>, key: &str) -> Vec<String> {
    match data.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn flag(entry: &Map<String, Value>, key: &str, default: bool) -> bool {
    entry.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// The lorebook of a card, if it has entries Tether can use.
fn read_book(book: &Value) -> Option<CharacterBook> {
    let book = book.as_object()?;
    let entries: Vec<LoreEntry> = book
        .get("entries")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .map(|entry| LoreEntry {
            keys: texts(entry, "keys"),
            secondary_keys: texts(entry, "secondary_keys"),
            content: text(entry, "content"),
            enabled: flag(entry, "enabled", true),
            constant: flag(entry, "constant", false),
            selective: flag(entry, "selective", false),
            case_sensitive: flag(entry, "case_sensitive", false),
            insertion_order: entry
                .get("insertion_order")
                .and_then(Value::as_i64)
                .unwrap_or(100),
        })
        .filter(|entry| !entry.content.trim().is_empty())
        .collect();
    if entries.is_empty() {
        return None;
    }
    let number = |key: &str| {
        book.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    Some(CharacterBook {
        scan_depth: number("scan_depth"),
        token_budget: number("token_budget"),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMIT: usize = 1 << 20;

    fn v2() -> Value {
        json!({
            "spec": "chara_card_v2",
            "spec_version": "2.0",
            "data": {
                "name": "Aria",
                "description": "{{char}} is a lighthouse keeper who talks to {{user}}.",
                "personality": "calm, curious",
                "scenario": "A stormy night.",
                "first_mes": "Hello, {{user}}. The lamp is lit.",
                "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Welcome.",
                "creator_notes": "made for tests",
                "system_prompt": null,
                "post_history_instructions": "",
                "alternate_greetings": ["Back again?", ""],
                "tags": ["sea"],
                "creator": "tests",
                "character_version": "1",
                "extensions": {"talkativeness": "0.5", "depth_prompt": {"depth": 4}},
                "character_book": {
                    "scan_depth": 3,
                    "extensions": {},
                    "entries": [
                        {"keys": ["storm"], "content": "Storms here last three days.",
                         "extensions": {"x": 1}, "enabled": true, "insertion_order": 10},
                        {"keys": ["ship"], "content": "", "extensions": {}, "enabled": true,
                         "insertion_order": 1}
                    ]
                }
            },
            "unknown_top_level": {"kept": true}
        })
    }

    #[test]
    fn a_v2_json_card_is_read_leniently_and_keeps_everything_on_the_way_out() {
        let bytes = serde_json::to_vec(&v2()).expect("json");
        let card = Card::read(&bytes, LIMIT).expect("card");
        assert_eq!(card.spec, Spec::V2);
        assert_eq!(card.fields.name, "Aria");
        assert_eq!(card.fields.system_prompt, "", "null is empty text");
        assert_eq!(card.fields.alternate_greetings, vec!["Back again?"]);
        let book = card.book.as_ref().expect("lorebook");
        assert_eq!(book.scan_depth, Some(3));
        assert_eq!(book.entries.len(), 1, "the empty entry is left out");
        // Round trip: unchanged fields, the same card (null became "").
        let mut expected = v2();
        expected["data"]["system_prompt"] = "".into();
        expected["data"]["alternate_greetings"] = json!(["Back again?"]);
        assert_eq!(card.to_json(), expected);
        // An edit is written back; the rest stays.
        let mut edited = card.clone();
        edited.fields.personality = "bold".into();
        let out = edited.to_json();
        assert_eq!(out["data"]["personality"], "bold");
        assert_eq!(out["data"]["extensions"]["depth_prompt"]["depth"], 4);
        assert_eq!(
            out["data"]["character_book"]["entries"][0]["extensions"]["x"],
            1
        );
        assert_eq!(out["unknown_top_level"]["kept"], true);
    }

    #[test]
    fn a_v2_png_card_round_trips() {
        let card = Card::read(&serde_json::to_vec(&v2()).expect("json"), LIMIT).expect("card");
        let png = card.to_png(None);
        assert!(png.starts_with(&png::SIGNATURE));
        let chunks = png::text_chunks(&png).expect("valid png");
        assert_eq!(chunks.len(), 1, "a V2 card has only `chara`");
        let again = Card::read(&png, LIMIT).expect("read back");
        assert_eq!(again.to_json(), card.to_json());
        assert_eq!((again.fields, again.book), (card.fields, card.book));
    }

    #[test]
    fn a_v3_png_card_carries_ccv3_and_a_v2_chara_and_ccv3_wins() {
        let mut value = v2();
        value["spec"] = "chara_card_v3".into();
        value["spec_version"] = "3.0".into();
        value["data"]["nickname"] = "Ari".into();
        value["data"]["group_only_greetings"] = json!([]);
        value["data"]["assets"] =
            json!([{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]);
        let card = Card::from_value(value).expect("card");
        assert_eq!(card.spec, Spec::V3);
        let png = card.to_png(Some(&png::placeholder()));
        let chunks = png::text_chunks(&png).expect("valid png");
        let keys: Vec<&str> = chunks.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["chara", "ccv3"]);
        let again = Card::read(&png, LIMIT).expect("read back");
        assert_eq!(again.spec, Spec::V3, "ccv3 is preferred");
        assert_eq!(again.to_json()["data"]["nickname"], "Ari");
        assert_eq!(again.to_json()["data"]["assets"][0]["uri"], "ccdefault:");
        // The V2 copy names the V2 spec.
        let (_, chara) = &chunks[0];
        let v2: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(chara)
                .expect("base64"),
        )
        .expect("json");
        assert_eq!(v2["spec"], "chara_card_v2");
        assert_eq!(v2["data"]["name"], "Aria");
    }

    #[test]
    fn exporting_into_a_png_with_an_old_card_replaces_it() {
        let card = Card::from_value(v2()).expect("card");
        let first = card.to_png(None);
        let mut renamed = card.clone();
        renamed.fields.name = "Bea".into();
        let second = renamed.to_png(Some(&first));
        assert_eq!(png::text_chunks(&second).expect("png").len(), 1);
        assert_eq!(Card::read(&second, LIMIT).expect("card").fields.name, "Bea");
    }

    #[test]
    fn a_v1_card_is_read_as_v2() {
        let v1 = json!({"name": "Old", "description": "d", "personality": "p",
                        "scenario": "s", "first_mes": "hi", "mes_example": "", "extra": 1});
        let card = Card::read(v1.to_string().as_bytes(), LIMIT).expect("card");
        assert_eq!(card.spec, Spec::V2);
        assert_eq!(card.fields.first_mes, "hi");
        let out = card.to_json();
        assert_eq!(out["spec"], "chara_card_v2");
        assert_eq!(out["data"]["extra"], 1);
    }

    #[test]
    fn a_new_card_is_v3_with_the_required_fields() {
        let card = Card::new(CardFields {
            name: "Nova".into(),
            first_mes: "Hi!".into(),
            ..CardFields::default()
        });
        let out = card.to_json();
        assert_eq!(out["spec"], "chara_card_v3");
        for key in [
            "name",
            "description",
            "personality",
            "scenario",
            "first_mes",
            "mes_example",
            "creator_notes",
            "system_prompt",
            "post_history_instructions",
            "alternate_greetings",
            "tags",
            "creator",
            "character_version",
            "extensions",
            "group_only_greetings",
        ] {
            assert!(out["data"].get(key).is_some(), "{key} missing");
        }
        assert_eq!(
            Card::from_value(out).expect("reads back").fields,
            card.fields
        );
    }

    #[test]
    fn bad_cards_are_refused_with_a_reason() {
        let json = serde_json::to_vec(&v2()).expect("json");
        assert_eq!(
            Card::read(&json, 10),
            Err(CardError::TooLarge {
                size: json.len(),
                limit: 10
            })
        );
        assert_eq!(Card::read(b"GIF89a....", LIMIT), Err(CardError::NotACard));
        assert_eq!(Card::read(b"", LIMIT), Err(CardError::NotACard));
        assert!(matches!(
            Card::read(b"{not json", LIMIT),
            Err(CardError::BadJson(_))
        ));
        assert!(matches!(
            Card::read(b"[1,2]", LIMIT),
            Err(CardError::NotACard)
        ));
        assert!(matches!(
            Card::read(br#"{"spec":"chara_card_v9","data":{"name":"x"}}"#, LIMIT),
            Err(CardError::UnknownSpec(s)) if s == "chara_card_v9"
        ));
        assert_eq!(
            Card::read(br#"{"spec":"chara_card_v2","data":{"name":"  "}}"#, LIMIT),
            Err(CardError::NoName)
        );
        assert!(matches!(
            Card::read(br#"{"spec":"chara_card_v2","data":"x"}"#, LIMIT),
            Err(CardError::BadJson(_))
        ));
        // A PNG without a card, with a broken chunk, with broken base64 or JSON.
        let plain = png::placeholder();
        assert_eq!(Card::read(&plain, LIMIT), Err(CardError::NoCard));
        let mut cut = Card::from_value(v2()).expect("card").to_png(None);
        cut.truncate(cut.len() - 20);
        assert!(matches!(Card::read(&cut, LIMIT), Err(CardError::BadPng(_))));
        let not_base64 = png::with_text_chunks(&plain, &[], &[("chara", "***".into())]);
        assert_eq!(Card::read(&not_base64, LIMIT), Err(CardError::BadBase64));
        let not_json = png::with_text_chunks(
            &plain,
            &[],
            &[(
                "chara",
                base64::engine::general_purpose::STANDARD.encode("nope"),
            )],
        );
        assert!(matches!(
            Card::read(&not_json, LIMIT),
            Err(CardError::BadJson(_))
        ));
    }
}
