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
    /// `message`, `snapshot`, `pong`, `conversations`, ...: not needed here.
    #[serde(other)]
    Other,
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
