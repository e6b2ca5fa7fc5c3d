//! What the companion endpoints do, apart from HTTP: list the presets and
//! a user's own companions, make, import, edit, export and delete them,
//! their pictures, and the system prompt a reply in a conversation with
//! one of them gets.

use std::sync::Arc;

use thiserror::Error;

use super::{
    avatar,
    card::{Card, CardError, CardFields},
    prompt,
};
use crate::protocol::{CompanionDraft, CompanionInfo, Message, UserId};
use crate::server::{
    config::{LimitsConfig, Persona},
    store::{new_id, now_rfc3339, Avatar, CompanionRecord, Store, StoreError},
};

/// Most alternate greetings a companion keeps.
pub const MAX_GREETINGS: usize = 32;
/// Longest companion name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest emoji "picture", in characters (a flag or a family is several).
pub const MAX_EMOJI_CHARS: usize = 8;
pub use crate::card_text::USER_NAME;

/// Why a companion request was refused.
#[derive(Debug, Error)]
pub enum CompanionError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// An upload cut off at the limit while it was read (its size unknown).
    #[error("{what} is over the limit: the limit is {limit} bytes")]
    OverLimit { what: &'static str, limit: usize },
    #[error("companion not found")]
    NotFound,
    #[error("built-in companions cannot be changed; make a copy instead")]
    Preset,
    #[error("you have {max} companions, the most one person may keep; delete one first")]
    TooMany { max: usize },
    #[error("{0}")]
    Card(#[from] CardError),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for CompanionError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => CompanionError::NotFound,
            other => CompanionError::Store(other),
        }
    }
}

/// A companion resolved for a reply: the preset's prompt, or a card.
#[derive(Clone, Debug)]
pub enum PromptSource {
    Preset(String),
    Card {
        card: Box<Card>,
        /// The server's default system prompt (`{{original}}`).
        default_prompt: String,
    },
}

impl PromptSource {
    /// The system prompt of a reply whose history (oldest first) is
    /// `history`: the card's prompt, then the lorebook entries it calls up.
    pub fn system_prompt(&self, history: &[Message]) -> String {
        match self {
            PromptSource::Preset(prompt) => prompt.clone(),
            PromptSource::Card {
                card,
                default_prompt,
            } => {
                let base = prompt::system_prompt(&card.fields, default_prompt, USER_NAME);
                let recent: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
                let lore = prompt::lore(card.book.as_ref(), &recent, &card.fields.name, USER_NAME);
                if lore.is_empty() {
                    base
                } else {
                    format!("{base}\n\n{lore}")
                }
            }
        }
    }

    /// What a card asks to be told after the history, every reply (its
    /// `post_history_instructions`), if anything.
    pub fn post_history(&self) -> Option<String> {
        match self {
            PromptSource::Preset(_) => None,
            PromptSource::Card { card, .. } => prompt::post_history(&card.fields, USER_NAME),
        }
    }
}

/// The companion endpoints' logic; cheap to clone.
#[derive(Clone)]
pub struct Companions {
    store: Arc<dyn Store>,
    presets: Arc<[Persona]>,
    limits: LimitsConfig,
}

impl Companions {
    pub fn new(store: Arc<dyn Store>, presets: &[Persona], limits: LimitsConfig) -> Self {
        Self {
            store,
            presets: presets.into(),
            limits,
        }
    }

    /// The presets, then the user's own, most recently changed first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<CompanionInfo>, CompanionError> {
        let mut out: Vec<CompanionInfo> = self.presets.iter().map(preset_info).collect();
        for record in self.store.list_companions(user).await? {
            match info(&record) {
                Ok(info) => out.push(info),
                // Written by this server, so readable; skipped if not.
                Err(err) => tracing::warn!(companion = %record.id, error = %err, "unreadable card"),
            }
        }
        Ok(out)
    }

    /// One companion: a preset, or one of the user's.
    pub async fn get(&self, user: &UserId, id: &str) -> Result<CompanionInfo, CompanionError> {
        if let Some(preset) = self.preset(id) {
            return Ok(preset_info(preset));
        }
        info(&self.store.companion(user, id).await?)
    }

    fn preset(&self, id: &str) -> Option<&Persona> {
        self.presets.iter().find(|p| p.id == id)
    }

    /// Makes a companion from the fields a person filled in.
    pub async fn create(
        &self,
        user: &UserId,
        draft: CompanionDraft,
    ) -> Result<CompanionInfo, CompanionError> {
        let emoji = self.check(&draft)?;
        let card = Card::new(fields_of(draft, CardFields::default()));
        self.insert(user, &card, emoji, None).await
    }

    /// Makes a companion from a character card (PNG or JSON); a PNG card's
    /// image becomes its picture when it is small enough.
    pub async fn import(
        &self,
        user: &UserId,
        bytes: &[u8],
    ) -> Result<CompanionInfo, CompanionError> {
        let card = Card::read(bytes, self.limits.max_card_bytes)?;
        // A card holds what its tool wrote; it must still fit Tether's limits.
        self.check(&draft_of(&card.fields, None))?;
        let picture = avatar::sniff(bytes)
            .filter(|_| bytes.len() <= self.limits.max_avatar_bytes)
            .map(|content_type| Avatar {
                content_type: content_type.into(),
                bytes: bytes.to_vec(),
            });
        self.insert(user, &card, None, picture).await
    }

    async fn insert(
        &self,
        user: &UserId,
        card: &Card,
        emoji: Option<String>,
        avatar: Option<Avatar>,
    ) -> Result<CompanionInfo, CompanionError> {
        let now = now_rfc3339();
        let record = CompanionRecord {
            id: new_id(),
            user_id: user.clone(),
            card: card.to_json().to_string(),
            emoji,
            avatar_type: avatar.as_ref().map(|a| a.content_type.clone()),
            created_at: now.clone(),
            updated_at: now,
        };
        let max = self.limits.max_companions_per_user;
        if !self.store.create_companion(&record, avatar, max).await? {
            return Err(CompanionError::TooMany { max });
        }
        info(&record)
    }

    /// Replaces the fields a person edits; the rest of the card stays.
    pub async fn update(
        &self,
        user: &UserId,
        id: &str,
        draft: CompanionDraft,
    ) -> Result<CompanionInfo, CompanionError> {
        if self.preset(id).is_some() {
            return Err(CompanionError::Preset);
        }
        let emoji = self.check(&draft)?;
        let mut record = self.store.companion(user, id).await?;
        let mut card = read_card(&record)?;
        card.fields = fields_of(draft, card.fields);
        record.card = card.to_json().to_string();
        record.emoji = emoji;
        record.updated_at = now_rfc3339();
        self.store
            .update_companion(
                user,
                id,
                &record.card,
                record.emoji.as_deref(),
                &record.updated_at,
            )
            .await?;
        info(&record)
    }

    pub async fn delete(&self, user: &UserId, id: &str) -> Result<(), CompanionError> {
        if self.preset(id).is_some() {
            return Err(CompanionError::Preset);
        }
        Ok(self.store.delete_companion(user, id).await?)
    }

    /// The companion as a character card: JSON (its own spec) and the name
    /// to save it under.
    pub async fn export_json(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<(serde_json::Value, String), CompanionError> {
        let card = self.card(user, id).await?;
        let name = file_name(&card.fields.name, "companion");
        Ok((card.to_json(), name))
    }

    /// The companion as a PNG character card: its picture (when a PNG) or
    /// a plain square, with the card inside.
    pub async fn export_png(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<(Vec<u8>, String), CompanionError> {
        let card = self.card(user, id).await?;
        let picture = if self.preset(id).is_some() {
            None
        } else {
            self.store.companion_avatar(user, id).await?
        };
        let image = picture
            .as_ref()
            .filter(|a| a.content_type == "image/png")
            .map(|a| a.bytes.as_slice());
        Ok((
            card.to_png(image),
            file_name(&card.fields.name, "companion"),
        ))
    }

    /// The card of a preset (made on the fly) or of the user's companion.
    async fn card(&self, user: &UserId, id: &str) -> Result<Card, CompanionError> {
        if let Some(preset) = self.preset(id) {
            return Ok(Card::new(CardFields {
                name: preset.name.clone(),
                description: preset.description.clone(),
                system_prompt: preset.system_prompt.clone(),
                ..CardFields::default()
            }));
        }
        read_card(&self.store.companion(user, id).await?)
    }

    /// Every companion the user made or imported, for the download of
    /// everything: its card (every field kept), emoji and picture.
    pub async fn export_all(
        &self,
        user: &UserId,
    ) -> Result<Vec<crate::server::archive::ExportedCompanion>, CompanionError> {
        use base64::Engine as _;
        let mut out = Vec::new();
        for record in self.store.list_companions(user).await? {
            let card = read_card(&record)?;
            let avatar = match record.avatar_type {
                Some(_) => self
                    .store
                    .companion_avatar(user, &record.id)
                    .await?
                    .map(|a| {
                        let data = base64::engine::general_purpose::STANDARD.encode(&a.bytes);
                        format!("data:{};base64,{data}", a.content_type)
                    }),
                None => None,
            };
            out.push(crate::server::archive::ExportedCompanion {
                id: record.id,
                card: card.to_json(),
                emoji: record.emoji,
                avatar,
            });
        }
        Ok(out)
    }

    pub async fn avatar(&self, user: &UserId, id: &str) -> Result<Avatar, CompanionError> {
        self.store
            .companion_avatar(user, id)
            .await?
            .ok_or(CompanionError::NotFound)
    }

    /// Sets the picture: PNG, JPEG, GIF or WebP (by its bytes, whatever
    /// the upload claims), at most `max_avatar_bytes`.
    pub async fn set_avatar(
        &self,
        user: &UserId,
        id: &str,
        bytes: Vec<u8>,
    ) -> Result<CompanionInfo, CompanionError> {
        if self.preset(id).is_some() {
            return Err(CompanionError::Preset);
        }
        let limit = self.limits.max_avatar_bytes;
        if bytes.len() > limit {
            return Err(CompanionError::TooLarge {
                what: "the picture",
                size: bytes.len(),
                limit,
            });
        }
        let content_type = avatar::sniff(&bytes).ok_or_else(|| {
            CompanionError::BadRequest("the picture must be a PNG, JPEG, GIF or WebP image".into())
        })?;
        let avatar = Avatar {
            content_type: content_type.into(),
            bytes,
        };
        self.store
            .set_companion_avatar(user, id, Some(avatar), &now_rfc3339())
            .await?;
        self.get(user, id).await
    }

    pub async fn remove_avatar(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<CompanionInfo, CompanionError> {
        if self.preset(id).is_some() {
            return Err(CompanionError::Preset);
        }
        self.store
            .set_companion_avatar(user, id, None, &now_rfc3339())
            .await?;
        self.get(user, id).await
    }

    /// What a reply in a conversation with `persona` is prompted with: a
    /// preset's prompt, the user's companion's card, or (the companion was
    /// deleted, or the id is unknown) the default preset's prompt.
    pub async fn prompt_source(&self, user: &UserId, persona: &str) -> PromptSource {
        if let Some(preset) = self.preset(persona) {
            return PromptSource::Preset(preset.system_prompt.clone());
        }
        let default_prompt = self
            .presets
            .first()
            .map(|p| p.system_prompt.clone())
            .unwrap_or_default();
        match self
            .store
            .companion(user, persona)
            .await
            .map_err(CompanionError::from)
        {
            Ok(record) => match read_card(&record) {
                Ok(card) => PromptSource::Card {
                    card: Box::new(card),
                    default_prompt,
                },
                Err(_) => PromptSource::Preset(default_prompt),
            },
            Err(err) => {
                if !matches!(err, CompanionError::NotFound) {
                    tracing::warn!(companion = persona, error = %err, "companion unreadable; default prompt");
                }
                PromptSource::Preset(default_prompt)
            }
        }
    }

    /// The greeting a new conversation with the user's companion `id`
    /// starts with (`index` 0 is the greeting, 1… the alternates), macros
    /// filled in; `None` for a companion without one. One read: `NotFound`
    /// when the user has no such companion.
    pub async fn opening(
        &self,
        user: &UserId,
        id: &str,
        index: u32,
    ) -> Result<Option<String>, CompanionError> {
        let card = read_card(&self.store.companion(user, id).await?)?;
        let fields = &card.fields;
        Ok(
            crate::card_text::greeting(&fields.first_mes, &fields.alternate_greetings, index)
                .map(|g| prompt::substitute(g, fields.name.trim(), USER_NAME)),
        )
    }

    /// Checks a draft against the limits; returns its emoji, trimmed.
    fn check(&self, draft: &CompanionDraft) -> Result<Option<String>, CompanionError> {
        let name = draft.name.trim();
        if name.is_empty() {
            return Err(CompanionError::BadRequest(
                "a companion needs a name".into(),
            ));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(CompanionError::BadRequest(format!(
                "the name is longer than {MAX_NAME_CHARS} characters"
            )));
        }
        if draft.alternate_greetings.len() > MAX_GREETINGS {
            return Err(CompanionError::BadRequest(format!(
                "at most {MAX_GREETINGS} alternate greetings"
            )));
        }
        let max = self.limits.max_companion_field_chars;
        let texts = [
            ("description", &draft.description),
            ("personality", &draft.personality),
            ("scenario", &draft.scenario),
            ("greeting", &draft.greeting),
            ("example dialogue", &draft.example_dialogue),
            ("system prompt", &draft.system_prompt),
        ];
        for (what, text) in texts
            .into_iter()
            .chain(
                draft
                    .alternate_greetings
                    .iter()
                    .map(|g| ("alternate greeting", g)),
            )
            .chain([("name", &draft.name)])
        {
            if text.contains('\0') {
                return Err(CompanionError::BadRequest(format!(
                    "the {what} contains a NUL character"
                )));
            }
            let chars = text.chars().count();
            if chars > max {
                return Err(CompanionError::BadRequest(format!(
                    "the {what} is {chars} characters; the limit is {max}"
                )));
            }
        }
        let emoji = draft
            .emoji
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        if let Some(emoji) = emoji {
            if emoji.chars().count() > MAX_EMOJI_CHARS || emoji.contains('\0') {
                return Err(CompanionError::BadRequest(format!(
                    "the emoji is longer than {MAX_EMOJI_CHARS} characters"
                )));
            }
        }
        Ok(emoji.map(str::to_owned))
    }
}

fn read_card(record: &CompanionRecord) -> Result<Card, CompanionError> {
    let value: serde_json::Value = serde_json::from_str(&record.card)
        .map_err(|e| CompanionError::Card(CardError::BadJson(e.to_string())))?;
    Ok(Card::from_value(value)?)
}

/// `base` with the fields a person edits taken from `draft`.
fn fields_of(draft: CompanionDraft, base: CardFields) -> CardFields {
    CardFields {
        name: draft.name.trim().to_owned(),
        description: draft.description,
        personality: draft.personality,
        scenario: draft.scenario,
        first_mes: draft.greeting,
        alternate_greetings: draft
            .alternate_greetings
            .into_iter()
            .filter(|g| !g.trim().is_empty())
            .collect(),
        mes_example: draft.example_dialogue,
        system_prompt: draft.system_prompt,
        ..base
    }
}

fn draft_of(fields: &CardFields, emoji: Option<String>) -> CompanionDraft {
    CompanionDraft {
        name: fields.name.clone(),
        description: fields.description.clone(),
        personality: fields.personality.clone(),
        scenario: fields.scenario.clone(),
        greeting: fields.first_mes.clone(),
        alternate_greetings: fields.alternate_greetings.clone(),
        example_dialogue: fields.mes_example.clone(),
        system_prompt: fields.system_prompt.clone(),
        emoji,
    }
}

fn preset_info(preset: &Persona) -> CompanionInfo {
    CompanionInfo {
        id: preset.id.clone(),
        preset: true,
        fields: CompanionDraft {
            name: preset.name.clone(),
            description: preset.description.clone(),
            system_prompt: preset.system_prompt.clone(),
            ..CompanionDraft::default()
        },
        ..CompanionInfo::default()
    }
}

fn info(record: &CompanionRecord) -> Result<CompanionInfo, CompanionError> {
    let card = read_card(record)?;
    Ok(CompanionInfo {
        id: record.id.clone(),
        preset: false,
        fields: draft_of(&card.fields, record.emoji.clone()),
        // The version in the URL changes with the picture: cached for good.
        avatar_url: record.avatar_type.as_ref().map(|_| {
            format!(
                "/api/companions/{}/avatar?v={}",
                record.id,
                record.updated_at.replace([':', '.'], "")
            )
        }),
        lore_entries: card
            .book
            .as_ref()
            .map_or(0, |b| u32::try_from(b.entries.len()).unwrap_or(u32::MAX)),
        updated_at: record.updated_at.clone(),
    })
}

/// A file name for a download (a card, a conversation): the name's
/// letters, digits, `-` and `_`, spaces as `_`; `fallback` when nothing is left.
pub(crate) fn file_name(name: &str, fallback: &str) -> String {
    let clean: String = name
        .trim()
        .chars()
        .map(|c| if c == ' ' { '_' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        fallback.into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_letters_digits_and_dashes() {
        assert_eq!(file_name("Aria the Keeper", "companion"), "Aria_the_Keeper");
        assert_eq!(file_name("../../etc/passwd", "companion"), "etcpasswd");
        assert_eq!(file_name("\"; rm -rf", "companion"), "_rm_-rf");
        assert_eq!(file_name("…", "companion"), "companion");
        assert_eq!(file_name("Zoë", "companion"), "Zoë");
    }

    #[test]
    fn a_draft_maps_onto_card_fields_and_back() {
        let draft = CompanionDraft {
            name: "  Aria ".into(),
            greeting: "Hi".into(),
            alternate_greetings: vec!["Yo".into(), " ".into()],
            example_dialogue: "<START>".into(),
            ..CompanionDraft::default()
        };
        let base = CardFields {
            creator_notes: "kept".into(),
            ..CardFields::default()
        };
        let fields = fields_of(draft, base);
        assert_eq!(fields.name, "Aria");
        assert_eq!(fields.first_mes, "Hi");
        assert_eq!(fields.alternate_greetings, vec!["Yo"]);
        assert_eq!(fields.mes_example, "<START>");
        assert_eq!(fields.creator_notes, "kept");
        let back = draft_of(&fields, Some("🌊".into()));
        assert_eq!(back.greeting, "Hi");
        assert_eq!(back.emoji.as_deref(), Some("🌊"));
    }
}
