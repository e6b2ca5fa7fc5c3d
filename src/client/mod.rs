//! The browser side of the chat: the view reducer (pure, compiled everywhere
//! so it is tested natively) and the WebSocket (WASM only).

pub mod markdown;
pub mod state;

#[cfg(feature = "hydrate")]
pub mod socket;

/// What the connection indicator shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnStatus {
    Connecting,
    Connected,
    Reconnecting,
}

impl ConnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Connecting => "connecting",
            ConnStatus::Connected => "connected",
            ConnStatus::Reconnecting => "reconnecting",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ConnStatus::Connecting => "Connecting…",
            ConnStatus::Connected => "Connected",
            ConnStatus::Reconnecting => "Reconnecting…",
        }
    }
}

/// A fresh idempotency key for `send` / `regenerate`.
pub fn new_client_msg_id() -> crate::protocol::ClientMsgId {
    #[cfg(feature = "hydrate")]
    {
        let now = js_sys::Date::now() as u64;
        let a = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        let b = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        crate::protocol::ClientMsgId(format!("{now:x}-{a:x}-{b:x}"))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        crate::protocol::ClientMsgId(format!("native-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

/// Now, as RFC 3339 (browser clock), for messages not yet stored.
pub fn now_rfc3339() -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::new_0().to_iso_string().into()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}
