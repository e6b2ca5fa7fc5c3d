//! Storage of the companions people make or import ([`CompanionStore`],
//! a part of every [`Store`](super::Store)): the card as JSON text (every
//! field of an imported card, kept for export), an emoji, and the picture
//! in a row of its own so listing never reads image bytes. Every method
//! takes the owner; another user's companion is `NotFound`.

use async_trait::async_trait;

use super::StoreError;
use crate::protocol::UserId;

/// A companion row (without its picture's bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanionRecord {
    pub id: String,
    pub user_id: UserId,
    /// The character card, JSON (`chara_card_v2` or `chara_card_v3`).
    pub card: String,
    pub emoji: Option<String>,
    /// The picture's content type, when it has one.
    pub avatar_type: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A companion's picture: bytes of a sniffed, allowed image type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Avatar {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// What storage does for companions.
#[async_trait]
pub trait CompanionStore: Send + Sync {
    /// The user's companions, most recently changed first.
    async fn list_companions(&self, user: &UserId) -> Result<Vec<CompanionRecord>, StoreError>;

    /// One companion of the user.
    async fn companion(&self, user: &UserId, id: &str) -> Result<CompanionRecord, StoreError>;

    /// Stores a new companion (and its picture), creating the user row if
    /// missing; `false` (nothing stored) when the user already has `max`.
    async fn create_companion(
        &self,
        record: &CompanionRecord,
        avatar: Option<Avatar>,
        max: usize,
    ) -> Result<bool, StoreError>;

    /// Replaces a companion's card and emoji, and sets `updated_at`.
    async fn update_companion(
        &self,
        user: &UserId,
        id: &str,
        card: &str,
        emoji: Option<&str>,
        updated_at: &str,
    ) -> Result<(), StoreError>;

    /// Deletes a companion and its picture. Its conversations stay (they
    /// go on with the default persona's prompt).
    async fn delete_companion(&self, user: &UserId, id: &str) -> Result<(), StoreError>;

    /// The companion's picture, if it has one.
    async fn companion_avatar(&self, user: &UserId, id: &str)
        -> Result<Option<Avatar>, StoreError>;

    /// Sets (or with `None` removes) the picture, and sets `updated_at`.
    async fn set_companion_avatar(
        &self,
        user: &UserId,
        id: &str,
        avatar: Option<Avatar>,
        updated_at: &str,
    ) -> Result<(), StoreError>;
}
