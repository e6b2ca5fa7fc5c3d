//! The export formats (JSON): a conversation (`tether.conversation`) and
//! everything of a user (`tether.export`). Documented in docs/protocol.md
//! "Take your data"; a change here must be reflected there.

use serde::{Deserialize, Serialize};

use crate::{
    protocol::{FinishReason, Role, Usage},
    server::store::ConversationTree,
};

/// `format` of a conversation export.
pub const CONVERSATION_FORMAT: &str = "tether.conversation";
/// `format` of the download of everything.
pub const DATA_FORMAT: &str = "tether.export";
/// The version this server writes and reads.
pub const VERSION: u32 = 1;

/// A conversation with every message: all branches and alternatives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationExport {
    pub format: String,
    pub version: u32,
    pub title: String,
    /// The companion (persona) id it was with.
    pub companion: String,
    pub created_at: String,
    pub updated_at: String,
    /// The model its replies are asked of (absent: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Oldest first; each message after the one it follows.
    pub messages: Vec<ExportedMessage>,
}

/// One message of a [`ConversationExport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedMessage {
    pub id: String,
    /// The message it follows; absent for a first message. Messages with
    /// the same `parent` are alternatives of one turn (swipes, edits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub role: Role,
    pub content: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// The alternative the conversation goes on from (one per turn).
    pub chosen: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The model that wrote a reply, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A companion in the download of everything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedCompanion {
    pub id: String,
    /// Its character card (`chara_card_v2` / `chara_card_v3` JSON, every
    /// field kept): importable anywhere cards are.
    pub card: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Its picture, as a `data:` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// Everything of a user, one file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataExport {
    pub format: String,
    pub version: u32,
    pub exported_at: String,
    /// Oldest first.
    pub conversations: Vec<ConversationExport>,
    pub companions: Vec<ExportedCompanion>,
    /// Settings kept for the user by the server: none yet (the theme is
    /// the browser's); an object so that later ones fit.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ConversationExport {
    pub fn from_tree(tree: ConversationTree) -> Self {
        let ConversationTree {
            conversation,
            messages,
        } = tree;
        Self {
            format: CONVERSATION_FORMAT.into(),
            version: VERSION,
            title: conversation.title,
            companion: conversation.persona,
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
            model: conversation.model,
            messages: messages
                .into_iter()
                .map(|m| ExportedMessage {
                    id: m.message.id.0,
                    parent: m.parent.map(|p| p.0),
                    role: m.message.role,
                    content: m.message.content,
                    created_at: m.message.created_at,
                    finish_reason: m.message.finish_reason,
                    chosen: m.selected,
                    usage: m.usage,
                    model: m.message.model,
                })
                .collect(),
        }
    }
}

impl DataExport {
    pub fn new(conversations: Vec<ConversationExport>, companions: Vec<ExportedCompanion>) -> Self {
        Self {
            format: DATA_FORMAT.into(),
            version: VERSION,
            exported_at: crate::server::store::now_rfc3339(),
            conversations,
            companions,
            settings: serde_json::Map::new(),
        }
    }
}
