//! Wire types of the Tether protocol, version 1 (`docs/protocol.md`).
//!
//! This module is compiled into both halves: the axum server serialises
//! [`ServerFrame`]s and parses [`ClientFrame`]s, the WASM client does the
//! reverse. Nothing else in the crate declares a frame. It holds data and
//! (de)serialisation only: no I/O, no policy, no server- or browser-only types.
//!
//! Every frame is one JSON object tagged by `"type"` (snake_case). Unknown
//! fields are ignored so that later additions never break older peers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// A user, as issued by the server (never chosen by the client).
    UserId
);
string_id!(
    /// A conversation, unique across all users.
    ConversationId
);
string_id!(
    /// A stored message (user or assistant).
    MessageId
);
string_id!(
    /// A client-made idempotency key for `send`, `regenerate` and `continue`.
    ClientMsgId
);

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// Why an assistant message ended. Its text (`as_str`, `parse`) is the
/// snake_case name serde uses.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FinishReason {
    /// The model finished on its own.
    Stop,
    /// The model hit its token limit.
    Length,
    /// A user (or server shutdown) stopped it; the partial text is kept.
    Stopped,
    /// The upstream failed; the partial text is kept.
    Error,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(value: &str) -> Option<Self> {
        value.parse().ok()
    }
}

/// A stored message as the client sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
    /// RFC 3339.
    pub created_at: String,
    /// Assistant only; `null` while streaming.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Extension (swipes and branches): where this message stands among
    /// the alternatives of its turn (the other replies to the same message,
    /// the other edits of the same message). Absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Alternatives>,
    /// Extension (model choice): the model that wrote this reply, when it
    /// was not the server's default one (assistant messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A message's place among the alternatives of its turn: `index` (from 0)
/// of `count`, oldest first. `select_alternative` with another index shows
/// that alternative and the branch that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Alternatives {
    pub index: u32,
    pub count: u32,
}

impl Alternatives {
    /// `index` of `count`, or `None` for a message that has no others.
    pub fn of(index: u32, count: u32) -> Option<Self> {
        (count > 1 && index < count).then_some(Self { index, count })
    }

    /// [`Alternatives::of`] counts as a database returns them.
    pub fn counted(index: i64, count: i64) -> Option<Self> {
        Self::of(
            u32::try_from(index).unwrap_or(u32::MAX),
            u32::try_from(count).unwrap_or(u32::MAX),
        )
    }
}

/// The assistant message being generated, as carried in `snapshot`.
/// Outside the server it is read without serde's `flatten` buffering (see
/// `frame_decoder`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ssr", derive(Deserialize))]
pub struct StreamingMessage {
    #[serde(flatten)]
    pub message: Message,
    /// The `index` of the next `delta` this connection will receive.
    pub next_index: u64,
}

/// Limits the server enforces, announced in `hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_message_chars: usize,
}

/// Token accounting reported by the upstream, when it reports any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// Machine-readable reason of an `error` frame. Its text (`as_str`) is the
/// snake_case name serde uses.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    TooLarge,
    Unauthorized,
    NotFound,
    RateLimited,
    /// A reply is already streaming in that conversation.
    Busy,
    UpstreamError,
    UpstreamTimeout,
    Internal,
    /// Extension: the server's storage cannot be used right now (disk full,
    /// read-only, locked, not reachable); nothing was stored, try again later.
    Unavailable,
    /// Extension: the account's quota for today (messages or model tokens)
    /// is used up; it resets at midnight UTC.
    QuotaExceeded,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A conversation as listed in the sidebar (extension, see docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub title: String,
    pub persona: String,
    /// RFC 3339; the list is ordered by it, newest first.
    pub updated_at: String,
    /// Extension (model choice): the model its replies are asked of
    /// (absent: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A persona the server offers for new conversations (extension, see docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonaInfo {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// A companion (extension, docs "Companions"): a built-in preset (the
/// server's personas) or one the user made or imported from a character
/// card. Its `id` is what `send.persona` names for a new conversation.
///
/// Outside the server it is read without serde's `flatten` buffering (see
/// `frame_decoder`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ssr", derive(Deserialize))]
pub struct CompanionInfo {
    pub id: String,
    /// A built-in preset: read-only, the same for everyone.
    #[serde(default)]
    pub preset: bool,
    #[serde(flatten)]
    pub fields: CompanionDraft,
    /// Where its picture is (`GET`), if it has one; changes with the picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Entries of its lorebook (from an imported card; kept on export).
    #[serde(default)]
    pub lore_entries: u32,
    /// RFC 3339; empty for presets.
    #[serde(default)]
    pub updated_at: String,
}

/// The fields of a companion a person edits (`POST /api/companions`,
/// `PUT /api/companions/:id`); the names of a character card's fields where
/// they differ are in the docs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompanionDraft {
    pub name: String,
    /// Shown in the gallery and put into the prompt.
    pub description: String,
    pub personality: String,
    pub scenario: String,
    /// The first message of a new chat (`first_mes`).
    pub greeting: String,
    /// Other first messages to swipe between (`alternate_greetings`).
    pub alternate_greetings: Vec<String>,
    /// How the companion writes (`mes_example`).
    pub example_dialogue: String,
    /// Replaces the server's default system prompt when not empty;
    /// `{{original}}` stands for the default.
    pub system_prompt: String,
    /// Shown when there is no picture (one emoji).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

/// Whether the model can answer yet (extension): a local model that
/// `scripts/start.sh` installs in the background is not ready for the first
/// minutes. Messages sent meanwhile are held, then answered.
/// Outside the server it is read like [`ServerFrame`] (`frame_decoder`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ssr", derive(Deserialize))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelSetup {
    /// Replies are answered as they come.
    Ready,
    /// Being installed or loaded: `step` of `steps`, what it is doing, and
    /// for how long the set-up has run.
    Installing {
        step: u32,
        steps: u32,
        label: String,
        elapsed_secs: u64,
    },
    /// The set-up failed; replies end with `unavailable` and this reason.
    Failed { reason: String },
}

impl ModelSetup {
    pub fn is_ready(&self) -> bool {
        matches!(self, ModelSetup::Ready)
    }
}

/// Frames the server sends.
///
/// The server decodes them (cluster log, tests) with serde's derive; every
/// other build (the page) with [`ServerFrame::from_json`], which gives the
/// same frames without serde's buffering of internally tagged enums
/// (smaller WASM; docs/performance.md "Page weight").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ssr", derive(Deserialize))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello {
        protocol: u32,
        user_id: UserId,
        server: String,
        limits: Limits,
        /// Extension: personas selectable for a new conversation.
        #[serde(default)]
        personas: Vec<PersonaInfo>,
        /// Extension (model choice): the models a conversation may pick
        /// (what the provider lists; absent or one: no choice) and the
        /// default one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        models: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Extension: the model is still being set up (absent: it is ready).
        /// `GET /api/model-setup` answers the same, for following it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_setup: Option<ModelSetup>,
    },
    /// A `send` (or `regenerate`) was stored.
    Accepted {
        client_msg_id: ClientMsgId,
        conversation_id: ConversationId,
        message_id: MessageId,
        duplicate: bool,
    },
    /// Answer to `subscribe`: replaces the client's view of the conversation.
    Snapshot {
        conversation_id: ConversationId,
        /// The newest stored messages (at most `HISTORY_WINDOW`), oldest first.
        messages: Vec<Message>,
        streaming: Option<StreamingMessage>,
        /// Extension: older messages exist than the first of `messages`; ask
        /// for them with `history` (`before`: that message's id). Absent
        /// means `false`.
        #[serde(default, skip_serializing_if = "is_false")]
        has_more: bool,
    },
    /// A complete message appeared.
    Message {
        conversation_id: ConversationId,
        message: Message,
    },
    /// One piece of a streaming assistant reply.
    Delta {
        conversation_id: ConversationId,
        message_id: MessageId,
        index: u64,
        text: String,
    },
    /// The assistant message is complete and stored.
    Done {
        conversation_id: ConversationId,
        message_id: MessageId,
        finish_reason: FinishReason,
        usage: Option<Usage>,
        ttft_ms: Option<f64>,
        total_ms: f64,
        /// Extension (model choice): the model that wrote the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Something was refused or failed.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<ClientMsgId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// Extension: the conversation the error is about, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<ConversationId>,
    },
    /// Answer to `ping`.
    Pong { nonce: serde_json::Value },
    /// Extension: the user's conversations, newest activity first (answer to
    /// `list_conversations`, `rename_conversation`, `delete_conversation`).
    Conversations {
        items: Vec<ConversationSummary>,
        /// The search this list answers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
    /// Extension: something of the user's changed outside any one
    /// conversation (in another tab or device, or this one): refetch it.
    Changed { what: Changed },
    /// Extension (long conversations): answer to `history`, the stored
    /// messages just before `before` (or the newest), oldest first.
    HistoryPage {
        conversation_id: ConversationId,
        /// The cursor this page answers (`null`: the newest page).
        before: Option<MessageId>,
        messages: Vec<Message>,
        /// Older messages exist than the first of `messages`.
        has_more: bool,
    },
}

/// What a `changed` frame says changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Changed {
    /// The user's companions (`GET /api/companions`).
    Companions,
    /// The user's list of conversations (`list_conversations`).
    Conversations,
}

/// `skip_serializing_if` of flags that default to `false`.
fn is_false(value: &bool) -> bool {
    !*value
}

impl ServerFrame {
    /// An `error` frame with only a code and a human-readable reason.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            client_msg_id: None,
            retry_after_ms: None,
            conversation_id: None,
        }
    }

    /// The conversation this frame belongs to, if any.
    pub fn conversation_id(&self) -> Option<&ConversationId> {
        match self {
            ServerFrame::Accepted {
                conversation_id, ..
            }
            | ServerFrame::Snapshot {
                conversation_id, ..
            }
            | ServerFrame::Message {
                conversation_id, ..
            }
            | ServerFrame::Delta {
                conversation_id, ..
            }
            | ServerFrame::Done {
                conversation_id, ..
            }
            | ServerFrame::HistoryPage {
                conversation_id, ..
            } => Some(conversation_id),
            ServerFrame::Error {
                conversation_id, ..
            } => conversation_id.as_ref(),
            ServerFrame::Hello { .. }
            | ServerFrame::Pong { .. }
            | ServerFrame::Conversations { .. }
            | ServerFrame::Changed { .. } => None,
        }
    }
}

/// Frames the client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Store a user message and stream an assistant reply.
    Send {
        client_msg_id: ClientMsgId,
        /// `null`: start a new conversation.
        conversation_id: Option<ConversationId>,
        text: String,
        /// Persona id, only for a new conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        persona: Option<String>,
        /// Extension (companions): which greeting of the companion the new
        /// conversation starts with (0: its greeting, 1…: its alternates).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        greeting: Option<u32>,
        /// Extension (model choice): the model of a new conversation (one
        /// of `hello.models`; absent: the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Get a `snapshot` and then every later event of the conversation.
    Subscribe { conversation_id: ConversationId },
    /// Stop receiving the conversation's events.
    Unsubscribe { conversation_id: ConversationId },
    /// Cancel the running reply, keeping the partial text.
    Stop { conversation_id: ConversationId },
    /// A new reply to the last user message. The reply it replaces is kept
    /// as an alternative of that turn (extension: swipes).
    Regenerate {
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
    },
    /// Extension: stream more text into the last assistant message, which
    /// ended early (`finish_reason` `error`, `length` or `stopped`): same
    /// message id, its stored text kept and extended.
    Continue {
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
    },
    /// Extension (branches): a new version of a message shown in the
    /// conversation, as a new branch from that point; the earlier one and
    /// everything after it stay reachable as an alternative. A user
    /// message's edit is answered by a new reply (like `send`); an
    /// assistant message's edit is stored as it is (`accepted`, then a
    /// `snapshot` to every view).
    Edit {
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
        message_id: MessageId,
        text: String,
    },
    /// Extension (swipes and branches): continue the conversation from
    /// alternative `index` of the turn `message_id` belongs to. Every view
    /// of the conversation gets a `snapshot` of the path now shown.
    SelectAlternative {
        conversation_id: ConversationId,
        message_id: MessageId,
        index: u32,
    },
    /// Extension (swipes and branches): delete a message and everything
    /// after it, on every branch (a swipe, a branch point). Every view of
    /// the conversation gets a `snapshot`.
    DeleteMessage {
        conversation_id: ConversationId,
        message_id: MessageId,
    },
    /// Application-level keep-alive, answered by `pong`.
    Ping {
        #[serde(default)]
        nonce: serde_json::Value,
    },
    /// Extension: list the user's conversations; `query` searches titles and messages.
    ListConversations {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
    /// Extension: rename a conversation.
    RenameConversation {
        conversation_id: ConversationId,
        title: String,
    },
    /// Extension (model choice): the model a conversation's next replies
    /// are asked of (one of `hello.models`). Answered by `conversations`.
    SetModel {
        conversation_id: ConversationId,
        model: String,
    },
    /// Extension: delete a conversation and its messages (a running reply is stopped).
    DeleteConversation { conversation_id: ConversationId },
    /// Extension (long conversations): the stored messages before the
    /// message `before` (absent: the newest), at most `limit` (absent: the
    /// server's `HISTORY_WINDOW`; capped at `HISTORY_PAGE_MAX`). Answered by
    /// `history_page`.
    History {
        conversation_id: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

/// The body of `POST /api/chat` (HTTP streaming transport): the fields of a
/// `send` frame. A whole `send` frame is accepted too (`type` is ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    pub client_msg_id: ClientMsgId,
    /// Absent or `null`: start a new conversation.
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    pub text: String,
    /// Persona id, only for a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// Which greeting a new conversation with a companion starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<u32>,
    /// The model of a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl From<SendRequest> for ClientFrame {
    fn from(request: SendRequest) -> Self {
        ClientFrame::Send {
            client_msg_id: request.client_msg_id,
            conversation_id: request.conversation_id,
            text: request.text,
            persona: request.persona,
            greeting: request.greeting,
            model: request.model,
        }
    }
}

impl ClientFrame {
    /// The idempotency key of a frame that starts a reply.
    pub fn client_msg_id(&self) -> Option<&ClientMsgId> {
        match self {
            ClientFrame::Send { client_msg_id, .. }
            | ClientFrame::Regenerate { client_msg_id, .. }
            | ClientFrame::Continue { client_msg_id, .. }
            | ClientFrame::Edit { client_msg_id, .. } => Some(client_msg_id),
            ClientFrame::Subscribe { .. }
            | ClientFrame::SelectAlternative { .. }
            | ClientFrame::SetModel { .. }
            | ClientFrame::DeleteMessage { .. }
            | ClientFrame::Unsubscribe { .. }
            | ClientFrame::Stop { .. }
            | ClientFrame::Ping { .. }
            | ClientFrame::ListConversations { .. }
            | ClientFrame::RenameConversation { .. }
            | ClientFrame::DeleteConversation { .. }
            | ClientFrame::History { .. } => None,
        }
    }

    /// The conversation the frame is about, if it names one.
    pub fn conversation_id(&self) -> Option<&ConversationId> {
        match self {
            ClientFrame::Send {
                conversation_id, ..
            } => conversation_id.as_ref(),
            ClientFrame::Subscribe { conversation_id }
            | ClientFrame::Unsubscribe { conversation_id }
            | ClientFrame::Stop { conversation_id }
            | ClientFrame::Regenerate {
                conversation_id, ..
            }
            | ClientFrame::Continue {
                conversation_id, ..
            }
            | ClientFrame::RenameConversation {
                conversation_id, ..
            }
            | ClientFrame::DeleteConversation { conversation_id }
            | ClientFrame::History {
                conversation_id, ..
            }
            | ClientFrame::Edit {
                conversation_id, ..
            }
            | ClientFrame::SelectAlternative {
                conversation_id, ..
            }
            | ClientFrame::SetModel {
                conversation_id, ..
            }
            | ClientFrame::DeleteMessage {
                conversation_id, ..
            } => Some(conversation_id),
            ClientFrame::Ping { .. } | ClientFrame::ListConversations { .. } => None,
        }
    }

    /// Serialise for the wire. Serialising these types cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ServerFrame {
    /// Serialise for the wire. Serialising these types cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one frame in passes over its text: the whole of it checked
    /// as serde checks what it buffers, then `"type"` (wherever it stands;
    /// other fields skipped), then that variant's fields as a plain struct.
    /// The same frames as serde's derive for the tagged enum (unknown fields
    /// ignored, an unknown or missing `"type"` an error), without its
    /// buffering of every field in a `Content` tree first, which costs the
    /// WASM tens of KB. One difference: the derive also takes a JSON array
    /// (`["delta", …]`, fields by position); this takes objects only, as
    /// `docs/protocol.md` says frames are.
    pub fn from_json(json: &str) -> serde_json::Result<Self> {
        frame_decoder::server_frame(json)
    }
}

/// The page's `Deserialize` of the types serde would buffer (internally
/// tagged enums, `flatten`): see `frame_decoder`. Where the page holds a
/// frame's text it calls [`ServerFrame::from_json`] instead (no copy of the
/// text into a `RawValue` first); this impl serves resources and answers
/// decoded through serde.
#[cfg(not(feature = "ssr"))]
mod page_impls {
    use super::*;
    use serde::Deserializer;

    impl<'de> Deserialize<'de> for ServerFrame {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            frame_decoder::from_text(deserializer, frame_decoder::server_frame)
        }
    }

    impl<'de> Deserialize<'de> for ModelSetup {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            frame_decoder::from_text(deserializer, frame_decoder::model_setup)
        }
    }

    impl<'de> Deserialize<'de> for StreamingMessage {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            frame_decoder::from_text(
                deserializer,
                frame_decoder::flat::<_, frame_decoder::FlatStreaming>,
            )
        }
    }

    impl<'de> Deserialize<'de> for CompanionInfo {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            frame_decoder::from_text(
                deserializer,
                frame_decoder::flat::<_, frame_decoder::FlatCompanion>,
            )
        }
    }
}

/// Decoding without serde's `Content` buffering, which internally tagged
/// enums and `flatten` fields need and which costs the WASM tens of KB
/// (docs/performance.md "Page weight"). A tagged enum is read in passes over
/// its text: all of it checked ([`Checked`](frame_decoder::Checked)), the tag
/// (wherever it stands; the other fields skipped), then one struct with that
/// variant's fields and serde attributes. A `flatten` is checked, then read
/// as one struct with the fields of both. The server keeps
/// serde's derives; `decoder_agrees_with_the_derive` and its neighbours
/// check that both give the same values and refuse the same input. A field
/// added to one of these types must be added here too (the build fails
/// until it is), with the same serde attributes (only the tests see those).
/// In the server build only the tests and [`ServerFrame::from_json`] use it.
#[cfg_attr(feature = "ssr", allow(dead_code))]
mod frame_decoder {
    use super::*;
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::marker::PhantomData;

    /// Reads a value's JSON text, then decodes it with `decode`. Needs a
    /// `serde_json` deserializer (the page reads frames from text).
    pub(super) fn from_text<'de, D: Deserializer<'de>, T>(
        deserializer: D,
        decode: fn(&str) -> serde_json::Result<T>,
    ) -> Result<T, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        decode(raw.get()).map_err(de::Error::custom)
    }

    /// Any JSON value, read the way serde reads the fields it buffers for a
    /// tagged enum or a `flatten` (every string decoded, every number parsed,
    /// nesting at most 128 deep) and dropped. A field the decoders ignore is
    /// only skipped, which checks less (a lone surrogate `\ud800`, `1e400`,
    /// any depth): a first pass over the whole text with this refuses what
    /// the derive refuses.
    pub(super) struct Checked;

    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Checked)
        }
    }

    impl<'de> Visitor<'de> for Checked {
        type Value = Checked;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            while map.next_entry::<Checked, Checked>()?.is_some() {}
            Ok(Checked)
        }
    }

    /// A `flatten`ed struct (`T`) from its text: checked as the derive
    /// would, then read as the flat struct `F` from a map only.
    pub(super) fn flat<T, F: de::DeserializeOwned + Into<T>>(json: &str) -> serde_json::Result<T> {
        serde_json::from_str::<Checked>(json)?;
        from_object::<_, F>(&mut serde_json::Deserializer::from_str(json)).map(F::into)
    }

    /// Reads `T` from a map only (as serde's `flatten` does; a derived
    /// struct would also take an array, its fields by position).
    pub(super) fn from_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        struct Object<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Object(PhantomData))
    }

    /// `fn $decode(json) -> $enum`: the tag `$tag` (a `$kind`, one value per
    /// variant in the enum's order), then the variant's fields.
    macro_rules! tagged {
        ($decode:ident -> $enum:ident, $tag:literal, $kind:ident {
            $($variant:ident { $($(#[$attr:meta])* $field:ident: $ty:ty,)* })*
        }) => {
            /// Read as an identifier, as the derive reads a tag: a string
            /// (not also `{"name": null}`, as a plain enum would be).
            #[derive(Deserialize)]
            #[serde(field_identifier, rename_all = "snake_case")]
            enum $kind {
                $($variant,)*
            }

            pub(super) fn $decode(json: &str) -> serde_json::Result<$enum> {
                #[derive(Deserialize)]
                struct Tag {
                    #[serde(rename = $tag)]
                    kind: $kind,
                }
                // The derive also reads an array (the tag, then the fields
                // by position); these are always objects.
                if !json.trim_start().starts_with('{') {
                    return Err(de::Error::custom("expected a JSON object"));
                }
                serde_json::from_str::<Checked>(json)?;
                let Tag { kind } = serde_json::from_str(json)?;
                Ok(match kind {
                    $($kind::$variant => {
                        #[derive(Deserialize)]
                        struct $variant {
                            $($(#[$attr])* $field: $ty,)*
                        }
                        // From a map only, like the derive: no code for
                        // the fields by position. The first pass has seen
                        // the whole text; nothing can follow the object.
                        let $variant { $($field,)* } =
                            from_object(&mut serde_json::Deserializer::from_str(json))?;
                        $enum::$variant { $($field,)* }
                    })*
                })
            }
        };
    }

    tagged! {
        server_frame -> ServerFrame, "type", FrameKind {
            Hello {
                protocol: u32,
                user_id: UserId,
                server: String,
                limits: Limits,
                #[serde(default)]
                personas: Vec<PersonaInfo>,
                #[serde(default)]
                models: Vec<String>,
                #[serde(default)]
                model: Option<String>,
                #[serde(default)]
                model_setup: Option<ModelSetup>,
            }
            Accepted {
                client_msg_id: ClientMsgId,
                conversation_id: ConversationId,
                message_id: MessageId,
                duplicate: bool,
            }
            Snapshot {
                conversation_id: ConversationId,
                messages: Vec<super::Message>,
                streaming: Option<StreamingMessage>,
                #[serde(default)]
                has_more: bool,
            }
            Message {
                conversation_id: ConversationId,
                message: super::Message,
            }
            Delta {
                conversation_id: ConversationId,
                message_id: MessageId,
                index: u64,
                text: String,
            }
            Done {
                conversation_id: ConversationId,
                message_id: MessageId,
                finish_reason: FinishReason,
                usage: Option<Usage>,
                ttft_ms: Option<f64>,
                total_ms: f64,
                #[serde(default)]
                model: Option<String>,
            }
            Error {
                code: ErrorCode,
                message: String,
                #[serde(default)]
                client_msg_id: Option<ClientMsgId>,
                #[serde(default)]
                retry_after_ms: Option<u64>,
                #[serde(default)]
                conversation_id: Option<ConversationId>,
            }
            Pong {
                nonce: serde_json::Value,
            }
            Conversations {
                items: Vec<ConversationSummary>,
                #[serde(default)]
                query: Option<String>,
            }
            Changed {
                what: super::Changed,
            }
            HistoryPage {
                conversation_id: ConversationId,
                before: Option<MessageId>,
                messages: Vec<super::Message>,
                has_more: bool,
            }
        }
    }

    tagged! {
        model_setup -> ModelSetup, "state", SetupKind {
            Ready {}
            Installing {
                step: u32,
                steps: u32,
                label: String,
                elapsed_secs: u64,
            }
            Failed {
                reason: String,
            }
        }
    }

    /// [`StreamingMessage`]'s fields and its message's, side by side.
    #[derive(Deserialize)]
    pub(super) struct FlatStreaming {
        id: MessageId,
        role: Role,
        content: String,
        created_at: String,
        #[serde(default)]
        finish_reason: Option<FinishReason>,
        #[serde(default)]
        alternatives: Option<Alternatives>,
        #[serde(default)]
        model: Option<String>,
        next_index: u64,
    }

    impl From<FlatStreaming> for StreamingMessage {
        fn from(flat: FlatStreaming) -> Self {
            StreamingMessage {
                message: super::Message {
                    id: flat.id,
                    role: flat.role,
                    content: flat.content,
                    created_at: flat.created_at,
                    finish_reason: flat.finish_reason,
                    alternatives: flat.alternatives,
                    model: flat.model,
                },
                next_index: flat.next_index,
            }
        }
    }

    /// [`CompanionInfo`]'s fields and its draft's, side by side.
    #[derive(Deserialize)]
    pub(super) struct FlatCompanion {
        id: String,
        #[serde(default)]
        preset: bool,
        #[serde(default)]
        name: String,
        #[serde(default)]
        description: String,
        #[serde(default)]
        personality: String,
        #[serde(default)]
        scenario: String,
        #[serde(default)]
        greeting: String,
        #[serde(default)]
        alternate_greetings: Vec<String>,
        #[serde(default)]
        example_dialogue: String,
        #[serde(default)]
        system_prompt: String,
        #[serde(default)]
        emoji: Option<String>,
        #[serde(default)]
        avatar_url: Option<String>,
        #[serde(default)]
        lore_entries: u32,
        #[serde(default)]
        updated_at: String,
    }

    impl From<FlatCompanion> for CompanionInfo {
        fn from(flat: FlatCompanion) -> Self {
            CompanionInfo {
                id: flat.id,
                preset: flat.preset,
                fields: CompanionDraft {
                    name: flat.name,
                    description: flat.description,
                    personality: flat.personality,
                    scenario: flat.scenario,
                    greeting: flat.greeting,
                    alternate_greetings: flat.alternate_greetings,
                    example_dialogue: flat.example_dialogue,
                    system_prompt: flat.system_prompt,
                    emoji: flat.emoji,
                },
                avatar_url: flat.avatar_url,
                lore_entries: flat.lore_entries,
                updated_at: flat.updated_at,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn round_trip_server(literal: Value) {
        let frame: ServerFrame = serde_json::from_value(literal.clone()).expect("parses");
        let back = serde_json::to_value(&frame).expect("serialises");
        assert_eq!(back, literal, "server frame did not round-trip");
    }

    fn round_trip_client(literal: Value) {
        let frame: ClientFrame = serde_json::from_value(literal.clone()).expect("parses");
        let back = serde_json::to_value(&frame).expect("serialises");
        assert_eq!(back, literal, "client frame did not round-trip");
    }

    #[test]
    fn hello_round_trips() {
        round_trip_server(json!({
            "type": "hello", "protocol": 1, "user_id": "u1", "server": "tether/0.1.0",
            "limits": {"max_frame_bytes": 16384, "max_message_chars": 8000},
            "personas": [{"id": "companion", "name": "Companion", "description": "warm"}]
        }));
    }

    #[test]
    fn hello_without_extension_fields_parses() {
        let frame: ServerFrame = serde_json::from_value(json!({
            "type": "hello", "protocol": 1, "user_id": "u1", "server": "x",
            "limits": {"max_frame_bytes": 1, "max_message_chars": 2}
        }))
        .expect("parses");
        assert!(matches!(frame, ServerFrame::Hello { personas, .. } if personas.is_empty()));
    }

    #[test]
    fn accepted_snapshot_message_round_trip() {
        round_trip_server(json!({
            "type": "accepted", "client_msg_id": "c-1", "conversation_id": "conv",
            "message_id": "m1", "duplicate": false
        }));
        round_trip_server(json!({
            "type": "snapshot", "conversation_id": "conv",
            "messages": [{"id": "m1", "role": "user", "content": "hi",
                          "created_at": "2026-11-24T10:00:00Z", "finish_reason": null}],
            "streaming": {"id": "m2", "role": "assistant", "content": "Hel",
                          "created_at": "2026-11-24T10:00:01Z", "finish_reason": null,
                          "next_index": 3}
        }));
        round_trip_server(json!({
            "type": "snapshot", "conversation_id": "conv", "messages": [], "streaming": null
        }));
        round_trip_server(json!({
            "type": "message", "conversation_id": "conv",
            "message": {"id": "m1", "role": "assistant", "content": "ok",
                        "created_at": "2026-11-24T10:00:00Z", "finish_reason": "stop"}
        }));
    }

    #[test]
    fn delta_done_error_pong_round_trip() {
        round_trip_server(json!({
            "type": "delta", "conversation_id": "conv", "message_id": "m2", "index": 0, "text": "Hel"
        }));
        round_trip_server(json!({
            "type": "done", "conversation_id": "conv", "message_id": "m2", "finish_reason": "stopped",
            "usage": {"prompt_tokens": 10, "completion_tokens": 3}, "ttft_ms": 101.5, "total_ms": 900.0
        }));
        round_trip_server(json!({
            "type": "done", "conversation_id": "conv", "message_id": "m2", "finish_reason": "error",
            "usage": null, "ttft_ms": null, "total_ms": 3.0
        }));
        round_trip_server(json!({
            "type": "error", "code": "rate_limited", "message": "slow down",
            "client_msg_id": "c-1", "retry_after_ms": 1500
        }));
        round_trip_server(json!({"type": "error", "code": "bad_request", "message": "nope"}));
        round_trip_server(json!({"type": "pong", "nonce": 42}));
        round_trip_server(json!({"type": "pong", "nonce": "abc"}));
    }

    /// One frame of every kind, with every optional field somewhere.
    fn every_kind_of_server_frame() -> Vec<Value> {
        let message = json!({"id": "m1", "role": "assistant", "content": "ok",
            "created_at": "2026-11-24T10:00:00Z", "finish_reason": "stop",
            "alternatives": {"index": 1, "count": 3}, "model": "small"});
        vec![
            json!({"type": "hello", "protocol": 1, "user_id": "u1", "server": "x",
                   "limits": {"max_frame_bytes": 1, "max_message_chars": 2}}),
            json!({"type": "hello", "protocol": 1, "user_id": "u1", "server": "x",
                   "limits": {"max_frame_bytes": 1, "max_message_chars": 2},
                   "personas": [{"id": "p", "name": "P", "description": "d"}],
                   "models": ["a", "b"], "model": "a",
                   "model_setup": {"state": "installing", "step": 1, "steps": 3,
                                   "label": "Building", "elapsed_secs": 12}}),
            json!({"type": "hello", "protocol": 1, "user_id": "u1", "server": "x",
                   "limits": {"max_frame_bytes": 1, "max_message_chars": 2},
                   "model_setup": {"state": "failed", "reason": "no disk"}}),
            json!({"type": "accepted", "client_msg_id": "c-1", "conversation_id": "conv",
                   "message_id": "m1", "duplicate": true}),
            json!({"type": "snapshot", "conversation_id": "conv", "messages": [message],
                   "streaming": {"id": "m2", "role": "assistant", "content": "Hel",
                                 "created_at": "2026-11-24T10:00:01Z", "finish_reason": null,
                                 "next_index": 3},
                   "has_more": true}),
            json!({"type": "snapshot", "conversation_id": "conv", "messages": [], "streaming": null}),
            json!({"type": "message", "conversation_id": "conv", "message": message}),
            json!({"type": "delta", "conversation_id": "conv", "message_id": "m2", "index": 7,
                   "text": "Hel\"lo\u{e9}\n"}),
            json!({"type": "done", "conversation_id": "conv", "message_id": "m2",
                   "finish_reason": "length", "usage": {"prompt_tokens": 10, "completion_tokens": 3},
                   "ttft_ms": 101.5, "total_ms": 900, "model": "small"}),
            json!({"type": "done", "conversation_id": "conv", "message_id": "m2",
                   "finish_reason": "error", "usage": null, "ttft_ms": null, "total_ms": 3.25}),
            json!({"type": "error", "code": "quota_exceeded", "message": "later",
                   "client_msg_id": "c-1", "retry_after_ms": 1500, "conversation_id": "conv"}),
            json!({"type": "error", "code": "busy", "message": "wait"}),
            json!({"type": "pong", "nonce": {"deep": [1, "two", null]}}),
            json!({"type": "pong", "nonce": null}),
            json!({"type": "conversations", "query": "sea",
                   "items": [{"id": "c", "title": "Trip", "persona": "companion",
                              "updated_at": "2026-11-24T10:00:00Z", "model": "small"}]}),
            json!({"type": "changed", "what": "companions"}),
            json!({"type": "changed", "what": "conversations"}),
            json!({"type": "history_page", "conversation_id": "conv", "before": "m51",
                   "messages": [message], "has_more": true}),
            json!({"type": "history_page", "conversation_id": "conv", "before": null,
                   "messages": [], "has_more": false}),
        ]
    }

    /// The page's decoder ([`ServerFrame::from_json`]) and the server's
    /// (serde's derive) give the same frame or both refuse it.
    fn decoders_agree(text: &str) -> Option<ServerFrame> {
        let derived = serde_json::from_str::<ServerFrame>(text).ok();
        let decoded = ServerFrame::from_json(text).ok();
        assert_eq!(decoded, derived, "the decoders disagree on {text}");
        // As the page's `Deserialize` reads it: its text first.
        let mut input = serde_json::Deserializer::from_str(text);
        let page = frame_decoder::from_text(&mut input, frame_decoder::server_frame)
            .and_then(|frame| input.end().map(|()| frame))
            .ok();
        assert_eq!(page, decoded, "from_text disagrees on {text}");
        decoded
    }

    #[test]
    fn decoder_agrees_with_the_derive() {
        let kinds = every_kind_of_server_frame();
        let mut seen = std::collections::HashSet::new();
        for literal in kinds {
            // `Value` orders keys by name, so "type" is mostly not first here.
            let sorted = literal.to_string();
            let frame = decoders_agree(&sorted).expect("every kind parses");
            seen.insert(std::mem::discriminant(&frame));
            assert_eq!(
                serde_json::to_value(&frame).expect("serialises")["type"],
                literal["type"]
            );
            // As the server writes it: "type" first; and with the tag last.
            let written = frame.to_json();
            assert!(written.starts_with(r#"{"type":"#));
            assert_eq!(decoders_agree(&written), Some(frame.clone()));
            let Value::Object(mut fields) = literal.clone() else {
                unreachable!()
            };
            let tag = fields.remove("type").expect("tagged");
            let mut last = serde_json::to_string(&fields).expect("serialises");
            last.pop();
            let last = format!(
                "{last}{}\"type\":{tag}}}",
                if fields.is_empty() { "" } else { "," }
            );
            assert_eq!(decoders_agree(&last), Some(frame.clone()));
            // Unknown fields, also ones another kind has with another type.
            let mut extra = literal.clone();
            extra["future"] = json!([1, {"x": 2}]);
            for other in [
                "message", "index", "text", "items", "what", "nonce", "before",
            ] {
                if extra.get(other).is_none() {
                    extra[other] = json!(true);
                }
            }
            assert_eq!(decoders_agree(&extra.to_string()), Some(frame.clone()));
            // Every field the kind needs, taken away in turn.
            for name in fields.keys() {
                let mut missing = literal.clone();
                missing.as_object_mut().expect("object").remove(name);
                decoders_agree(&missing.to_string());
                let mut wrong = literal.clone();
                wrong[name] = json!({"not": "this"});
                decoders_agree(&wrong.to_string());
            }
        }
        assert_eq!(seen.len(), 11, "a kind of frame has no example");
        for text in [
            r#"{"type": "launch"}"#,
            r#"{"protocol": 1}"#,
            r#"{"type": 3, "conversation_id": "c", "message_id": "m", "index": 0, "text": "t"}"#,
            r#"{"type": {"pong": null}, "nonce": 1}"#,
            // What serde's buffering checks in a field it then ignores
            // (every string decoded, every number parsed, the depth limit).
            r#"{"type": "pong", "nonce": 1, "future": "\ud800"}"#,
            r#"{"type": "pong", "nonce": 1, "future": {"\udc00": 1}}"#,
            r#"{"type": "pong", "nonce": 1, "future": 1e400}"#,
            r#"{"type": "pong", "nonce": 1, "future": "\u0041\ud83d\ude00"}"#,
            r#"{"type": "delta", "conversation_id": "c", "message_id": "m", "index": 0, "text": "t", "message": -1e999}"#,
            r#"{"type": ["pong"], "nonce": 1}"#,
            r#"{"type": "hello", "type": "hello"}"#,
            r#"{"type": "pong", "nonce": 1, "nonce": 2}"#,
            r#"{"type": "changed", "what": "weather"}"#,
            r#"{"type": "pong", "nonce": 1} trailing"#,
            r#"  {"type": "pong", "nonce": 1}  "#,
            r#"{"type": null}"#,
            r#""pong""#,
            "null",
            "",
            r#"{"type": "pong""#,
        ] {
            decoders_agree(text);
        }
        let deep = format!(
            r#"{{"type": "pong", "nonce": 1, "future": {}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        decoders_agree(&deep);
        let deep = format!(
            r#"{{"type": "pong", "nonce": 1, "future": {}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(decoders_agree(&deep).is_some());
        assert!(ServerFrame::from_json(r#"{"type": "launch"}"#).is_err());
        // The derive also reads an array as the fields by position; frames
        // are objects, and the page's decoder says no.
        let array = r#"["pong", 42]"#;
        assert!(serde_json::from_str::<ServerFrame>(array).is_ok());
        assert!(ServerFrame::from_json(array).is_err());
    }

    /// The page's [`StreamingMessage`] and [`CompanionInfo`] (one flat
    /// struct each) against the derive's `flatten`.
    fn flat_agrees<T, F>(text: &str) -> Option<T>
    where
        T: serde::de::DeserializeOwned + PartialEq + fmt::Debug,
        F: serde::de::DeserializeOwned + Into<T>,
    {
        let derived = serde_json::from_str::<T>(text).ok();
        let decoded = frame_decoder::flat::<T, F>(text).ok();
        assert_eq!(decoded, derived, "the decoders disagree on {text}");
        // As the page's `Deserialize` reads it: its text first.
        let mut input = serde_json::Deserializer::from_str(text);
        let page = frame_decoder::from_text(&mut input, frame_decoder::flat::<T, F>)
            .and_then(|value| input.end().map(|()| value))
            .ok();
        assert_eq!(page, decoded, "from_text disagrees on {text}");
        decoded
    }

    #[test]
    fn flat_decoders_agree_with_the_derive() {
        use frame_decoder::{FlatCompanion, FlatStreaming};
        let streaming = json!({"id": "m2", "role": "assistant", "content": "Hel",
            "created_at": "2026-11-24T10:00:01Z", "finish_reason": "stop",
            "alternatives": {"index": 0, "count": 2}, "model": "small", "next_index": 3});
        let companion = json!({"id": "c1", "preset": true, "name": "Ada",
            "description": "d", "personality": "p", "scenario": "s", "greeting": "g",
            "alternate_greetings": ["a", "b"], "example_dialogue": "e",
            "system_prompt": "{{original}}", "emoji": "🙂", "avatar_url": "/a.png",
            "lore_entries": 4, "updated_at": "2026-11-24T10:00:00Z"});
        for literal in [&streaming, &companion] {
            let check = |text: &str| {
                if literal == &streaming {
                    flat_agrees::<StreamingMessage, FlatStreaming>(text).is_some()
                } else {
                    flat_agrees::<CompanionInfo, FlatCompanion>(text).is_some()
                }
            };
            assert!(check(&literal.to_string()));
            let mut extra = literal.clone();
            extra["future"] = json!({"x": [1]});
            assert!(check(&extra.to_string()));
            for future in [
                r#""\ud800""#,
                "1e400",
                &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
            ] {
                let text =
                    literal
                        .to_string()
                        .replacen('{', &format!(r#"{{"future": {future}, "#), 1);
                check(&text);
            }
            for name in literal.as_object().expect("object").keys() {
                let mut missing = literal.clone();
                missing.as_object_mut().expect("object").remove(name);
                check(&missing.to_string());
                let mut wrong = literal.clone();
                wrong[name] = json!([1]);
                check(&wrong.to_string());
                let duplicated =
                    literal
                        .to_string()
                        .replacen('{', &format!("{{\"{name}\":null,"), 1);
                check(&duplicated);
            }
            for text in ["[]", r#"["m2"]"#, "null", "{}", r#"{"id": "x"}"#, r#""x""#] {
                check(text);
            }
        }
        assert!(
            flat_agrees::<CompanionInfo, FlatCompanion>(r#"{"id": "c", "emoji": null}"#).is_some()
        );
    }

    #[test]
    fn model_setup_decoder_agrees_with_the_derive() {
        for text in [
            r#"{"state": "ready"}"#,
            r#"{"state": "ready", "step": "not a number"}"#,
            r#"{"step": 1, "steps": 3, "label": "Building", "elapsed_secs": 9, "state": "installing"}"#,
            r#"{"state": "installing", "step": 1, "steps": 3, "label": "Building"}"#,
            r#"{"state": "installing", "step": -1, "steps": 3, "label": "x", "elapsed_secs": 9}"#,
            r#"{"state": "failed", "reason": "no disk", "future": true}"#,
            r#"{"state": "failed"}"#,
            r#"{"state": 2, "reason": "by index"}"#,
            r#"{"state": {"ready": null}}"#,
            r#"{"state": "ready", "future": "\ud800"}"#,
            r#"{"state": "ready", "future": 1e400}"#,
            r#"{"state": "paused"}"#,
            r#"{"state": "ready", "state": "ready"}"#,
            r#"{}"#,
            r#"["ready"]"#,
            "null",
        ] {
            let derived = serde_json::from_str::<ModelSetup>(text).ok();
            let decoded = frame_decoder::model_setup(text).ok();
            if text.starts_with('[') {
                // The derive reads an array; the page's decoder objects only.
                assert!(decoded.is_none());
                continue;
            }
            assert_eq!(decoded, derived, "the decoders disagree on {text}");
        }
    }

    #[test]
    fn every_error_code_has_its_contract_name() {
        for (code, name) in [
            (ErrorCode::BadRequest, "bad_request"),
            (ErrorCode::TooLarge, "too_large"),
            (ErrorCode::Unauthorized, "unauthorized"),
            (ErrorCode::NotFound, "not_found"),
            (ErrorCode::RateLimited, "rate_limited"),
            (ErrorCode::Busy, "busy"),
            (ErrorCode::UpstreamError, "upstream_error"),
            (ErrorCode::UpstreamTimeout, "upstream_timeout"),
            (ErrorCode::Internal, "internal"),
            (ErrorCode::Unavailable, "unavailable"),
            (ErrorCode::QuotaExceeded, "quota_exceeded"),
        ] {
            assert_eq!(serde_json::to_value(code).expect("serialises"), json!(name));
            assert_eq!(code.as_str(), name);
        }
    }

    #[test]
    fn client_frames_round_trip() {
        round_trip_client(json!({
            "type": "send", "client_msg_id": "c-1", "conversation_id": null, "text": "hi",
            "persona": "companion"
        }));
        round_trip_client(json!({
            "type": "send", "client_msg_id": "c-2", "conversation_id": "conv", "text": "again"
        }));
        round_trip_client(json!({"type": "subscribe", "conversation_id": "conv"}));
        round_trip_client(json!({"type": "unsubscribe", "conversation_id": "conv"}));
        round_trip_client(json!({"type": "stop", "conversation_id": "conv"}));
        round_trip_client(
            json!({"type": "regenerate", "conversation_id": "conv", "client_msg_id": "c-3"}),
        );
        round_trip_client(
            json!({"type": "continue", "conversation_id": "conv", "client_msg_id": "c-4"}),
        );
        round_trip_client(json!({"type": "ping", "nonce": 7}));
        round_trip_client(json!({"type": "list_conversations"}));
        round_trip_client(json!({"type": "list_conversations", "query": "sea"}));
        round_trip_client(
            json!({"type": "rename_conversation", "conversation_id": "c", "title": "Trip"}),
        );
        round_trip_client(json!({"type": "delete_conversation", "conversation_id": "c"}));
    }

    #[test]
    fn send_request_takes_the_send_fields_or_a_whole_send_frame() {
        let request: SendRequest =
            serde_json::from_value(json!({"client_msg_id": "c-1", "text": "hi"})).expect("parses");
        assert_eq!(request.conversation_id, None);
        assert_eq!(request.persona, None);
        let frame = ClientFrame::Send {
            client_msg_id: "c-2".into(),
            conversation_id: Some("conv".into()),
            text: "again".into(),
            persona: Some("companion".into()),
            greeting: None,
            model: None,
        };
        let request: SendRequest =
            serde_json::from_str(&frame.to_json()).expect("a send frame is a request");
        assert_eq!(ClientFrame::from(request), frame);
        assert!(serde_json::from_value::<SendRequest>(json!({"text": "no id"})).is_err());
    }

    #[test]
    fn conversations_round_trip() {
        round_trip_server(json!({
            "type": "conversations",
            "items": [{"id": "c", "title": "Trip", "persona": "companion",
                       "updated_at": "2026-11-24T10:00:00Z"}]
        }));
        round_trip_server(json!({"type": "conversations", "items": [], "query": "sea"}));
    }

    #[test]
    fn history_frames_round_trip() {
        round_trip_client(json!({
            "type": "history", "conversation_id": "conv", "before": "m51", "limit": 50
        }));
        round_trip_client(json!({"type": "history", "conversation_id": "conv"}));
        round_trip_server(json!({
            "type": "history_page", "conversation_id": "conv", "before": "m51",
            "messages": [{"id": "m50", "role": "assistant", "content": "ok",
                          "created_at": "2026-11-24T10:00:00Z", "finish_reason": "stop"}],
            "has_more": true
        }));
        round_trip_server(json!({
            "type": "history_page", "conversation_id": "conv", "before": null,
            "messages": [], "has_more": false
        }));
    }

    #[test]
    fn a_windowed_snapshot_says_so_and_an_old_one_parses() {
        round_trip_server(json!({
            "type": "snapshot", "conversation_id": "conv", "messages": [], "streaming": null,
            "has_more": true
        }));
        let old: ServerFrame = serde_json::from_value(json!({
            "type": "snapshot", "conversation_id": "conv", "messages": [], "streaming": null
        }))
        .expect("parses");
        assert!(matches!(
            old,
            ServerFrame::Snapshot {
                has_more: false,
                ..
            }
        ));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let frame: ClientFrame = serde_json::from_value(json!({
            "type": "subscribe", "conversation_id": "conv", "future_field": [1, 2]
        }))
        .expect("parses");
        assert_eq!(
            frame,
            ClientFrame::Subscribe {
                conversation_id: "conv".into()
            }
        );
    }

    #[test]
    fn unknown_type_is_rejected() {
        assert!(serde_json::from_value::<ClientFrame>(json!({"type": "launch"})).is_err());
    }

    #[test]
    fn every_variant_text_matches_serde() {
        use strum::VariantArray;
        for &code in ErrorCode::VARIANTS {
            assert_eq!(
                serde_json::to_value(code).expect("serialises"),
                json!(code.as_str())
            );
        }
        for &reason in FinishReason::VARIANTS {
            assert_eq!(FinishReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).expect("serialises"),
                json!(reason.as_str())
            );
        }
        assert_eq!(FinishReason::parse("Stop"), None);
    }

    #[test]
    fn finish_reason_text_matches_serde() {
        for reason in [
            FinishReason::Stop,
            FinishReason::Length,
            FinishReason::Stopped,
            FinishReason::Error,
        ] {
            assert_eq!(FinishReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).expect("serialises"),
                json!(reason.as_str())
            );
        }
    }
}
