//! The few server frame shapes the bench needs (a copy of the relevant parts of
//! `src/protocol.rs` in the parent crate; unknown fields and frame types are ignored).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        protocol: u32,
    },
    Accepted {
        client_msg_id: String,
        conversation_id: String,
        #[serde(default)]
        duplicate: bool,
    },
    Delta {
        #[serde(default)]
        message_id: String,
        index: u64,
        text: String,
    },
    Done {
        finish_reason: String,
        #[serde(default)]
        ttft_ms: Option<f64>,
    },
    Error {
        code: String,
    },
    /// The answer to `subscribe` (the soak's resume checks it).
    Snapshot {
        #[serde(default)]
        messages: Vec<StoredMessage>,
        streaming: Option<StreamingMessage>,
    },
    /// `message`, `pong`, `conversations`, ...: not needed here.
    #[serde(other)]
    Other,
}

/// A stored message in a `snapshot` (only what the soak checks).
#[derive(Debug, Deserialize)]
pub struct StoredMessage {
    pub role: String,
    pub content: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The reply still streaming in a `snapshot`: its text so far and the index
/// of the next `delta`.
#[derive(Debug, Deserialize)]
pub struct StreamingMessage {
    pub id: String,
    pub content: String,
    pub next_index: u64,
}

/// A frame that names only a conversation: `subscribe`, `stop`.
pub fn conversation_frame(kind: &str, conversation_id: &str) -> String {
    serde_json::json!({ "type": kind, "conversation_id": conversation_id }).to_string()
}

/// The `send` frame (WebSocket) / `SendRequest` body (SSE): the same JSON.
pub fn send_json(client_msg_id: &str, conversation_id: Option<&str>, text: &str) -> String {
    let mut v = serde_json::json!({
        "type": "send",
        "client_msg_id": client_msg_id,
        "text": text,
    });
    if let Some(c) = conversation_id {
        v["conversation_id"] = serde_json::Value::String(c.to_owned());
    }
    v.to_string()
}
