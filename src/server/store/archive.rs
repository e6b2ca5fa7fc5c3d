//! Whole conversations in and out ([`ArchiveStore`], a part of every
//! [`Store`](super::Store)): a conversation as its tree of messages, every
//! branch and alternative with which one is chosen, for "take your data"
//! (export as JSON or Markdown, import an export, download everything).

use async_trait::async_trait;

use super::{ConversationRecord, StoreError};
use crate::protocol::{ConversationId, Message, MessageId, Usage, UserId};

/// A message of a conversation's tree.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeMessage {
    /// Without `alternatives` (the tree says them).
    pub message: Message,
    /// The message it follows; `None` for a first message.
    pub parent: Option<MessageId>,
    /// The chosen one of its alternatives.
    pub selected: bool,
    pub usage: Option<Usage>,
}

/// A conversation with every message, each after its parent (oldest first).
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationTree {
    pub conversation: ConversationRecord,
    pub messages: Vec<TreeMessage>,
}

/// What storage does for exports and imports.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Every conversation id of the user, oldest first.
    async fn conversation_ids(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError>;

    /// The user's conversation with every message; `NotFound` for anybody else.
    async fn conversation_tree(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<ConversationTree, StoreError>;

    /// Stores `tree` as a new conversation of `user` (its ids, fresh, as
    /// given; each message after its parent), all or nothing; an
    /// unfinished reply is stored as `error`. The path shown follows the
    /// chosen messages.
    async fn import_conversation(
        &self,
        user: &UserId,
        tree: ConversationTree,
    ) -> Result<ConversationRecord, StoreError>;
}
